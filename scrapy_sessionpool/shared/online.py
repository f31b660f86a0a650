"""The shared pool while Redis answers: one Lua script per pick (through ``link``), writes sent in batches, in order.

Writes are queued and ride on the next pick's script (one round trip per pick), so a process
always sees its own writes and every process sees a retirement before its next pick. One batch
is on its way at a time, so Redis applies the writes in the order they were made. Every call
names the process (its hand-outs are leased to it, see ``leases``); a batch without an answer is
sent again under its id, and a pick without an answer is given back by the next call.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from typing import TYPE_CHECKING, Any

from ..core import reasons
from ..core.exceptions import StateError
from ..core.observer import Pick
from ..core.session import Session
from ..core.state import SESSION_ID_RE
from .queue import Batch, Op
from .remote_session import RemoteSession
from .schema import state_from_fields
from .scripts import REPLY_GONE, REPLY_RETIRED, REPLY_TALLIED

if TYPE_CHECKING:
    from .link import RedisLink
    from .pool import SharedPool

__all__ = ["BATCH", "FLUSH_DELAY", "Online"]

logger = logging.getLogger(__name__)

#: A session's hash and its cookies' hash, as Redis holds them.
Hashes = tuple[dict[str, str], dict[str, str]]

#: Queued writes sent in one batch at most.
BATCH = 500
#: How long a write waits for a pick to carry it before it is sent on its own.
FLUSH_DELAY = 0.1


class Online:
    """Picks and writes of a shared pool through Redis."""

    def __init__(self, shared: SharedPool, link: RedisLink) -> None:
        self.shared = shared
        self.link = link
        self._idle = asyncio.Event()  # cleared while a batch of writes is on its way
        self._idle.set()
        self._flushing = False
        self._timer: asyncio.TimerHandle | None = None
        self._carried_at = float("-inf")  # loop time of the last pick that carried writes
        self._tasks: set[asyncio.Task[None]] = set()
        self._picks = itertools.count(1)
        self._waiting: set[int] = set()  # picks on their way
        self._lost: set[int] = set()  # picks without a reply, until a call that carried them is answered

    def _pick_args(self) -> tuple[list[str], list[int]]:
        """The picks to give back and the lowest still on its way (see ``scripts.settle_picks``)."""
        lost = sorted(self._lost)[:50]
        low = min(self._waiting | self._lost, default=None)
        return [",".join(map(str, lost)), "" if low is None else str(low)], lost

    def _settled(self, lost: list[int]) -> None:
        self._lost.difference_update(lost)

    # -- picking -----------------------------------------------------------------------

    async def acquire(self, session_id: str | None, want: int = 1) -> tuple[Pick, list[Session]]:
        """A session from Redis (the queued writes go with the pick), and up to ``want - 1`` more
        hand-outs of ready sessions taken ahead for the next requests (none when the pick made a
        session). One more round trip fetches the cookies and user data of those that changed since
        this process last saw them."""
        shared, cfg = self.shared, self.shared.settings
        candidates = [p or "" for p in (cfg.proxies or (None,)) if not shared.refuses_new(p)]
        agent = shared.rng.choice(cfg.user_agents) if cfg.user_agents else ""
        args = [
            shared.base,
            repr(shared.clock()),
            cfg.max_pool_size,
            cfg.max_usage_count,
            repr(cfg.max_age_secs),
            int(cfg.warm_up),
            cfg.reuse_strategy,
            repr(cfg.max_error_score),
            repr(cfg.error_score_decrement),
            session_id or "",
            "session_" + secrets.token_urlsafe(16),
            agent,
        ]
        pick_id = next(self._picks)
        self._waiting.add(pick_id)
        picks, lost = self._pick_args()
        batch = self.take_batch()  # none while another batch is on its way: the pick does not wait
        if batch:
            self._carried_at = asyncio.get_event_loop().time()
        batch_id, *ops = batch.args()
        args += [shared.process_id, int(cfg.redis_lease_ttl * 1000), pick_id, *picks, batch_id, want]
        args += [len(shared.paused), *shared.paused, len(candidates), *candidates, *ops]
        try:
            writes, pick, expired, ahead = await self.link.eval("ACQUIRE", args)
        except self.link.errors as exc:
            self._lost.add(pick_id)
            shared.queue.failed(batch)
            shared.went_offline(exc)
            return (Pick(None, False) if shared.outage is None else shared.outage.pool.acquire(session_id)), []
        except BaseException:  # cancelled (the crawl closes): Redis may have run it, or not
            self._lost.add(pick_id)
            shared.queue.failed(batch)
            raise
        finally:
            self._waiting.discard(pick_id)
            self.batch_done(batch)
        self._settled(lost)
        self.applied(batch, writes)
        self.expired(expired)
        shared.live_count, shared.retired_count = int(pick[6]), int(pick[7])
        first, *more = await self._mirrored([pick, *ahead])
        missing = pick[0].startswith("missing")
        if first is not None and pick[0].endswith("created"):
            shared.on_created(first)
        return Pick(first, missing), [session for session in more if session is not None]

    async def _mirrored(self, picks: list[list[Any]]) -> list[RemoteSession | None]:
        """This process's copies of the picked sessions, each leased (None for a pick of none, or of
        one retired meanwhile); the data of those that changed is fetched in one round trip."""
        shared = self.shared
        stale = [sid for _status, sid, _usage, _errors, cv, uv, *_ in picks if sid and self._stale(sid, cv, uv)]
        try:
            fetched = dict(zip(stale, await self._fetch(stale), strict=True)) if stale else {}
        except BaseException as exc:  # Redis handed them out: they go back (with the replay, if Redis is away)
            for sid in (pick[1] for pick in picks):
                session = shared.mirrors.get(sid)
                if session is None and SESSION_ID_RE.fullmatch(sid):
                    session = RemoteSession(shared, id=sid, options=shared.options)
                if session is not None:
                    shared.append(Op(session, "release"))
            if not isinstance(exc, self.link.errors):
                raise
            shared.went_offline(exc)
            return [None] * len(picks)
        return [self._picked(pick, fetched) for pick in picks]

    def _stale(self, sid: str, cv: str, uv: str) -> bool:
        """Has this process no copy of the session, or an older one (a broken version counts as one)?"""
        session = self.shared.mirrors.get(sid)
        try:
            return session is None or session.cookies_version != int(cv) or session.user_data_version != int(uv)
        except ValueError:
            return True  # fetched: its hash's versions are checked there

    def _picked(self, pick: list[Any], fetched: dict[str, Hashes]) -> RemoteSession | None:
        _status, sid, usage, errors, _cv, _uv, _live, _retired, sus, until, strikes, condemned = pick
        shared = self.shared
        session = shared.mirrors.get(sid)
        if sid == "" or sid in shared.announced or (session is not None and session.is_retired):
            return None  # none, or one this process retired and Redis has not heard of yet
        try:
            if sid in fetched:
                fields, cookies = fetched[sid]
                if not fields:  # retired by another process a moment ago
                    return None
                session = self._mirror(sid, fields, cookies)
            assert session is not None
            session.take_counts(int(usage), float(errors))
            session.take_suspicion(float(sus) if sus else None, float(until), int(strikes), condemned == "1")
        except (StateError, ValueError) as exc:  # a hostile or broken value in Redis must not reach Scrapy
            logger.warning("Shared session %s has unusable data in Redis (%s): retiring it", sid, exc)
            if SESSION_ID_RE.fullmatch(sid):
                corrupt = RemoteSession(shared, id=sid, options=shared.options)
                shared.queue.append(Op(corrupt, "retire", reasons.CORRUPT_STATE))
            return None
        session.lease()
        return session

    async def _fetch(self, sids: list[str]) -> list[Hashes]:
        """The session and cookie hashes of each of ``sids``, in one round trip."""
        base = self.shared.base
        replies = await self.link.pipeline(*(("HGETALL", f"{base}:{kind}:{sid}") for sid in sids for kind in "sc"))
        return [(replies[i], replies[i + 1]) for i in range(0, len(replies), 2)]

    def _mirror(self, sid: str, fields: dict[str, str], cookies: dict[str, str]) -> RemoteSession:
        """This process's copy of a shared session, brought up to date. Raises StateError for bad data."""
        shared = self.shared
        try:
            cookies_version, user_data_version = int(fields.get("cv", 0)), int(fields.get("uv", 0))
        except ValueError as exc:
            raise StateError(f"bad versions ({exc})") from None
        checked = Session.from_state(
            state_from_fields(sid, fields, cookies),
            options=shared.options,
            clock=shared.clock,
            where="Redis session",
            on_problem=_left_out,
        )
        session = shared.mirrors.get(sid)
        if session is None:
            session = RemoteSession(
                shared,
                id=sid,
                options=shared.options,
                clock=shared.clock,
                created_at=checked.created_at,
                proxy_url=checked.proxy_url,
                user_agent=checked.user_agent,
            )
            shared.mirrors[sid] = session
        session.take_data(checked, fields.get("ud", ""), cookies_version, user_data_version)
        return session

    def expired(self, ids: list[str]) -> None:
        """Count the sessions a pick of this process retired for their age (Redis does it, not a write)."""
        shared = self.shared
        for sid in ids:
            if sid in shared.announced:  # retired and counted here while Redis was away
                continue
            session = shared.mirrors.pop(sid, None)
            if session is None and SESSION_ID_RE.fullmatch(sid):  # one this process never used
                session = RemoteSession(shared, id=sid, options=shared.options)
            if session is not None:
                shared.retired_by_redis(session, reasons.EXPIRED)
                shared.count_retired(session)

    # -- writes ------------------------------------------------------------------------

    def take_batch(self) -> Batch:
        """The next writes to send, or none while a batch is on its way: one batch at a time, so
        Redis applies them in order. The caller sends them, then calls :meth:`batch_done`, and
        ``queue.failed(batch)`` if no answer came."""
        if not self._idle.is_set():
            return Batch()
        batch = self.shared.queue.take(BATCH)
        if batch:
            self._idle.clear()
        return batch

    def batch_done(self, batch: Batch) -> None:
        if batch:
            self._idle.set()

    def apply_args(self, batch: Batch | list[Op], picks: list[str] | None = None) -> list[Any]:
        """The ARGV of ``APPLY`` (ops of no batch, as tests send them, are applied each time)."""
        shared, cfg = self.shared, self.shared.settings
        if isinstance(batch, list):
            batch = Batch("", batch)
        return [
            shared.base,
            repr(shared.clock()),
            cfg.max_pool_size,
            cfg.max_usage_count,
            repr(cfg.max_error_score),
            repr(cfg.error_score_decrement),
            int(cfg.warm_up),
            cfg.reuse_strategy,
            shared.process_id,
            *(picks or ["", ""]),
            *batch.args(),
        ]

    def applied(self, batch: Batch, replies: list[Any]) -> None:
        """Take in Redis's replies to a batch: retirements it decided, counts after the marks."""
        shared = self.shared
        shared.queue.confirmed(batch)
        for op, reply in zip(batch.ops, replies, strict=False):
            session = op.session
            if reply[0] in (REPLY_RETIRED, REPLY_GONE):
                shared.mirrors.pop(session.id, None)
                shared.announced.discard(session.id)
                shared.retired_by_redis(session, reply[1] if reply[0] == REPLY_RETIRED else reasons.GONE)
                if reply[0] == REPLY_RETIRED:  # "gone": retired by another process, or by an earlier write
                    shared.count_retired(session)
            elif reply[0] == REPLY_TALLIED:
                shared.announced.discard(session.id)
            elif op.kind in ("good", "bad", "marks") and len(reply) >= 3:
                session.take_counts(int(reply[1]), float(reply[2]))
            elif op.kind in ("cookie", "ud") and len(reply) >= 2:
                session.wrote(op.kind, int(reply[1]), op.fetch)

    def schedule_flush(self, delay: float) -> None:
        """Send queued writes within ``delay`` seconds, unless picks carry them first (on the asyncio
        loop, as Scrapy's reactor). While picks go out more often than that, no write is sent alone."""
        if self.shared.outage is not None:
            return
        loop = asyncio.get_event_loop()
        due = loop.time() + delay
        if self._timer is not None:
            if self._timer.when() <= due:
                return
            self._timer.cancel()  # a sooner one: a cookie or a retirement
        self._timer = loop.call_at(due, self._flush_due, delay)

    def _flush_due(self, delay: float) -> None:
        loop = asyncio.get_event_loop()
        self._timer = None
        if not self.shared.queue or self._flushing:
            return
        if delay and loop.time() - self._carried_at < delay:  # the picks are carrying the writes
            self._timer = loop.call_later(delay, self._flush_due, delay)
            return
        self._tasks = {t for t in self._tasks if not t.done()}
        self._tasks.add(loop.create_task(self.flush()))

    def stop(self) -> None:
        """No more writes sent on a timer (the pool closes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def flush(self) -> None:
        """Send every queued write now (until Redis fails: then the outage begins)."""
        shared = self.shared
        self._flushing = True
        try:
            while shared.queue and shared.outage is None:
                if not self._idle.is_set():
                    await self._idle.wait()
                    continue
                batch = self.take_batch()
                if not batch:  # every write taken was one Redis no longer needs
                    continue
                picks, lost = self._pick_args()
                try:
                    replies = await self.link.eval("APPLY", self.apply_args(batch, picks))
                except self.link.errors as exc:
                    shared.queue.failed(batch)
                    shared.went_offline(exc)
                    return
                finally:
                    self.batch_done(batch)
                self._settled(lost)
                self.applied(batch, replies)
        finally:
            self._flushing = False


def _left_out(kind: str, error: StateError) -> None:
    logger.warning("Left out an unusable %s of a shared session: %s", kind, error)
