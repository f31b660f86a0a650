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
from dataclasses import dataclass, replace
from typing import Any

from .core import reasons
from .core.accounts import Accounts
from .core.blame import Blame, Decision, Judge
from .core.jar_keys import JarKeys
from .core.observer import Avoid, Pending, Pick, Pool
from .core.pacing import Pacer
from .core.persistence import PoolKeeper, Store
from .core.pool import SessionPool
from .core.proxies import ProxyManager, redact
from .core.session import Session
from .core.verdict import Verdict, VerdictKind
from .settings import PoolSettings, SettingsError

__all__ = ["Outcome", "PoolManager"]

#: Sessions offered for one request when the first one's exit makes it wait.
PICKS = 4
#: The longest a challenge page's own delay (a meta refresh) is waited out before the re-fetch.
MAX_CHALLENGE_DELAY = 30.0

logger = logging.getLogger(__name__)

Stats = Callable[..., None]


@dataclass(frozen=True)
class Outcome:
    """What becomes of a request once its answer is judged.

    ``retry``: the request goes again instead of reaching the spider; ``same_session``: the session
    was not to blame, so a request pinned to it may keep it; ``challenge``: it is a re-fetch of a
    challenge page, after ``delay`` seconds, of ``url`` (None: the same URL); ``counted``: the
    retry counts against the request's rotations (not when it was a suspect session's test);
    ``browser``: the re-fetch goes to the session's browser (the challenge beat it over HTTP).
    """

    retry: bool = False
    same_session: bool = False
    counted: bool = True
    challenge: bool = False
    url: str | None = None
    delay: float = 0.0
    reason: str = ""
    browser: bool = False


_DELIVER = Outcome()


def _no_stats(key: str, count: int = 1, *, gauge: bool = False) -> None:
    pass


class PoolManager:
    """The pools of one crawler (one per ``sessionpool_pool`` name; ``None`` is the default)."""

    def __init__(
        self,
        settings: PoolSettings,
        *,
        clock: Callable[[], float] = time.time,
        stats: Stats = _no_stats,
        store: Store | None = None,
        state_key: str = "sessionpool",
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.stat = stats
        self._rng = random.Random(settings.seed)
        #: Where local pools are kept between runs (None: nowhere); with ``SESSIONPOOL_PERSIST_STATE_STORE``
        #: set to Redis, the pools live there instead, shared by every process.
        self.store = store
        self.state_key = state_key
        self.proxies = ProxyManager(clock=clock, rng=self._rng)
        self.judge = (settings.judge or Judge)(
            clock=clock,
            rng=self._rng,
            exit_sessions=settings.proxy_block_threshold,
            window=settings.proxy_block_window,
            site_share=settings.site_block_share,
            suspect_wait=settings.suspect_wait,
            backoff_base=settings.proxy_backoff_base,
            backoff_max=settings.proxy_backoff_max,
        )
        self.pacer = Pacer(clock=clock, min_delay=settings.proxy_throttle_delay, max_delay=settings.proxy_max_delay)
        self._pools: dict[str | None, Pool] = {}
        #: Which session each ``meta["cookiejar"]`` key holds.
        self.jar_keys = JarKeys()
        self._blocks: deque[float] = deque()
        self.created = 0
        self.retired: Counter[str] = Counter()
        self.blamed: Counter[str] = Counter()
        #: Sessions serve no request before their init (the middleware sets it when there is a hook).
        self.needs_init = False
        #: New sessions' header profiles (``SESSIONPOOL_FINGERPRINTS``: a ``fingerprints.HeaderProfiles``), or None.
        self.profiles: Any = None
        #: Requests carry their session's ``meta["impersonate"]`` (scrapy-impersonate's handler is on).
        self.impersonate = False
        #: Called with each session that retires, of any pool (the browser contexts close theirs).
        self.retired_hooks: list[Callable[[Session], None]] = []
        #: ``stop(reason)`` ends the crawl (the Scrapy glue sets it): a pool whose accounts are all retired.
        self.stop: Callable[[str], None] | None = None

    # -- pools ------------------------------------------------------------------

    @property
    def pools(self) -> dict[str | None, Pool]:
        """The pools built so far, by name (``None`` is the default pool)."""
        return dict(self._pools)

    def __iter__(self) -> Iterator[tuple[str | None, Pool]]:
        return iter(list(self._pools.items()))

    def pool(self, name: str | None = None) -> Pool:
        """The named pool, built (and restored from the store) on first use."""
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = self._build(name)
        return pool

    def key_for(self, name: str | None) -> str:
        """The store key of a pool: the state key, plus ``.<name>`` for a named pool."""
        return self.state_key if name is None else f"{self.state_key}.{name}"

    def _build(self, name: str | None) -> Pool:
        cfg = self.settings.for_pool(name)
        shared = self.store is not None and cfg.persist_state and cfg.redis_url is not None
        pool: Pool = self._shared(name, cfg) if shared else self._local(name, cfg)
        for proxy in self.proxies.cooling:
            pool.pause_proxy(proxy)
        return pool

    def _local(self, name: str | None, cfg: PoolSettings) -> SessionPool:
        """A pool in this process, restored from the store (see ``core.persistence``)."""
        candidates = cfg.proxies or (None,)
        user_agents = cfg.user_agents

        def create(pool: SessionPool) -> Session:
            proxy = self.proxies.pick(candidates, pool.sessions_count_by_proxy)
            if self.profiles is not None:
                headers = self.profiles.new()
                return pool.make_session(proxy_url=proxy, user_agent=headers.get("User-Agent"), headers=headers)
            agent = pool.rng.choice(user_agents) if user_agents else None
            return pool.make_session(proxy_url=proxy, user_agent=agent)

        accounts = (
            Accounts(
                cfg.accounts,
                rest_secs=cfg.account_rest_secs,
                max_blocks=cfg.account_max_blocks,
                on_event=lambda label, event: self.stat(f"accounts/{event}"),
            )
            if cfg.accounts
            else None
        )
        pool = SessionPool(
            **cfg.pool_options,
            create_session_function=create,
            clock=self._clock,
            seed=self._rng.randrange(2**32),
            accounts=accounts,
            needs_init=self.needs_init,
        )
        if self.store is not None:
            pool.keep_in(
                PoolKeeper(
                    pool,
                    self.store,
                    self.key_for(name),
                    name=name,
                    on_error=cfg.persist_state_on_error,
                    on_error_name="SESSIONPOOL_PERSIST_STATE_ON_ERROR",
                    stats=self.stat,
                )
            )
            pool.initialize()
        pool.add_listener("session_created", self.session_created)
        pool.add_listener("session_retired", self.session_retired)
        if accounts is not None:
            pool.add_listener("session_retired", lambda session: self._accounts_left(pool, name))
            self.stat("accounts/usable", len(accounts), gauge=True)
        return pool

    def _accounts_left(self, pool: SessionPool, name: str | None) -> None:
        accounts = pool.accounts
        assert accounts is not None
        self.stat("accounts/usable", len(accounts), gauge=True)
        if len(accounts) == 0 and pool.usable_sessions_count == 0 and self.stop is not None:
            logger.error(
                "Every account of pool %s is retired (SESSIONPOOL_ACCOUNT_MAX_BLOCKS): closing the spider",
                name or "default",
            )
            self.stop("accounts_exhausted")

    def _shared(self, name: str | None, cfg: PoolSettings) -> Pool:
        """The pool in Redis, shared by every process with the same URL and key."""
        from .shared import SharedPool

        assert cfg.redis_url is not None
        if cfg.accounts or self.needs_init or self.profiles is not None:
            raise SettingsError(
                "SESSIONPOOL_ACCOUNTS, SESSIONPOOL_FINGERPRINTS and session init (SESSIONPOOL_SESSION_INIT, a "
                "spider's init_session) work with the in-process pool only, not yet with a Redis store "
                "(SESSIONPOOL_PERSIST_STATE_STORE)"
            )
        return SharedPool(
            url=cfg.redis_url,
            key=self.key_for(name),
            settings=cfg,
            prefix=cfg.redis_prefix,
            ttl=cfg.redis_ttl,
            rng=self._rng,
            on_created=self.session_created,
            on_retired=self.session_retired,
            refuses_new=self.proxies.refuses_new,
            stats=self.stat,
            params=cfg.redis_params,
            cluster=cfg.redis_cluster,
        )

    @property
    def rng(self) -> random.Random:
        return self._rng

    def session_created(self, session: Session) -> None:
        self.created += 1
        self.stat("created")

    def session_retired(self, session: Session) -> None:
        self.judge.forget(session.id)
        self.jar_keys.forget(session.id)
        for hook in self.retired_hooks:
            hook(session)
        reason = session.retired_reason or "unknown"
        self.retired[reason] += 1
        self.stat("retired")
        self.stat(f"retired/{reason}")

    # -- handing out ------------------------------------------------------------

    def acquire(
        self,
        name: str | None = None,
        session_id: str | None = None,
        site: str | None = None,
        *,
        chained: bool = False,
        avoid: Avoid | None = None,
    ) -> Session | Pending[Session | None] | None:
        """A session for a request (to ``site``), or None when the request must wait (exits cooling,
        pool busy), or a :class:`Pending` one when the pool must ask elsewhere (Redis). Unpinned, it
        is the one whose exit's turn comes first, of a few the pool offers, and never one that
        ``avoid(session_id)`` refuses (sessions of other ``cookiejar`` keys). ``chained``: the request
        continues a redirect chain of ``session_id``, which goes on at once.

        A pinned ``session_id`` that no longer exists gets a fresh session (and a stat).
        """
        self._resume_due()
        pool = self.pool(name)
        pick = pool.acquire(session_id, avoid=avoid)
        if isinstance(pick, Pending):
            return Pending(self._later(pool, pick, session_id, site, chained, avoid))
        return self._chosen(pool, pick, session_id, site, chained, avoid)

    async def _later(
        self,
        pool: Pool,
        pending: Pending[Pick],
        session_id: str | None,
        site: str | None,
        chained: bool,
        avoid: Avoid | None,
    ) -> Session | None:
        return self._chosen(pool, await pending, session_id, site, chained, avoid)

    def _chosen(
        self, pool: Pool, pick: Pick, session_id: str | None, site: str | None, chained: bool, avoid: Avoid | None
    ) -> Session | None:
        session = pick.session
        if pick.pinned_missing:
            self._pinned_missing(session_id)
        elif session is not None and session_id is not None:
            return session if chained else self._unless_unfit(session)
        if session is None or site is None or not self.pacer.wait(site, session.proxy_url):
            return session
        return self._soonest(pool, session, site, avoid)

    def _soonest(self, pool: Pool, session: Session, site: str, avoid: Avoid | None) -> Session:
        """Of ``session`` and a few more, the one whose exit's turn comes first (the others go back):
        requests do not queue up behind a slowed exit while others are free."""
        best, best_wait = session, self.pacer.wait(site, session.proxy_url)
        for _ in range(PICKS - 1):
            other = pool.spare(avoid=avoid)
            if other is None:  # none at hand (or no exit takes a new session now): the best so far it is
                break
            # the same exit has the same turn (asked again a moment later, it only looks sooner)
            wait = best_wait if other.proxy_url == best.proxy_url else self.pacer.wait(site, other.proxy_url)
            if wait < best_wait:
                pool.put_back(best)
                best, best_wait = other, wait
            else:
                pool.put_back(other)
            if not best_wait:
                break
        return best

    def _unless_unfit(self, session: Session) -> Session | None:
        if not self.fit(session):  # a request pinned to a session sitting out, or to a cooling exit, waits
            session.release()
            return None
        return session

    def alive(self, name: str | None, session_id: str) -> bool:
        """Is the session still in its pool (a request pinned to it will get it, now or later)?"""
        return self.pool(name).find(session_id) is not None

    def fit(self, session: Session) -> bool:
        """May a request go out with this session now (usable, not sitting out, its exit not cooling)?"""
        return session.is_usable and not session.is_sitting_out and not self.proxies.is_cooling(session.proxy_url)

    def turn(self, site: str, session: Session) -> float | None:
        """Take the turn of a request to ``site`` with ``session`` if it is free (0.0), else the seconds
        to wait before asking again, or None while the exit or the site is being probed."""
        return self.pacer.turn(site, session.proxy_url)

    def _pinned_missing(self, session_id: str | None) -> None:
        self.stat("pinned_missing")
        logger.debug("Pinned session %s is gone; the request gets a fresh one", session_id)

    def wait_hint(self) -> float:
        """How long a request that could not get a session should wait before asking again."""
        return min(max(self.proxies.seconds_until_due(), 0.05), 0.5)

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

    def settle(
        self,
        session: Session,
        verdict: Verdict,
        *,
        site: str,
        sent_at: float,
        challenges: int = 0,
        escalate: bool = False,
    ) -> Outcome:
        """Apply a verdict on one answer (``challenges``: re-fetches of this request so far) and say
        what becomes of the request. ``escalate``: a challenge the same session could not get past
        is fetched once more in its browser instead of counting as a block."""
        kind = verdict.kind
        if session.is_retired and kind not in (VerdictKind.GOOD, VerdictKind.BAD, VerdictKind.NEUTRAL):
            self.pacer.answered(site, session.proxy_url)  # more of a session already retired: nothing new
            self._note_block(verdict.reason)  # but a block all the same, and the request moves on
            return Outcome(True, False, reason=verdict.reason)
        if kind is VerdictKind.GOOD:
            self._good(session, site, sent_at)
            return _DELIVER
        if kind is VerdictKind.BAD:
            session.mark_bad()
            self.pacer.answered(site, session.proxy_url)
            self.stat("marked_bad")
            return _DELIVER
        if kind is VerdictKind.NEUTRAL:
            session.release()
            if verdict.reason != "redirect":  # a redirect's answer is the page it leads to: a probe is still out
                self.pacer.answered(site, session.proxy_url)
            return _DELIVER
        if kind is VerdictKind.CHALLENGE:
            if challenges < self.settings.max_challenge_refetches:
                session.release()
                self.pacer.answered(site, session.proxy_url)
                self.stat("challenges")
                return Outcome(
                    True,
                    True,
                    False,
                    True,
                    verdict.url,
                    min(max(verdict.delay, 0.0), MAX_CHALLENGE_DELAY),
                    verdict.reason,
                )
            if escalate:
                session.release()
                self.pacer.answered(site, session.proxy_url)
                return Outcome(True, True, False, True, verdict.url, 0.0, verdict.reason, browser=True)
            verdict = Verdict.blocked(verdict.reason)  # the same session could not get past it
        self._note_block(verdict.reason)
        tested = session.is_suspect and not session.is_sitting_out  # its block is its own test
        if kind is VerdictKind.SESSION_BLOCKED:
            decision = Decision(Blame.SESSION, evidence="the ban policy blames the session")
        else:
            decision = self.judge.blocked(
                session,
                session.proxy_url,
                site,
                sent_at,
                verdict.retry_after,
                signal=verdict.reason,
                exits=self._exits_of(session),
                exit_is_blocked=kind is VerdictKind.PROXY_BLOCKED,
            )
        outcome = self._apply(session, decision, site, verdict.reason)
        return replace(outcome, counted=False) if tested else outcome

    def _good(self, session: Session, site: str, sent_at: float) -> None:
        proxy = session.proxy_url
        news = self.judge.good(session, proxy, site, sent_at)
        session.mark_good()
        self.stat("marked_good")
        self.pacer.answered(site, proxy)
        self.pacer.good(site, proxy)
        if news.session_cleared:  # it sat out its wait and is fine: it was not to blame
            session.clear_suspicion()
            self.stat("blame/cleared")
        for sid, signal in news.guilty:  # the control passed: the exit works, those sessions do not
            if (guilty := self._find(sid)) is not None:
                self.judge.guilty(proxy, site)
                self.blamed["session"] += 1
                self.stat("blame/session")
                logger.debug(
                    "Blame session for %s on %s via %s (%s): blocked again after its wait, while "
                    "another session got a good answer through the same exit",
                    signal,
                    site,
                    redact(proxy) or "direct",
                    sid,
                )
                guilty.retire(signal)
        if news.exit_closed:
            self.pacer.probe_exit(site, proxy, False)
            logger.debug("Exit %s works again for %s", redact(proxy) or "direct", site)
        if news.site_closed:
            self.pacer.probe_site(site, False)
            logger.info("Site %s answers well again", site)

    def _apply(self, session: Session, decision: Decision, site: str, reason: str) -> Outcome:
        blame = decision.blame
        proxy = session.proxy_url
        self.pacer.answered(site, proxy)
        if blame not in (Blame.KNOWN, Blame.NEWCOMER):
            self.blamed[blame.value] += 1
            self.stat(f"blame/{blame.value}")
            logger.debug(
                "Blame %s for %s on %s via %s (%s): %s",
                blame.value,
                reason,
                site,
                redact(proxy) or "direct",
                session.id,
                decision.evidence,
            )
        if blame is Blame.SESSION:
            self.judge.guilty(proxy, site)
            session.retire(reason)
            return Outcome(True, False, reason=reason)
        now = self._clock()
        for sid in decision.acquitted:
            if (acquitted := self._find(sid)) is not None:
                acquitted.acquit()
        if decision.newcomers:  # new sessions refused: drop them; a cap on new sessions: make none there a while
            if decision.wait:
                self.proxies.refuse_new(proxy, decision.wait)
                logger.info(
                    "Proxy %s refuses new sessions: none is made there for %.1f s; its sessions go on",
                    redact(proxy) or "direct",
                    decision.wait,
                )
            for sid in decision.newcomers:
                newcomer = session if sid == session.id else self._find(sid)
                if newcomer is not None:
                    newcomer.retire(reasons.NEW_SESSION_REFUSED)
            return Outcome(True, False, reason=reason)
        if blame is Blame.PENDING:
            session.suspect(now + decision.wait, strikes=decision.strikes, condemned=decision.condemned)
        else:
            until = now + max(decision.wait, self.judge.suspect_wait(None, 1))
            for sid in decision.suspects:  # kept, and tested again one by one once the exit works
                suspect = session if sid == session.id else self._find(sid)
                if suspect is not None:
                    suspect.suspect(max(until, suspect.sits_out_until), strikes=max(suspect.strikes, 1))
        if blame is Blame.EXIT:
            if decision.slow_down:
                self.pacer.slow_exit(site, proxy, since=decision.began)
            self.pacer.probe_exit(site, proxy)
            if decision.wait > 0 and self.proxies.cool_down(proxy, decision.wait):
                self._pause(proxy, reason)
        elif blame is Blame.SITE:
            for exit_url in decision.lifted:  # the site's breaker takes over from theirs
                self.pacer.probe_exit(site, exit_url, False)
                if self.proxies.lift(exit_url):
                    for pool in self._pools.values():
                        pool.resume_proxy(exit_url)
            self.pacer.slow_site(site, decision.wait, slow_down=decision.slow_down, since=decision.began)
            self.pacer.probe_site(site)
            logger.info(
                "Site %s is suspected (%s): %s, then one request at a time; sessions and exits are kept",
                site,
                reason,
                f"paused for {decision.wait:.1f} s" if decision.wait else "probed now",
            )
            self._stats_gauge()
        session.release()
        return Outcome(True, True, reason=reason)

    def _exits_of(self, session: Session) -> int:
        """How many exits the session's pool leaves through (its proxies, or the one direct connection)."""
        for name, pool in self._pools.items():
            if pool.find(session.id) is session:
                return len(self.settings.for_pool(name).proxies) or 1
        return len(self.settings.proxies) or 1

    def _find(self, session_id: str) -> Session | None:
        for pool in self._pools.values():
            session = pool.find(session_id)
            if session is not None:
                return session
        return None

    def _pause(self, proxy: str | None, reason: str) -> None:
        self.stat("proxy_blocks")
        self.stat(f"proxy_blocks/{reason}")
        logger.info(
            "Proxy %s cools down for %.1f s (%s); its sessions are kept",
            redact(proxy) or "direct",
            self.proxies.cooling_until(proxy) - self._clock(),
            reason,
        )
        for pool in self._pools.values():
            pool.pause_proxy(proxy)
        self._stats_gauge()

    def _note_block(self, reason: str) -> None:
        self.stat("blocks")
        self.stat(f"blocks/{reason}")
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
            "blamed": {b.value: self.blamed[b.value] for b in (Blame.SESSION, Blame.EXIT, Blame.SITE)},
        }
