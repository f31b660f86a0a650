"""The extension: owns the crawler's pools, restores and persists them, logs and reports."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread

from .core.exceptions import StateError
from .core.proxies import redact
from .helpers import get_manager
from .stores import open_store

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

    from .settings import PoolSettings
    from .stores import Store

__all__ = ["SessionPoolExtension"]

logger = logging.getLogger(__name__)


class SessionPoolExtension:
    """Restores the pools when the crawl starts, saves them every ``SESSIONPOOL_PERSIST_INTERVAL``
    (off the reactor thread) and once when the spider closes, and logs a line every
    ``SESSIONPOOL_LOG_INTERVAL``."""

    def __init__(self, crawler: Crawler, store: Store | None = None) -> None:
        self.crawler = crawler
        self.manager = get_manager(crawler)
        self.settings = self.manager.settings
        if not self.settings.enabled:
            raise NotConfigured("SESSIONPOOL_ENABLED is False")
        self.store: Store = store if store is not None else open_store(self.settings, crawler.settings)
        self.key = self.settings.persist_state_key % {"spider": crawler.spidercls.name}
        self._untouchable: set[str] = set()  # keys whose unusable file could not be set aside
        self._saving: Deferred[Any] | None = None
        self._loops: list[LoopingCall] = []
        if getattr(self.store, "shared", False):
            self.manager.pool_factory = self._shared_pool  # the pool lives in Redis, not here
        else:
            self.manager.state_source = self
        for name in (None, *self.settings.pools):  # restore now: a bad state file stops the crawl at start
            self.manager.pool(name)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SessionPoolExtension:
        return cls(crawler)

    def key_for(self, pool_name: str | None) -> str:
        """The store key of a pool: ``SESSIONPOOL_PERSIST_STATE_KEY``, plus ``.<name>`` for a named pool."""
        return self.key if pool_name is None else f"{self.key}.{pool_name}"

    def _shared_pool(self, pool_name: str | None, settings: PoolSettings) -> Any:
        from .stores.redis import SharedPool

        assert settings.redis_url is not None
        return SharedPool(
            url=settings.redis_url,
            key=self.key_for(pool_name),
            settings=settings,
            prefix=settings.redis_prefix,
            ttl=settings.redis_ttl,
            rng=self.manager.rng,
            on_created=self.manager.session_created,
            on_retired=self.manager.session_retired,
            refuses_new=self.manager.proxies.refuses_new,
        )

    def _shared_pools(self) -> list[Any]:
        return [pool for _, pool in self.manager if getattr(pool, "shared", False)]

    # -- state source (called by the manager when it builds a pool) ---------------

    def load(self, pool_name: str | None) -> Any:
        key = self.key_for(pool_name)
        try:
            return self.store.load(key)
        except StateError as exc:
            self.reject(pool_name, exc)
            return None

    def reject(self, pool_name: str | None, error: StateError) -> None:
        key = self.key_for(pool_name)
        where = self.store.describe(key)
        if self.settings.persist_state_on_error == "stop":
            raise StateError(
                f"{where}: unusable session pool state ({error}); SESSIONPOOL_PERSIST_STATE_ON_ERROR is 'stop'"
            ) from error
        set_aside = getattr(self.store, "set_aside", None)
        try:
            moved = set_aside(key) if set_aside else None
        except OSError as exc:
            self._untouchable.add(key)
            logger.warning(
                "Session pool state %s is unusable (%s) and could not be moved aside (%s): "
                "starting with a fresh pool that will not be saved there",
                where,
                error,
                exc,
            )
            return
        logger.warning(
            "Session pool state %s is unusable (%s); kept it as %s and started with a fresh pool",
            where,
            error,
            moved or "(gone)",
        )
        self.manager.stat("state_rejected")

    def damaged(self, pool_name: str | None, problems: list[StateError]) -> None:
        key = self.key_for(pool_name)
        keep_copy = getattr(self.store, "keep_copy", None)
        if keep_copy is None:
            return
        try:
            copy = keep_copy(key)
        except OSError as exc:
            self._untouchable.add(key)
            logger.warning(
                "Session pool state %s could not be copied before it is saved over (%s): it will not be saved there",
                self.store.describe(key),
                exc,
            )
            return
        if copy is not None:
            logger.warning(
                "Session pool state %s: kept the state as it was loaded in %s", self.store.describe(key), copy
            )

    # -- signals -------------------------------------------------------------------

    async def spider_opened(self, spider: Spider) -> None:
        cfg = self.settings
        logger.info(
            "Session pool: up to %d sessions, %s, saved to %s",
            cfg.max_pool_size,
            f"{len(cfg.proxies)} proxies ({', '.join(redact(p) or '' for p in cfg.proxies)})"
            if cfg.proxies
            else "no proxies",
            self.store.describe(self.key),
        )
        for pool in self._shared_pools():
            live = await pool.open()
            self.manager.stat("restored", live)
            logger.info("Session pool %s: %d live session(s) in the shared pool", pool.base, live)
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
        await maybe_deferred_to_future(self.persist())
        for pool in self._shared_pools():
            await pool.close()
        self._report()

    def _report(self) -> None:
        self.log()
        summary = self.manager.summary()
        self.manager.stat("usable", summary["usable"], gauge=True)
        self.manager.stat("proxies_in_backoff", summary["proxies_in_backoff"], gauge=True)

    # -- persistence ---------------------------------------------------------------

    def persist(self) -> Deferred[None]:
        """Save every pool: capture on the reactor thread, encode and write in a thread."""
        if self._saving is not None:
            logger.debug("Session pool save still running; skipping this one")
            return succeed(None)
        jobs = []
        shared = self._shared_pools()
        if shared:
            return deferred_from_coro(self._touch(shared))
        for name, pool in self.manager:
            key = self.key_for(name)
            if key in self._untouchable:
                logger.warning(
                    "Not saving session pool %s: %s could not be moved aside",
                    name or "default",
                    self.store.describe(key),
                )
                continue
            try:
                jobs.append((name, key, pool.snapshot()))
            except (TypeError, ValueError) as exc:  # user_data that JSON cannot hold
                self._save_failed(name, key, exc)
        d: Deferred[Any] = deferToThread(self._write, jobs)
        d.addCallback(self._saved)
        self._saving = d
        d.addBoth(self._done_saving)
        return d

    async def _touch(self, pools: list[Any]) -> None:
        for pool in pools:
            await pool.touch()
        self.manager.stat("persisted", len(pools))

    def _write(self, jobs: list[Any]) -> list[tuple[str | None, str, Exception | None]]:
        results: list[tuple[str | None, str, Exception | None]] = []
        for name, key, build in jobs:
            try:
                self.store.save(key, build())
            except Exception as exc:  # noqa: BLE001 - a failed save must never stop the crawl
                results.append((name, key, exc))
            else:
                results.append((name, key, None))
        return results

    def _saved(self, results: list[tuple[str | None, str, Exception | None]]) -> None:
        for name, key, error in results:
            if error is None:
                self.manager.stat("persisted")
            else:
                self._save_failed(name, key, error)

    def _save_failed(self, name: str | None, key: str, error: Exception) -> None:
        logger.warning("Could not save session pool %s to %s: %s", name or "default", self.store.describe(key), error)
        self.manager.stat("persist_failed")

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
