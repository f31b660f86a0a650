"""A tiny extension for the demo: writes the crawl's stats to ``STATSFILE`` when the spider closes."""

from __future__ import annotations

import json

from scrapy import signals
from scrapy.exceptions import NotConfigured


class StatsFile:
    def __init__(self, crawler, path: str) -> None:
        self.crawler = crawler
        self.path = path
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        path = crawler.settings.get("STATSFILE")
        if not path:
            raise NotConfigured
        return cls(crawler, path)

    def spider_closed(self, spider, reason) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump({**self.crawler.stats.get_stats(), "finish_reason": reason}, f, default=str)
