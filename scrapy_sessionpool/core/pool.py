"""The session pool: creates sessions, hands them out, retires them, gives and takes state.

Semantics follow the Apify SDK ``SessionPool``: while the pool has room,
``get_session()`` creates a new session; once it is full, it picks one of its
sessions by the reuse strategy. Deliberate differences:

* a session that becomes unusable (retired, blocked, expired, used up) leaves
  the pool at once and frees its slot;
* a session is never handed out more often than its ``max_usage_count`` allows,
  counting requests still in flight (a hand-out is a lease, released by
  ``mark_good()`` / ``mark_bad()``);
* every operation but :meth:`get_state` and :meth:`restore` is O(1) amortised.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import reasons
from .exceptions import NoHealthyProxy, PoolFullError, StateError
from .observer import Avoid, Mark, Pick, RunInThread, SuspicionChange
from .options import SessionOptions
from .session import Clock, Session
from .state import STATE_VERSION, state_from_snapshot
from .strategies import make_strategy

if TYPE_CHECKING:
    from .accounts import Accounts
    from .persistence import PoolKeeper

__all__ = ["STATE_VERSION", "SessionPool"]

logger = logging.getLogger(__name__)


EVENTS = ("session_created", "session_retired")

Listener = Callable[[Session], Any]


class SessionPool:
    """A pool of :class:`~scrapy_sessionpool.Session` objects.

    :param max_pool_size: how many live sessions the pool holds at most.
    :param session_options: limits of new sessions, a dict (as Apify's
        ``sessionOptions``) or a :class:`~scrapy_sessionpool.SessionOptions`.
    :param create_session_function: ``f(pool) -> Session`` makes each new
        session (to log in, pick a proxy...); ``pool.make_session()`` builds one
        with the pool's options and clock.
    :param reuse_strategy: ``"random"`` (Apify's), ``"round_robin"`` or
        ``"use_until_failure"``.
    :param clock: returns the time in seconds; inject one in tests.
    :param seed: seeds the pool's random choices.
    :param warm_up: hand a new session to one request at a time until its
        first use is marked, so that the cookies its first answer sets go out
        with every later request (instead of each concurrent first request
        opening a server-side session of its own).
    :param accounts: one account per live session; the pool makes no session without a free one.
    :param needs_init: sessions serve no request before their init succeeded: a new one (or one
        whose init must be done again) is handed out once, to the caller that runs the init, and
        :meth:`init_ended` says how it went.
    """

    def __init__(
        self,
        *,
        max_pool_size: int = 1000,
        session_options: SessionOptions | Mapping[str, Any] | None = None,
        create_session_function: Callable[[SessionPool], Session] | None = None,
        reuse_strategy: str = "random",
        clock: Clock = time.time,
        seed: int | None = None,
        warm_up: bool = False,
        accounts: Accounts | None = None,
        needs_init: bool = False,
    ) -> None:
        if not isinstance(max_pool_size, int) or isinstance(max_pool_size, bool) or max_pool_size < 1:
            raise ValueError(f"max_pool_size: expected an integer >= 1, got {max_pool_size!r}")
        if create_session_function is not None and not callable(create_session_function):
            raise TypeError("create_session_function: expected a callable f(pool) -> Session")
        self._max_pool_size = max_pool_size
        self._options = SessionOptions.coerce(session_options)
        self._create_session_function = create_session_function
        self._reuse_strategy = reuse_strategy
        self._warm_up = warm_up
        self._clock = clock
        self._rng = random.Random(seed)
        self._ready = make_strategy(reuse_strategy, self._rng)
        self._live: dict[str, Session] = {}
        self._by_proxy: dict[str | None, dict[str, None]] = {}  # ordered, so that seeded runs repeat
        self._paused_proxies: set[str | None] = set()
        # (time, sequence, id): ties go in order of arrival, not of the ids' random text, so seeded runs repeat
        self._seq = itertools.count()
        self._expiry: list[tuple[float, int, str]] = []
        self._asleep: list[tuple[float, int, str]] = []  # sessions sitting out, by the end of their wait
        self._sitting: set[str] = set()  # ... and their ids (they leave room for fresh sessions meanwhile)
        self._condemned: set[str] = set()  # awaiting their control: they hold no room at all
        self._retired_count = 0
        self._listeners: dict[str, list[Listener]] = {e: [] for e in EVENTS}
        self._keeper: PoolKeeper | None = None
        self._accounts = accounts
        self._needs_init = needs_init
        self._initializing: set[str] = set()  # their init runs
        #: live, not initialised, held by nobody and initialised by nobody, in order: handed out for their init
        self._uninit: dict[str, None] = {}

    def __repr__(self) -> str:
        return (
            f"<SessionPool live={len(self._live)}/{self._max_pool_size} "
            f"retired={self._retired_count} strategy={self._reuse_strategy}>"
        )

    # -- configuration ----------------------------------------------------------

    @property
    def max_pool_size(self) -> int:
        return self._max_pool_size

    @property
    def session_options(self) -> SessionOptions:
        return self._options

    @property
    def reuse_strategy(self) -> str:
        return self._reuse_strategy

    @property
    def rng(self) -> random.Random:
        """The pool's seeded random generator, for create functions that pick at random."""
        return self._rng

    @property
    def accounts(self) -> Accounts | None:
        return self._accounts

    @property
    def needs_init(self) -> bool:
        return self._needs_init

    def add_listener(self, event: str, listener: Listener) -> None:
        """Call ``listener(session)`` on ``"session_created"`` or ``"session_retired"``."""
        if event not in self._listeners:
            raise ValueError(f"event: expected one of {', '.join(EVENTS)}, got {event!r}")
        self._listeners[event].append(listener)

    def remove_listener(self, event: str, listener: Listener) -> None:
        self._listeners[event].remove(listener)

    # -- counts -----------------------------------------------------------------

    @property
    def usable_sessions_count(self) -> int:
        """Live sessions: each is usable (some may be in use up to their limit)."""
        self._purge_expired()
        return len(self._live)

    @property
    def retired_sessions_count(self) -> int:
        """Sessions this pool has retired over its whole life, restored state included."""
        return self._retired_count

    def __len__(self) -> int:
        return self.usable_sessions_count

    def __iter__(self) -> Iterator[Session]:
        self._purge_expired()
        return iter(list(self._live.values()))

    # -- handing out ------------------------------------------------------------

    def make_session(self, **kwargs: Any) -> Session:
        """Build a session with this pool's options and clock, without adding it."""
        return Session(options=self._options, clock=self._clock, **kwargs)

    def get_session(self, session_id: str | None = None, *, avoid: Avoid | None = None) -> Session | None:
        """Hand out a session.

        Without ``session_id``: a new session while the pool has room, else one
        picked by the reuse strategy, never one whose id ``avoid`` refuses; ``None``
        only when the pool is full and every session is in use up to its usage
        limit, its proxy is paused or ``avoid`` refuses it.
        With ``session_id``: that session if it is in the pool and usable, else
        ``None``.
        """
        self._purge_expired()
        if self._asleep:
            self._wake_due()
        if self._keeper is not None and self._keeper.due():
            self._keeper.persist_state()
        if session_id is not None:
            session = self._live.get(session_id)
            if session is None or not session.is_usable:
                return None
        elif self._uninit and (session := self._take_uninit(avoid)) is not None:
            pass
        elif self._has_room():
            try:
                session = self._create()
            except NoHealthyProxy:
                if not self._ready:
                    raise
                session = self._pick_ready(avoid)  # no exit takes a new session now: reuse one
        else:
            session = self._pick_ready(avoid)
        if session is None:
            return None
        self._lease(session)
        return session

    def acquire(self, session_id: str | None = None, *, avoid: Avoid | None = None) -> Pick:
        """:meth:`get_session` for the :class:`~scrapy_sessionpool.core.observer.Pool` interface: a
        pinned session that is gone gets a fresh one; None when no exit takes a new session now."""
        if session_id is not None:
            session = self.get_session(session_id)
            if session is not None:
                return Pick(session)
        try:
            return Pick(self.get_session(avoid=avoid), session_id is not None)
        except NoHealthyProxy:
            return Pick(None, session_id is not None)

    def spare(self, *, avoid: Avoid | None = None) -> Session | None:
        """Another session, handed out, or None (the pool is busy, or no exit takes a new one).
        In a pool whose sessions need an init, only a ready one: a spare may be given back unused."""
        if self._needs_init:
            session = self._pick_ready(avoid)
            if session is not None:
                self._lease(session)
            return session
        try:
            return self.get_session(avoid=avoid)
        except NoHealthyProxy:
            return None

    def put_back(self, session: Session) -> None:
        """A hand-out the caller did not use: released."""
        session.release()

    def _pick_ready(self, avoid: Avoid | None) -> Session | None:
        """The strategy's pick among the ready sessions that ``avoid`` does not refuse."""
        if not self._ready:
            return None
        session = self._ready.pick()
        if avoid is None or not avoid(session.id):
            return session
        hidden = []
        try:
            while avoid(session.id):
                hidden.append(session)
                self._ready.discard(session)  # out of the strategy's sight while it picks again
                if not self._ready:
                    return None
                session = self._ready.pick()
            return session
        finally:
            for other in hidden:
                self._refresh(other)

    def _take_uninit(self, avoid: Avoid | None) -> Session | None:
        """A session waiting for its init (restored, or to be initialised again), for the caller to run it."""
        for sid in self._uninit:
            if avoid is None or not avoid(sid):
                del self._uninit[sid]
                return self._live[sid]
        return None

    def init_started(self, session: Session) -> None:
        """Somebody runs the init of ``session`` now: nobody else is handed it for that."""
        self._uninit.pop(session.id, None)
        self._initializing.add(session.id)

    def init_ended(self, session: Session, ok: bool, reason: str = reasons.INIT_FAILED) -> None:
        """The init of ``session`` is over: it serves requests now (``ok``), or it retires with ``reason``."""
        self._initializing.discard(session.id)
        if ok and not session.is_retired:
            session.set_initialized(True)
        elif not session.is_retired:
            session.retire(reason)

    def _await_init(self, session: Session) -> None:
        """A session nobody holds or initialises, that needs its init: the next hand-out is for that."""
        if (
            self._needs_init
            and not session._initialized
            and not session._leases
            and session.id not in self._initializing
        ):
            self._uninit[session.id] = None

    def init_again(self, session: Session) -> None:
        """``session`` lost what its init gave it (a check failed): it serves nothing until it is initialised again."""
        if self._needs_init and self._live.get(session.id) is session and session.initialized:
            session.set_initialized(False)

    def find(self, session_id: str) -> Session | None:
        """The live session with that id, without handing it out (no lease taken)."""
        session = self._live.get(session_id)
        return session if session is not None and session.is_usable else None

    def add_session(self, session: Session) -> None:
        """Add a session made elsewhere; the pool's clock becomes its clock."""
        if not isinstance(session, Session):
            raise TypeError(f"add_session: expected a Session, got {type(session).__name__}")
        self._purge_expired()
        if session.id in self._live:
            raise ValueError(f"add_session: a session with id {session.id!r} is already in the pool")
        if len(self._live) >= self._max_pool_size:
            raise PoolFullError(f"add_session: the pool is full ({self._max_pool_size} sessions)")
        if self._accounts is not None and (
            session.account is None or not self._accounts.hold(session.account, session.id)
        ):
            raise ValueError(f"add_session: session {session.id!r} needs an account of this pool that no session holds")
        previous = session.attach(self, clock=self._clock)
        if not session.is_usable:
            session.attach(previous)  # it stays its pool's
            raise ValueError(f"add_session: session {session.id!r} is not usable")
        self._adopt(session)

    def _create(self) -> Session:
        if self._create_session_function is None:
            session = self.make_session()
        else:
            session = self._create_session_function(self)
            if not isinstance(session, Session):
                raise TypeError(
                    f"create_session_function: expected it to return a Session, got {type(session).__name__}"
                )
            if session.id in self._live:
                raise ValueError(f"create_session_function: returned session {session.id!r} twice")
            if not session.is_usable:
                raise ValueError(f"create_session_function: returned an unusable session {session.id!r}")
        if self._accounts is not None:
            account = self._accounts.take(session.id, self._clock())
            if account is None:  # _has_room saw a free one
                raise RuntimeError("no free account")
            session._account = account.label
        self._adopt(session)
        self._uninit.pop(session.id, None)  # handed out now, for its init
        for listener in self._listeners["session_created"]:
            listener(session)
        return session

    def _adopt(self, session: Session) -> None:
        session.attach(self)
        self._live[session.id] = session
        self._by_proxy.setdefault(session.proxy_url, {})[session.id] = None
        heapq.heappush(self._expiry, (session.expires_at, next(self._seq), session.id))
        if session.sits_out_until > self._clock():
            heapq.heappush(self._asleep, (session.sits_out_until, next(self._seq), session.id))
            self._sitting.add(session.id)
        self._await_init(session)
        if len(self._expiry) > 2 * len(self._live) + 64:
            self._expiry = [(s.expires_at, next(self._seq), sid) for sid, s in self._live.items()]
            heapq.heapify(self._expiry)
        self._refresh(session)

    def _lease(self, session: Session) -> None:
        session.lease()
        self._refresh(session)

    def _has_room(self) -> bool:
        """Room for a new session: sessions sitting out after a block leave theirs to fresh ones meanwhile
        (the pool holds twice ``max_pool_size`` at most), condemned ones always (three times at most)."""
        condemned = len(self._condemned)
        held = len(self._live) - condemned - min(len(self._sitting - self._condemned), self._max_pool_size)
        return (
            held < self._max_pool_size
            and len(self._live) < 3 * self._max_pool_size
            and (self._accounts is None or self._accounts.free(self._clock()) > 0)
        )

    def _is_ready(self, session: Session) -> bool:
        # the hot path (twice per hand-out) reads the session's fields, not its properties: each is a call
        used, leases = session._usage_count, session._leases
        if self._needs_init and not session._initialized:
            return False
        if leases and (session._suspected_at is not None or (self._warm_up and not used)):
            return False  # a new or suspect session serves one request until its answer
        sits_out_until = session._sits_out_until
        return (
            used + leases < session._options.max_usage_count
            and (not self._paused_proxies or session._proxy_url not in self._paused_proxies)
            and not (sits_out_until and sits_out_until > self._clock())
        )

    def _refresh(self, session: Session) -> None:
        if self._is_ready(session):
            self._ready.add(session)
        else:
            self._ready.discard(session)

    # -- what sessions tell the pool (SessionObserver) -------------------------------

    def session_marked(self, session: Session, mark: Mark) -> None:
        if self._live.get(session.id) is not session:
            return
        self._await_init(session)
        if not session._sits_out_until:
            self._sitting.discard(session.id)
            self._condemned.discard(session.id)
        self._refresh(session)
        if mark == "bad":
            self._ready.failed(session)

    def session_suspected(self, session: Session, change: SuspicionChange) -> None:
        if change == "clear":
            self.session_marked(session, "release")
        else:
            self._session_sits_out(session)

    def session_retiring(self, session: Session, reason: str) -> bool:
        return True

    def _session_sits_out(self, session: Session) -> None:
        if self._live.get(session.id) is not session:
            return
        if session.is_condemned:
            self._condemned.add(session.id)
        else:
            self._condemned.discard(session.id)
        self._ready.discard(session)
        heapq.heappush(self._asleep, (session.sits_out_until, next(self._seq), session.id))
        self._sitting.add(session.id)
        if len(self._asleep) > 2 * len(self._live) + 64:
            self._asleep = [
                (s.sits_out_until, next(self._seq), sid) for sid, s in self._live.items() if sid in self._sitting
            ]
            heapq.heapify(self._asleep)

    def _wake_due(self) -> None:
        heap, now = self._asleep, self._clock()
        while heap and heap[0][0] <= now:
            *_, sid = heapq.heappop(heap)
            session = self._live.get(sid)
            if session is not None and session.sits_out_until <= now:  # not sent to sit out longer since
                self._sitting.discard(sid)
                self._refresh(session)

    def session_retired(self, session: Session) -> None:
        if self._live.get(session.id) is not session:
            return
        del self._live[session.id]
        self._initializing.discard(session.id)
        self._uninit.pop(session.id, None)
        if self._accounts is not None and session.account is not None:
            self._accounts.release(
                session.account,
                session.id,
                self._clock(),
                blocked=session.retired_reason not in reasons.NOT_ACCOUNT_BLOCKS,
            )
        self._sitting.discard(session.id)
        self._condemned.discard(session.id)
        self._ready.discard(session)
        ids = self._by_proxy[session.proxy_url]
        ids.pop(session.id, None)
        if not ids:
            del self._by_proxy[session.proxy_url]
        self._retired_count += 1
        for listener in self._listeners["session_retired"]:
            listener(session)

    def _purge_expired(self) -> None:
        heap = self._expiry
        if not heap:
            return
        now = self._clock()
        while heap and heap[0][0] <= now:
            *_, sid = heapq.heappop(heap)
            session = self._live.get(sid)
            if session is not None and session.expires_at <= now:
                session.retire(reasons.EXPIRED)

    # -- proxies ----------------------------------------------------------------

    def sessions_count_by_proxy(self, proxy_url: str | None) -> int:
        """How many live sessions leave through ``proxy_url``."""
        return len(self._by_proxy.get(proxy_url, ()))

    def pause_proxy(self, proxy_url: str | None) -> None:
        """Keep the sessions of ``proxy_url`` but stop handing them out (pinned ones aside)."""
        self._paused_proxies.add(proxy_url)
        for sid in self._by_proxy.get(proxy_url, ()):
            self._ready.discard(self._live[sid])

    def resume_proxy(self, proxy_url: str | None) -> None:
        """Hand out the sessions of ``proxy_url`` again."""
        self._paused_proxies.discard(proxy_url)
        for sid in self._by_proxy.get(proxy_url, ()):
            self._refresh(self._live[sid])

    # -- persistence (open_session_pool) -------------------------------------------

    def keep_in(self, keeper: PoolKeeper) -> None:
        """Persist this pool through ``keeper`` (see :func:`~scrapy_sessionpool.core.persistence.open_session_pool`)."""
        self._keeper = keeper

    @property
    def keeper(self) -> PoolKeeper | None:
        return self._keeper

    @property
    def clock(self) -> Clock:
        return self._clock

    def initialize(self) -> int:
        """Restore the pool from its store (Apify's ``initialize()``); returns how many sessions came back."""
        return self._keeper.restore() if self._keeper is not None else 0

    def persist_state(self) -> bool:
        """Save the pool to its store now (Apify's ``persistState()``); False if it could not be saved."""
        return self._keeper.persist_state() if self._keeper is not None else False

    async def persist_state_async(self, run_in_thread: RunInThread | None = None) -> bool:
        """:meth:`persist_state` for an event loop: captured now, encoded and written in a thread."""
        return await self._keeper.persist_state_async(run_in_thread) if self._keeper is not None else False

    def teardown(self) -> bool:
        """Stop the periodic saves and save once more (Apify's ``teardown()``)."""
        return self._keeper.teardown() if self._keeper is not None else False

    async def teardown_async(self, run_in_thread: RunInThread | None = None) -> bool:
        """:meth:`teardown` for an event loop: a periodic save under way ends first, then it saves."""
        return await self._keeper.teardown_async(run_in_thread) if self._keeper is not None else False

    def __enter__(self) -> SessionPool:  # noqa: PYI034 - typing.Self is Python 3.11+
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    async def __aenter__(self) -> SessionPool:  # noqa: PYI034 - typing.Self is Python 3.11+
        if self._keeper is not None:
            self._keeper.save_in_background()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.teardown_async()

    # -- the Pool interface's lifecycle (a crawl's extension drives it) ---------------

    async def start(self) -> None:
        """Nothing to connect to: the pool was restored when it was opened."""

    async def save(self, run_in_thread: RunInThread) -> bool:
        return await self.persist_state_async(run_in_thread)

    async def close(self, run_in_thread: RunInThread) -> None:
        await self.teardown_async(run_in_thread)

    # -- state ------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """A JSON-safe dict of the live sessions, with a schema ``version``."""
        return self.snapshot()()

    def snapshot(self) -> Callable[[], dict[str, Any]]:
        """Capture the state now, cheaply; the returned function builds :meth:`get_state`'s
        dict from the capture and may run in another thread (persisting off the reactor)."""
        self._purge_expired()
        rows = [s.snapshot() for s in self._live.values()]
        retired = self._retired_count
        accounts = self._accounts.to_state() if self._accounts is not None else None

        def build() -> dict[str, Any]:
            state: dict[str, Any] = {
                "version": STATE_VERSION,
                "retired_sessions_count": retired,
                "sessions": [state_from_snapshot(row) for row in rows],
            }
            if accounts:
                state["accounts"] = accounts
            return state

        return build

    def restore(self, state: Any, on_problem: Callable[[str, StateError], None] | None = None) -> int:
        """Load sessions from :meth:`get_state` output into this empty pool.

        Each session keeps its id, cookies, proxy, user agent, user data and
        counters; its limits come from this pool's ``session_options``.
        Expired and retired sessions are dropped (and counted as retired), as
        are sessions beyond ``max_pool_size``. The whole state is validated
        before anything is loaded: a :class:`StateError` leaves the pool as it
        was. With ``on_problem``, a bad session or cookie is left out alone and
        reported to it (see :func:`parse_state`). Returns how many sessions were restored.
        """
        if self._live:
            raise ValueError("restore: the pool already has sessions; restore into a new pool")
        gc_was_on = gc.isenabled()
        gc.disable()  # restore allocates many objects and frees none: collecting meanwhile only costs
        try:
            sessions, retired_count = parse_state(
                state, options=self._options, clock=self._clock, on_problem=on_problem
            )
        finally:
            if gc_was_on:
                gc.enable()
        if self._accounts is not None and isinstance(state, dict):
            for problem in self._accounts.restore(state.get("accounts")):
                if on_problem is None:
                    raise problem
                on_problem("account", problem)
        now = self._clock()
        restored = dropped = 0
        for session in sessions:
            if session.is_retired or session.expires_at <= now or not session.is_usable:
                retired_count += 1
            elif len(self._live) >= self._max_pool_size:
                dropped += 1
            elif self._accounts is not None and (
                session.account is None or not self._accounts.hold(session.account, session.id)
            ):
                retired_count += 1  # its account is gone from the settings, retired, or taken
                logger.info("Restored session %s left out: its account is no longer available", session.id)
            else:
                self._adopt(session)
                restored += 1
        self._retired_count += retired_count
        if dropped:
            logger.info("Restored pool is over max_pool_size=%d: %d session(s) left out", self._max_pool_size, dropped)
        return restored

    @classmethod
    def from_state(cls, state: Any, **kwargs: Any) -> SessionPool:
        """A new pool built with ``kwargs`` and restored from ``state``."""
        pool = cls(**kwargs)
        pool.restore(state)
        return pool


def parse_state(
    state: Any,
    *,
    options: SessionOptions | None = None,
    clock: Clock = time.time,
    on_problem: Callable[[str, StateError], None] | None = None,
) -> tuple[list[Session], int]:
    """Validate pool state; return its sessions and its retired count. Raises :class:`StateError`;
    with ``on_problem``, only for the state as a whole: a bad session or cookie is left out and
    reported as ``on_problem("session" or "cookie", error)``."""
    if not isinstance(state, dict):
        raise StateError(f"pool state: expected an object, got {type(state).__name__}")
    version = state.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateError(f"pool state.version: expected a schema version (an integer >= 1), got {version!r}")
    if version > STATE_VERSION:
        raise StateError(
            f"pool state.version: schema version {version} is newer than this "
            f"scrapy-sessionpool reads ({STATE_VERSION}); upgrade to load it"
        )
    retired = state.get("retired_sessions_count", 0)
    if not isinstance(retired, int) or isinstance(retired, bool) or not 0 <= retired < 2**53:
        raise StateError("pool state.retired_sessions_count: expected an integer >= 0")
    items = state.get("sessions")
    if not isinstance(items, list):
        raise StateError("pool state.sessions: expected a list")
    sessions: list[Session] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"pool state.sessions[{i}]"
        try:
            session = Session.from_state(item, options=options, clock=clock, where=where, on_problem=on_problem)
            if session.id in seen:
                raise StateError(f"{where}: duplicate session id {session.id!r}")
        except StateError as exc:
            if on_problem is None:
                raise
            on_problem("session", exc)
            continue
        seen.add(session.id)
        sessions.append(session)
    return sessions, retired
