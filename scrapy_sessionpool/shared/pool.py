"""One live pool in Redis, shared by every crawler process configured with the same URL and key.

The pool is in Redis; each process holds copies of the sessions it uses (:class:`RemoteSession`)
and is the observer of their changes, which it queues as writes. While Redis answers, picks and
writes go through it (``online``), and a pick may bring a few hand-outs for the next requests
(``hand``); when Redis cannot be reached, the process goes on with the sessions it knows
(``outage``) and replays the queued writes once Redis answers again.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from ..core import reasons
from ..core.observer import Avoid, Mark, Pending, Pick, RunInThread, SuspicionChange
from ..core.options import SessionOptions
from ..core.proxies import redact
from ..core.session import Session
from .hand import Hand
from .leases import Heartbeat
from .link import RedisLink
from .online import FLUSH_DELAY, Online
from .outage import Outage
from .queue import Op, WriteQueue
from .remote_session import RemoteSession
from .schema import pool_base, suspicion_json

if TYPE_CHECKING:
    from ..settings import PoolSettings

__all__ = ["SharedPool"]

logger = logging.getLogger(__name__)

#: How long a process waits before asking an unreachable Redis again.
RECONNECT_EVERY = 1.0
#: How many more sessions a request tries when Redis offers one it must avoid.
AVOID_TRIES = 8


def _nothing(session: Session) -> None:
    pass


class SharedPool:
    """The :class:`~scrapy_sessionpool.core.observer.Pool` interface over a Redis pool.

    ``acquire()`` answers at once with a hand-out taken ahead, else with a :class:`Pending` pick
    (one round trip) while Redis answers, at once during an outage; everything else is local and
    quick.
    """

    def __init__(
        self,
        *,
        url: str,
        key: str,
        settings: PoolSettings,
        prefix: str = "sessionpool",
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
        rng: Any = None,
        on_created: Callable[[Session], Any] = _nothing,
        on_retired: Callable[[Session], Any] = _nothing,
        refuses_new: Callable[[str | None], bool] | None = None,
        stats: Callable[..., None] | None = None,
        params: Mapping[str, Any] | None = None,
        cluster: bool = False,
    ) -> None:
        import random

        self.url = url
        self.key = key
        self.base = pool_base(prefix, key)
        self.settings = settings
        self.options = SessionOptions.coerce(settings.session_options)
        self.ttl = ttl
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.on_created = on_created
        self.on_retired = on_retired
        self.refuses_new = refuses_new or (lambda proxy: False)  # exits that take no new session now
        self.stat = stats or (lambda key, count=1, **kwargs: None)
        # params: redis-py client options (REDIS_PARAMS); cluster: the URL names a node of a Redis Cluster
        self.link = RedisLink(url, self.base, params, cluster=cluster)
        #: names this process's leases and batches in Redis
        self.process_id = secrets.token_hex(8)
        self.connected = Online(self, self.link)
        self.heartbeat = Heartbeat(self)
        #: hand-outs taken ahead for the next requests
        self.hand = Hand(
            settings.redis_prefetch,
            fit=self._fit,
            on_given_back=lambda count: self.stat("redis/prefetch_returned", count),
        )
        #: the local pool this process goes on with while Redis is away (None: Redis answers)
        self.outage: Outage | None = None
        self.queue = WriteQueue()
        self.mirrors: dict[str, RemoteSession] = {}
        self.announced: set[str] = set()  # retired while offline, on_retired already called
        self.paused: set[str] = set()
        self.live_count = 0
        self.retired_count = 0
        self._caught_up = True  # False from the first failure to the end of a complete replay
        self._last_attempt = 0.0
        self._deciding = False  # Redis's decision is being applied: nothing to send back

    def __repr__(self) -> str:
        return f"<SharedPool {redact(self.url)} {self.base} {'online' if self.is_online else 'outage'}>"

    @property
    def is_online(self) -> bool:
        return self.outage is None

    # -- the Pool interface ------------------------------------------------------------

    @property
    def max_pool_size(self) -> int:
        return self.settings.max_pool_size

    @property
    def usable_sessions_count(self) -> int:
        return self.live_count if self.outage is None else self.outage.pool.usable_sessions_count

    @property
    def retired_sessions_count(self) -> int:
        return self.retired_count

    def __iter__(self) -> Iterator[Session]:
        return iter([s for s in self.mirrors.values() if s.is_usable])

    def find(self, session_id: str) -> Session | None:
        session = self.mirrors.get(session_id)
        return session if session is not None and session.is_usable else None

    def acquire(self, session_id: str | None = None, *, avoid: Avoid | None = None) -> Pick | Pending[Pick]:
        if self.outage is not None:
            if not self._reconnect_due():
                return self.outage.pool.acquire(session_id, avoid=avoid)
        else:
            session = self.hand.take(session_id, avoid)
            if session is not None:
                return Pick(session)
        return Pending(self.pick(session_id, avoid=avoid))

    async def pick(self, session_id: str | None = None, *, avoid: Avoid | None = None) -> Pick:
        """:meth:`acquire`, awaited: a session that ``avoid`` does not refuse (a few tries), or None."""
        while session_id is None and self.outage is None:  # the hand, or a call on its way, may serve it
            session = self.hand.take(avoid=avoid)
            if session is not None:
                return Pick(session)
            if not self.hand.coming:
                break
            await self.hand.arrival()
        pick = await self._ask(session_id, avoid, ahead=True)
        session = pick.session
        pinned = session is not None and session_id is not None and not pick.pinned_missing
        if pinned or avoid is None or session is None or not avoid(session.id):
            return pick
        refused = [session]
        try:
            for _ in range(AVOID_TRIES):
                session = self.hand.take(avoid=avoid) or (await self._ask(None, avoid)).session
                if session is None or not avoid(session.id):
                    return Pick(session, pick.pinned_missing)
                refused.append(session)
            return Pick(None, pick.pinned_missing)
        finally:
            for other in refused:
                self.put_back(other)

    async def _ask(self, session_id: str | None, avoid: Avoid | None, *, ahead: bool = False) -> Pick:
        """One pick from Redis (with hand-outs taken ahead for the hand when ``ahead``), or from the
        outage pool."""
        if self.outage is not None and not await self._reconnect():
            return self.outage.pool.acquire(session_id, avoid=avoid)
        want = self.hand.want() if ahead else 1
        taken: list[Session] = []
        try:
            pick, taken = await self.connected.acquire(session_id, want)
        finally:
            self.hand.put(taken, want - 1)
        if taken:
            self.stat("redis/prefetched", len(taken))
        return pick

    def spare(self, *, avoid: Avoid | None = None) -> Session | None:
        if self.outage is not None:
            return None
        return self.hand.take(avoid=avoid)  # no round trip for a spare

    def put_back(self, session: Session) -> None:
        if self.outage is None and self._fit(session):
            self.hand.put([session])  # still leased: the next request takes it
        else:
            session.release()

    def _fit(self, session: Session) -> bool:
        """May a hand-out taken ahead still serve (its session live, not sitting out, its exit not paused)?"""
        return session.is_usable and not session.is_sitting_out and (session.proxy_url or "") not in self.paused

    def pause_proxy(self, proxy_url: str | None) -> None:
        self.paused.add(proxy_url or "")
        self.hand.give_back(lambda session: (session.proxy_url or "") == (proxy_url or ""))
        if self.outage is not None:
            self.outage.pool.pause_proxy(proxy_url)

    def resume_proxy(self, proxy_url: str | None) -> None:
        self.paused.discard(proxy_url or "")
        if self.outage is not None:
            self.outage.pool.resume_proxy(proxy_url)

    async def start(self) -> None:
        """Read the pool's size: how many live sessions other runs left in it."""
        try:
            live, retired = await self.link.pipeline(
                ("ZCARD", self.link.keys[0]), ("HGET", self.link.keys[2], "retired")
            )
        except self.link.errors as exc:
            self.went_offline(exc)
        else:
            self.live_count, self.retired_count = int(live), int(retired or 0)
        self.stat("restored", self.live_count)
        logger.info("Session pool %s: %d live session(s) in the shared pool", self.base, self.live_count)
        if self.outage is None:
            await self.heartbeat.beat()  # hand-outs of processes that died before this one started come back now
        self.heartbeat.start()

    async def save(self, run_in_thread: RunInThread | None = None) -> bool:
        """Redis holds the pool: send the queued writes, renew the TTL."""
        await self.touch()
        self.stat("persisted")
        return self.is_online

    async def close(self, run_in_thread: RunInThread | None = None) -> None:
        if self.outage is not None:
            self._last_attempt = float("-inf")  # one last try, however recent the previous one
        self.hand.clear()
        await self.save()
        self.connected.stop()
        await self.heartbeat.stop()
        if self.queue:
            logger.warning(
                "Redis at %s is still unreachable: %d write(s) queued since the outage are lost "
                "(Redis keeps every write it received)",
                redact(self.url),
                len(self.queue),
            )
        await self.link.close()

    async def flush(self) -> None:
        """Send every queued write now."""
        await self.connected.flush()

    async def touch(self) -> None:
        """Flush, and renew the TTL of the pool's keys when ``SESSIONPOOL_REDIS_TTL`` is set."""
        if self.outage is not None and not await self._reconnect():
            return
        await self.flush()
        if self.ttl is not None and self.outage is None:
            try:
                await self.link.eval("TOUCH", [self.base, int(self.ttl)])
            except self.link.errors as exc:
                self.went_offline(exc)

    def retry_now(self) -> None:
        """Ask an unreachable Redis again at the next pick, however recent the last attempt."""
        self._last_attempt = float("-inf")

    # -- what its sessions tell it (SessionObserver) -------------------------------------

    def session_marked(self, session: Session, mark: Mark) -> None:
        session = cast("RemoteSession", session)  # a shared pool observes only its remote sessions
        if mark != "release":
            user_data = session.user_data_json()
            if user_data != session.sent_user_data:
                self.append(Op(session, "ud", user_data, fetch=session.fetches))
                session.sent_user_data = user_data
        self.append(Op(session, mark))
        self.connected.schedule_flush(FLUSH_DELAY)
        if self.outage is not None:
            self.outage.pool.session_marked(session, mark)

    def session_suspected(self, session: Session, change: SuspicionChange) -> None:
        remote = cast("RemoteSession", session)
        self.append(Op(remote, change, suspicion_json(remote) if change == "suspect" else ""))
        self.connected.schedule_flush(FLUSH_DELAY)
        if self.outage is not None:
            self.outage.pool.session_suspected(session, change)

    def session_retiring(self, session: Session, reason: str) -> bool:
        # Redis decides the retirements that follow from counts and age, from the marks of every
        # process; its reply retires this copy
        return self._deciding or self.outage is not None or reason not in reasons.COMPUTED

    def session_retired(self, session: Session) -> None:
        session = cast("RemoteSession", session)
        if self._deciding:  # Redis did it: nothing to send, but the outage pool must let it go
            if self.outage is not None:
                self.outage.pool.session_retired(session)
            return
        self.append(Op(session, "retire", session.retired_reason or reasons.MANUAL))
        self.connected.schedule_flush(0)  # it must reach the other processes before their next pick
        if self.outage is not None:  # this process decides alone until Redis is back
            self.outage.pool.session_retired(session)
            self.outage.retired(session)

    def cookie_changed(self, session: RemoteSession, field: str, value: str) -> None:
        self.append(Op(session, "cookie", field, value, fetch=session.fetches))
        self.connected.schedule_flush(0)  # it must reach the other processes before their next pick

    # -- bookkeeping ---------------------------------------------------------------------

    def append(self, op: Op) -> None:
        self.queue.append(op)
        if self.outage is not None:
            self.outage.queued()

    def retired_by_redis(self, session: RemoteSession, reason: str) -> None:
        """Retire this process's copy of a session Redis retired (nothing to send back)."""
        self._deciding = True
        try:
            session.retire(reason)
        finally:
            self._deciding = False

    def count_retired(self, session: RemoteSession) -> None:
        if not session.retirement_counted:
            session.retirement_counted = True
            self.on_retired(session)

    # -- when Redis is away ------------------------------------------------------------

    def went_offline(self, error: BaseException) -> None:
        self._last_attempt = time.monotonic()
        if self.outage is not None:  # another request's call failed too: one outage, one local pool
            return
        self.hand.clear()  # given back with the replay
        if not self._caught_up:  # it answered a ping, then refused the replay: the same outage goes on
            logger.debug("Redis at %s failed again during the replay (%s)", redact(self.url), error)
        else:
            self._caught_up = False
            logger.warning(
                "Redis at %s is unreachable (%s): the session pool goes on with the %d session(s) this process "
                "knows and will catch up when Redis answers again",
                redact(self.url),
                error,
                len(self.mirrors),
            )
        self.outage = Outage(self)
        self.outage.take_in(list(self.mirrors.values()))

    def _reconnect_due(self) -> bool:
        return time.monotonic() - self._last_attempt >= RECONNECT_EVERY

    async def _reconnect(self) -> bool:
        if not self._reconnect_due():
            return False
        self._last_attempt = time.monotonic()
        if not await self.link.ping():
            return False
        queued = len(self.queue)
        self.outage = None  # made anew, from what Redis told this process meanwhile, if the replay fails
        await self.flush()
        if self.outage is not None:  # it answers pings but still refuses writes (out of memory, read-only)
            return False
        logger.warning("Redis at %s answers again: %d queued write(s) replayed", redact(self.url), queued)
        self._caught_up = True
        return True
