"""A crawler's pools: built from settings, fed by verdicts, sharing one view of proxy health.

Pure: the Scrapy glue (middleware, extension, helpers) talks to one
:class:`PoolManager` per crawler and never to engine internals.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from .config import PoolSettings
from .exceptions import StateError
from .pool import SessionPool
from .proxies import NoHealthyProxy, ProxyManager, redact
from .session import Session
from .verdict import Verdict, VerdictKind

__all__ = ["PoolManager"]

logger = logging.getLogger(__name__)

Stats = Callable[..., None]


class StateSource(Protocol):
    """Where the pools' saved state comes from (the extension, over its store)."""

    def load(self, pool_name: str | None) -> Any:
        """The saved state of the pool, or None."""

    def reject(self, pool_name: str | None, error: StateError) -> None:
        """The saved state of the pool is unusable: set it aside (or raise to stop the crawl)."""


def _no_stats(key: str, count: int = 1) -> None:
    pass


class PoolManager:
    """The pools of one crawler (one per ``sessionpool_pool`` name; ``None`` is the default)."""

    def __init__(
        self,
        settings: PoolSettings,
        *,
        clock: Callable[[], float] = time.time,
        stats: Stats = _no_stats,
        download_delay: float = 0.0,
        state_source: StateSource | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.stat = stats
        self._rng = random.Random(settings.seed)
        self.state_source = state_source
        #: Builds a pool that lives elsewhere (Redis) instead of a local one: f(name, settings).
        self.pool_factory: Callable[[str | None, PoolSettings], Any] | None = None
        self.proxies = ProxyManager(
            block_threshold=settings.proxy_block_threshold,
            block_window=settings.proxy_block_window,
            backoff_base=settings.proxy_backoff_base,
            backoff_max=settings.proxy_backoff_max,
            base_delay=download_delay,
            throttle_delay=settings.proxy_throttle_delay,
            clock=clock,
            rng=self._rng,
        )
        self._pools: dict[str | None, SessionPool] = {}
        self._blocks: deque[float] = deque()
        self.created = 0
        self.retired: Counter[str] = Counter()

    # -- pools ------------------------------------------------------------------

    @property
    def pools(self) -> dict[str | None, SessionPool]:
        """The pools built so far, by name (``None`` is the default pool)."""
        return dict(self._pools)

    def __iter__(self) -> Iterator[tuple[str | None, SessionPool]]:
        return iter(list(self._pools.items()))

    def pool(self, name: str | None = None) -> SessionPool:
        """The named pool, built (and restored from the store) on first use."""
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = self._build(name)
        return pool

    def _build(self, name: str | None) -> Any:
        cfg = self.settings.for_pool(name)
        if self.pool_factory is not None:
            return self.pool_factory(name, cfg)
        candidates = cfg.proxies or (None,)
        user_agents = cfg.user_agents

        def create(pool: SessionPool) -> Session:
            proxy = self.proxies.pick(candidates, pool.sessions_count_by_proxy)
            agent = pool.rng.choice(user_agents) if user_agents else None
            return pool.make_session(proxy_url=proxy, user_agent=agent)

        pool = SessionPool(
            max_pool_size=cfg.max_pool_size,
            session_options=cfg.session_options,
            create_session_function=create,
            reuse_strategy=cfg.reuse_strategy,
            clock=self._clock,
            seed=self._rng.randrange(2**32),
            warm_up=cfg.warm_up,
        )
        if self.state_source is not None:
            self.restore(name, pool)
        pool.add_listener("session_created", self.session_created)
        pool.add_listener("session_retired", self.session_retired)
        for proxy in self.proxies.cooling:
            pool.pause_proxy(proxy)
        return pool

    def restore(self, name: str | None, pool: SessionPool) -> None:
        assert self.state_source is not None
        state = self.state_source.load(name)
        if state is None:
            return
        try:
            restored = pool.restore(state)
        except StateError as exc:
            self.state_source.reject(name, exc)
            return
        self.stat("restored", restored)
        logger.info("Session pool %s: restored %d session(s)", name or "default", restored)

    @property
    def rng(self) -> random.Random:
        return self._rng

    def session_created(self, session: Session) -> None:
        self.created += 1
        self.stat("created")

    def session_retired(self, session: Session) -> None:
        reason = session.retired_reason or "unknown"
        self.retired[reason] += 1
        self.stat("retired")
        self.stat(f"retired/{reason}")

    # -- handing out ------------------------------------------------------------

    def acquire(self, name: str | None = None, session_id: str | None = None) -> Any:
        """A session for a request, or None when the request must wait (exits cooling, pool busy).

        A pinned ``session_id`` that no longer exists gets a fresh session (and a stat).
        A shared pool answers with a coroutine that gives the same.
        """
        self._resume_due()
        pool = self.pool(name)
        if getattr(pool, "shared", False):
            return self._acquire_shared(pool, session_id)
        if session_id is not None:
            session = pool.get_session(session_id)
            if session is not None:
                return self._unless_cooling(session)
            self._pinned_missing(session_id)
        try:
            return pool.get_session()
        except NoHealthyProxy:
            return None

    async def _acquire_shared(self, pool: Any, session_id: str | None) -> Session | None:
        session, missing = await pool.acquire(session_id)
        if missing:
            self._pinned_missing(session_id)
        elif session is not None and session_id is not None:
            return self._unless_cooling(session)
        return session

    def _unless_cooling(self, session: Session) -> Session | None:
        if self.proxies.is_cooling(session.proxy_url):  # a request pinned to a cooling exit waits
            session.release()
            return None
        return session

    def _pinned_missing(self, session_id: str | None) -> None:
        self.stat("pinned_missing")
        logger.debug("Pinned session %s is gone; the request gets a fresh one", session_id)

    def wait_hint(self) -> float:
        """How long a request that could not get a session should wait before asking again."""
        return min(max(self.proxies.seconds_until_due(), 0.05), 1.0)

    def _resume_due(self) -> None:
        due = self.proxies.due()
        for proxy in due:
            logger.info("Proxy %s is back from its cool-down", redact(proxy) or "direct")
            for pool in self._pools.values():
                pool.resume_proxy(proxy)
        if due:
            self._stats_gauge()

    def _stats_gauge(self) -> None:
        self.stat("proxies_in_backoff", len(self.proxies.cooling), gauge=True)

    # -- verdicts ---------------------------------------------------------------

    def judge(self, session: Session, verdict: Verdict) -> bool:
        """Apply a verdict to the session (and its proxy); True when the request should rotate."""
        kind = verdict.kind
        if kind is VerdictKind.GOOD:
            session.mark_good()
            self.proxies.success(session.proxy_url)
            self.stat("marked_good")
            return False
        if kind is VerdictKind.BAD:
            session.mark_bad()
            self.stat("marked_bad")
            return False
        if kind is VerdictKind.NEUTRAL:
            session.release()
            return False
        self._note_block()
        already = self.proxies.is_cooling(session.proxy_url)
        if kind is VerdictKind.SESSION_BLOCKED and not (already or self._exit_suspected(session)):
            session.retire(verdict.reason)
            return True
        # the exit is blocked, not the session: keep the session, pause its proxy
        if kind is VerdictKind.PROXY_BLOCKED:
            self.proxies.cool_down(session.proxy_url, verdict.retry_after, rate_limited=True)
        session.release()
        if not already:  # more answers of a block already known: one log line, one stat
            self._pause(session.proxy_url, verdict.reason)
        return True

    def _exit_suspected(self, session: Session) -> bool:
        """Is the exit to blame for this session block rather than the session?

        Only blocks of sessions on their very first use count: a site that
        blocks sessions for their behaviour lets them work a while first,
        while a blocked IP refuses even brand-new sessions. Several such
        blocks in a row on one exit (no good answer through it in between)
        cool the exit down.
        """
        return session.usage_count == 0 and self.proxies.session_blocked(session.proxy_url, session.id)

    def _pause(self, proxy: str | None, reason: str) -> None:
        self.stat("proxy_blocks")
        self.stat(f"proxy_blocks/{reason}")
        logger.info(
            "Proxy %s cools down for %.1f s (%s); its sessions are kept",
            redact(proxy) or "direct",
            self.proxies.health(proxy).cooling_until - self._clock(),
            reason,
        )
        for pool in self._pools.values():
            pool.pause_proxy(proxy)
        self._stats_gauge()

    def _note_block(self) -> None:
        now = self._clock()
        self._blocks.append(now)
        while self._blocks and self._blocks[0] <= now - 60:
            self._blocks.popleft()

    # -- reporting --------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts for the periodic log line and the stats."""
        now = self._clock()
        while self._blocks and self._blocks[0] <= now - 60:
            self._blocks.popleft()
        return {
            "usable": sum(p.usable_sessions_count for p in self._pools.values()),
            "created": self.created,
            "retired": sum(self.retired.values()),
            "retired_by_reason": dict(self.retired),
            "blocks_per_minute": len(self._blocks),
            "proxies_in_backoff": len(self.proxies.cooling),
        }
