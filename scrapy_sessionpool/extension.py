"""The extension: owns the crawler's pools, restores and persists them, logs and reports."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from twisted.internet.task import LoopingCall

from .helpers import get_manager
from .stores import MemoryStore

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

    from .stores import Store

__all__ = ["SessionPoolExtension"]

logger = logging.getLogger(__name__)


class SessionPoolExtension:
    def __init__(self, crawler: Crawler, store: Store | None = None) -> None:
        self.crawler = crawler
        self.manager = get_manager(crawler)
        self.settings = self.manager.settings
        if not self.settings.enabled:
            raise NotConfigured("SESSIONPOOL_ENABLED is False")
        self.store: Store = store if store is not None else MemoryStore()
        self.key = "%(spider)s"
        self.manager.load_state = self._load
        self._loops: list[LoopingCall] = []
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SessionPoolExtension:
        return cls(crawler)

    def key_for(self, pool_name: str | None) -> str:
        """The store key of a pool: the spider's key, plus ``.<name>`` for a named pool."""
        spider = self.crawler.spider
        key = self.key % {"spider": spider.name if spider else "default"}
        return key if pool_name is None else f"{key}.{pool_name}"

    def _load(self, pool_name: str | None) -> Any:
        return self.store.load(self.key_for(pool_name))

    def spider_opened(self, spider: Spider) -> None:
        self.manager.pool(None)  # build and restore the default pool now, not at the first request
        for interval, func in ((self.settings.persist_interval, self.persist), (self.settings.log_interval, self.log)):
            loop = LoopingCall(func)
            loop.start(interval, now=False).addErrback(self._loop_failed, func.__name__)
            self._loops.append(loop)

    def _loop_failed(self, failure: Any, name: str) -> None:
        logger.error("Session pool periodic %s failed: %s", name, failure.getErrorMessage())

    def spider_closed(self, spider: Spider, reason: str) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        self.persist()
        self.log()
        summary = self.manager.summary()
        self.manager.stat("usable", summary["usable"], gauge=True)
        self.manager.stat("proxies_in_backoff", summary["proxies_in_backoff"], gauge=True)

    def persist(self) -> None:
        """Save every pool to the store (failures are logged; the crawl goes on)."""
        for name, pool in self.manager:
            key = self.key_for(name)
            try:
                self.store.save(key, pool.get_state())
            except Exception as exc:  # a store must not stop the crawl
                logger.warning("Could not save session pool %s to %s: %s", name or "default", self.store.describe(key), exc)
                self.manager.stat("persist_failed")
            else:
                self.manager.stat("persisted")

    def log(self) -> None:
        s = self.manager.summary()
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(s["retired_by_reason"].items()))
        logger.info(
            "Session pool: %d usable, %d created, %d retired%s, %d blocks/min, %d proxies in backoff",
            s["usable"],
            s["created"],
            s["retired"],
            f" ({reasons})" if reasons else "",
            s["blocks_per_minute"],
            s["proxies_in_backoff"],
        )
