"""The extension: drives the crawler's pools through the crawl, saves them, logs and reports.

The pools themselves are built and restored by the manager, on the core's persistence
(``core.persistence``) or in Redis (``shared``); the extension only says when.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread

from .core.proxies import redact
from .helpers import get_manager

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scrapy import Spider
    from scrapy.crawler import Crawler
    from twisted.internet.defer import Deferred

    from .core.persistence import Store

__all__ = ["SessionPoolExtension"]

logger = logging.getLogger(__name__)


def _in_thread(func: Callable[[], Any]) -> Awaitable[Any]:
    """Run ``func`` in Twisted's thread pool, awaitable from a coroutine on any reactor."""
    return maybe_deferred_to_future(deferToThread(func))


class SessionPoolExtension:
    """Restores the pools when the crawl starts, saves them every ``SESSIONPOOL_PERSIST_INTERVAL``
    (off the reactor thread) and once when the spider closes, and logs a line every
    ``SESSIONPOOL_LOG_INTERVAL``."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.manager = get_manager(crawler)
        self.settings = self.manager.settings
        if not self.settings.enabled:
            raise NotConfigured("SESSIONPOOL_ENABLED is False")
        self._saving: Deferred[None] | None = None
        self._loops: list[LoopingCall] = []
        for name in (None, *self.settings.pools):  # restore now: a bad state file stops the crawl at start
            self.manager.pool(name)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SessionPoolExtension:
        return cls(crawler)

    @property
    def store(self) -> Store | None:
        """Where the crawler's local pools are kept (None: nowhere; a Redis pool keeps itself)."""
        return self.manager.store

    # -- signals -------------------------------------------------------------------

    async def spider_opened(self, spider: Spider) -> None:
        cfg = self.settings
        store = self.manager.store
        logger.info(
            "Session pool: up to %d sessions, %s, saved to %s",
            cfg.max_pool_size,
            f"{len(cfg.proxies)} proxies ({', '.join(redact(p) or '' for p in cfg.proxies)})"
            if cfg.proxies
            else "no proxies",
            store.describe(self.manager.key_for(None)) if store is not None else "nowhere",
        )
        for _, pool in self.manager:
            await pool.start()
        for interval, func in ((self.settings.persist_interval, self.persist), (self.settings.log_interval, self.log)):
            loop = LoopingCall(func)
            loop.start(interval, now=False).addErrback(self._loop_failed, func.__name__)
            self._loops.append(loop)

    def _loop_failed(self, failure: Any, name: str) -> None:
        logger.error("Session pool periodic %s failed: %s", name, failure.getErrorMessage())

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        if self._saving is not None:  # let a periodic save finish first
            await maybe_deferred_to_future(self._saving)
        for _, pool in self.manager:
            await pool.close(_in_thread)
        self._report()

    def _report(self) -> None:
        self.log()
        summary = self.manager.summary()
        self.manager.stat("usable", summary["usable"], gauge=True)
        self.manager.stat("proxies_in_backoff", summary["proxies_in_backoff"], gauge=True)

    # -- persistence ---------------------------------------------------------------

    def persist(self) -> Deferred[None] | None:
        """Save every pool: each is captured on the reactor thread and written in a thread."""
        if self._saving is not None:
            logger.debug("Session pool save still running; skipping this one")
            return None
        self._saving = d = deferred_from_coro(self._save_all())
        d.addBoth(self._done_saving)
        return d

    async def _save_all(self) -> None:
        for _, pool in self.manager:
            await pool.save(_in_thread)

    def _done_saving(self, result: Any) -> Any:
        self._saving = None
        return result

    # -- reporting -----------------------------------------------------------------

    def log(self) -> None:
        s = self.manager.summary()
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(s["retired_by_reason"].items()))
        logger.info(
            "Session pool: %d usable, %d created, %d retired%s, %d blocks/min (blamed on session %d, exit %d, "
            "site %d), %d proxies in backoff",
            s["usable"],
            s["created"],
            s["retired"],
            f" ({reasons})" if reasons else "",
            s["blocks_per_minute"],
            s["blamed"].get("session", 0),
            s["blamed"].get("exit", 0),
            s["blamed"].get("site", 0),
            s["proxies_in_backoff"],
        )
