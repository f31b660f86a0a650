"""Run real Scrapy crawls in tests (under pytest-twisted's reactor)."""

from __future__ import annotations

from typing import Any

import scrapy
from scrapy.utils.test import get_crawler

BASE_SETTINGS: dict[str, Any] = {
    "SESSIONPOOL_ENABLED": True,
    "DOWNLOADER_MIDDLEWARES": {"scrapy_sessionpool.SessionPoolMiddleware": 650},
    "EXTENSIONS": {"scrapy_sessionpool.SessionPoolExtension": 500},
    "SESSIONPOOL_SEED": 1,
    "SESSIONPOOL_PERSIST_STATE": False,  # memory only, unless a test asks for a store
    "RETRY_ENABLED": False,
    "TELNETCONSOLE_ENABLED": False,
    "REMOTE_CONTROL_ENABLED": False,  # Scrapy 2.19's remote control server
    "LOG_LEVEL": "INFO",
    "ROBOTSTXT_OBEY": False,
    "DOWNLOAD_TIMEOUT": 10,
}


class ListSpider(scrapy.Spider):
    """Fetches ``urls`` (a list of URLs or of ``(url, meta)`` pairs) and records every response."""

    name = "list"

    def __init__(self, urls: list[Any] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.urls = list(urls)
        self.responses: list[scrapy.http.Response] = []
        self.failures: list[Any] = []

    async def start(self):
        for item in self.urls:
            url, meta = (item, {}) if isinstance(item, str) else item
            yield scrapy.Request(url, meta=dict(meta), dont_filter=True, errback=self.failed)

    def parse(self, response):
        self.responses.append(response)

    def failed(self, failure):
        self.failures.append(failure)


def make_crawler(
    spider_cls: type[scrapy.Spider] = ListSpider,
    settings: dict[str, Any] | None = None,
    base: dict[str, Any] | None = BASE_SETTINGS,
):
    merged = {**(base or {}), **(settings or {})}
    return get_crawler(spider_cls, merged)


def stats(crawler) -> dict[str, Any]:
    """The crawl's ``sessionpool/`` stats, without the prefix."""
    return {
        k.removeprefix("sessionpool/"): v for k, v in crawler.stats.get_stats().items() if k.startswith("sessionpool/")
    }
