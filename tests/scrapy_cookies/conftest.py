"""Run Scrapy's cookie-middleware tests with ``PoolCookiesMiddleware`` in place of ``CookiesMiddleware``."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import scrapy
from packaging.version import Version
from scrapy.exceptions import NotConfigured
from scrapy.utils.spider import DefaultSpider
from scrapy.utils.test import get_crawler

from scrapy_sessionpool.middleware import SessionPoolMiddleware

#: The file of each Scrapy release line, by the oldest release it is for.
FILES = {Version("2.19"): "test_scrapy_2_19.py", Version("0"): "test_scrapy_2_13.py"}
_installed = Version(scrapy.__version__)
_chosen = next(name for oldest, name in sorted(FILES.items(), reverse=True) if _installed >= oldest)
collect_ignore = [name for name in FILES.values() if name != _chosen]

#: Stands for Scrapy's default jar: requests without ``meta["cookiejar"]`` share one session, as
#: they share Scrapy's default jar (in a crawl, they would be spread over the pool's sessions).
DEFAULT_JAR = "scrapy-default-jar"

#: Tests of Scrapy's that fail on purpose here: none. The differences we keep (a Cookie header the
#: spider sets is sent as it is; a cookie without Domain goes back to its host alone) are ones no
#: test of Scrapy's checks: tests/test_session_cookies.py checks them against Scrapy's own jar.
KEPT: dict[str, str] = {}


class PoolCookiesMiddleware:
    """Scrapy's ``CookiesMiddleware`` interface, served by ``SessionPoolMiddleware`` with a pool of
    one session per jar: no proxies, no warm-up, no persistence."""

    def __init__(self, debug: bool = False, *, crawler: Any = None) -> None:
        settings = {
            "COOKIES_DEBUG": debug,
            "SESSIONPOOL_ENABLED": True,
            "SESSIONPOOL_MAX_POOL_SIZE": 8,
            "SESSIONPOOL_WARM_UP": False,
            "SESSIONPOOL_PERSIST_STATE": False,
        }
        if crawler is not None:
            settings["COOKIES_ENABLED"] = crawler.settings.getbool("COOKIES_ENABLED")
            settings["COOKIES_DEBUG"] = crawler.settings.getbool("COOKIES_DEBUG")
        inner = get_crawler(DefaultSpider, settings_dict=settings)
        inner.spider = inner._create_spider()
        self.pool = SessionPoolMiddleware(inner)
        if self.pool.cookies is None:
            raise NotConfigured("the session middleware handles no cookies (COOKIES_ENABLED is False)")

    @classmethod
    def from_crawler(cls, crawler: Any) -> PoolCookiesMiddleware:
        return cls(crawler=crawler)

    def process_request(self, request: Any, spider: Any = None) -> None:
        request.meta.setdefault("cookiejar", DEFAULT_JAR)
        result = self.pool.process_request(request)
        if inspect.iscoroutine(result):
            result.close()
            raise AssertionError(f"{request} had to wait for a session")
        assert result is None, result

    def process_response(self, request: Any, response: Any, spider: Any = None) -> Any:
        if "sessionpool_session_id" not in request.meta:  # Scrapy's tests may skip the request path
            self.process_request(request)
        return self.pool.process_response(request, response)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is None or not module.__name__.startswith(__package__ + ".test_scrapy_"):
            continue
        module.CookiesMiddleware = PoolCookiesMiddleware
        name = item.name.partition("[")[0]
        if name in KEPT:
            item.add_marker(pytest.mark.xfail(reason=KEPT[name], strict=True))
