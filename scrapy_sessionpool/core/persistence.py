"""A local pool kept in a store: restored when it opens, saved on demand, periodically and at teardown.

The Python form of the Apify SDK's ``openSessionPool(options)`` with
``persistStateKeyValueStoreId`` / ``persistStateKey``, ``persistState()`` and
``teardown()``: see :func:`open_session_pool`. A saved state is never lost: a bad
session or cookie is left out alone (with a warning, after a copy of the state is
kept), an unusable state is set aside, never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .exceptions import StateError
from .observer import RunInThread

if TYPE_CHECKING:
    from pathlib import Path

    from .pool import SessionPool

__all__ = ["ON_STATE_ERROR", "PoolKeeper", "Store", "open_session_pool"]

logger = logging.getLogger(__name__)

#: What to do with a saved state that cannot be used: set it aside and start empty, or stop.
ON_STATE_ERROR = ("start_fresh", "stop")
#: Apify's default ``persistStateKey``.
DEFAULT_KEY = "SDK_SESSION_POOL_STATE"

Stats = Callable[..., None]


class Store(Protocol):
    """Keeps JSON-safe pool states by key (``stores.FileStore``, ``stores.MemoryStore``, Redis snapshots).

    A store may also offer ``set_aside(key)`` (move an unusable state out of the way) and
    ``keep_copy(key)`` (copy a state before it is saved over); both return where it went.
    """

    def load(self, key: str) -> dict[str, Any] | None:
        """The state saved under ``key``, or None; :class:`StateError` when it is unusable."""

    def save(self, key: str, state: dict[str, Any]) -> None:
        """Save ``state`` under ``key``, replacing what was there (atomically)."""

    def describe(self, key: str) -> str:
        """Where ``key`` lives, for log lines (no credentials)."""


def _no_stats(key: str, count: int = 1, **kwargs: Any) -> None:
    pass


class PoolKeeper:
    """Keeps one local pool in a store under one key.

    :param on_error: ``"start_fresh"`` (set an unusable state aside, start empty) or ``"stop"``
        (raise :class:`StateError`).
    :param interval: seconds between periodic saves (None: only on demand and at teardown).
    :param on_error_name: the option or setting that set ``on_error``, named in its error.
    :param stats: ``stats(key, count=1)`` counts ``restored``, ``persisted``, ``persist_failed``,
        ``state_rejected`` and ``state/dropped_sessions`` / ``state/dropped_cookies``.
    """

    def __init__(
        self,
        pool: SessionPool,
        store: Store,
        key: str = DEFAULT_KEY,
        *,
        name: str | None = None,
        on_error: str = "start_fresh",
        interval: float | None = None,
        stats: Stats = _no_stats,
        on_error_name: str = "on_state_error",
    ) -> None:
        if on_error not in ON_STATE_ERROR:
            raise ValueError(
                f"on_state_error: expected one of {', '.join(map(repr, ON_STATE_ERROR))}, got {on_error!r}"
            )
        if interval is not None and not interval > 0:
            raise ValueError(f"persist_state_interval: expected a number of seconds > 0 or None, got {interval!r}")
        self.pool, self.store, self.key = pool, store, key
        self.name = name or "default"
        self.on_error = on_error
        self.interval = interval
        self.stat = stats
        self.on_error_name = on_error_name  # how the user set on_error, for the error message
        self.writable = True  # False once an unusable state could not be set aside: never save over it
        self._next_save = math.inf  # when get_session() makes the next periodic save
        self._task: asyncio.Task[None] | None = None  # the periodic saves inside ``async with``
        self._lock = asyncio.Lock()  # one save at a time, in the order they were captured

    @property
    def where(self) -> str:
        return self.store.describe(self.key)

    # -- restoring ---------------------------------------------------------------------

    def restore(self) -> int:
        """Load the saved state into the (empty) pool; returns how many sessions came back."""
        try:
            state = self.store.load(self.key)
        except StateError as exc:
            self.reject(exc)
            return 0
        finally:
            self._schedule()
        if state is None:
            return 0
        problems: list[StateError] = []

        def left_out(kind: str, error: StateError) -> None:
            problems.append(error)
            self.stat(f"state/dropped_{kind}s")

        try:
            restored = self.pool.restore(state, on_problem=left_out)
        except StateError as exc:
            self.reject(exc)
            return 0
        if problems:
            logger.warning(
                "Session pool %s: left out %d unusable part(s) of the saved state, restored the rest: %s%s",
                self.name,
                len(problems),
                "; ".join(str(p) for p in problems[:5]),
                " ..." if len(problems) > 5 else "",
            )
            self._keep_copy()
        self.stat("restored", restored)
        logger.info("Session pool %s: restored %d session(s)", self.name, restored)
        return restored

    def reject(self, error: StateError) -> None:
        """The saved state is unusable: stop (``on_error="stop"``) or set it aside and start empty."""
        if self.on_error == "stop":
            raise StateError(
                f"{self.where}: unusable session pool state ({error}); {self.on_error_name} is 'stop'"
            ) from error
        moved, failure = self._aside("set_aside")
        if failure is not None:
            logger.warning(
                "Session pool state %s is unusable (%s) and could not be moved aside (%s): "
                "starting with a fresh pool that will not be saved there",
                self.where,
                error,
                failure,
            )
            return
        logger.warning(
            "Session pool state %s is unusable (%s); kept it as %s and started with a fresh pool",
            self.where,
            error,
            moved or "(gone)",
        )
        self.stat("state_rejected")

    def _keep_copy(self) -> None:
        copy, failure = self._aside("keep_copy")
        if failure is not None:
            logger.warning(
                "Session pool state %s could not be copied before it is saved over (%s): it will not be saved there",
                self.where,
                failure,
            )
        elif copy is not None:
            logger.warning("Session pool state %s: kept the state as it was loaded in %s", self.where, copy)

    def _aside(self, verb: str) -> tuple[Path | None, OSError | None]:
        """Call the store's ``set_aside`` or ``keep_copy``: where the state went (None: nowhere, or the
        store has no such verb), and the error if it failed (then the key is never saved over)."""
        method = getattr(self.store, verb, None)
        if method is None:
            return None, None
        try:
            return method(self.key), None
        except OSError as exc:
            self.writable = False
            return None, exc

    # -- saving ------------------------------------------------------------------------

    def capture(self) -> Callable[[], None] | None:
        """Capture the pool now (cheap); the returned function encodes and saves it, in any thread.
        None when the pool must not be saved (its unusable state could not be set aside, or its
        user data is not JSON-safe: both logged)."""
        if not self.writable:
            logger.warning("Not saving session pool %s: %s could not be moved aside", self.name, self.where)
            return None
        try:
            build = self.pool.snapshot()
        except (TypeError, ValueError) as exc:  # user_data that JSON cannot hold
            self.failed(exc)
            return None
        return lambda: self.store.save(self.key, build())

    def persist_state(self) -> bool:
        """Save the pool now; False when it could not be saved (logged and counted)."""
        self._schedule()
        job = self.capture()
        return job is not None and self.run(job)

    async def persist_state_async(self, run_in_thread: RunInThread | None = None) -> bool:
        """Save the pool now from an event loop: captured at once, written by ``run_in_thread``
        (``asyncio.to_thread`` by default, so asyncio; Twisted's ``deferToThread`` works too). Under
        asyncio, overlapping saves run one at a time, in order; do not mix them with
        :meth:`persist_state` (a sync save does not wait for a threaded one)."""
        async with self._lock:
            self._schedule()
            job = self.capture()
            if job is None:
                return False
            return bool(await (run_in_thread or asyncio.to_thread)(lambda: self.run(job)))

    def teardown(self) -> bool:
        """Stop the periodic saves and save once more."""
        self._stop()
        saved = self.persist_state()
        self._next_save = math.inf
        return saved

    async def teardown_async(self, run_in_thread: RunInThread | None = None) -> bool:
        """:meth:`teardown` from an event loop: a periodic save under way ends first."""
        task = self._stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        saved = await self.persist_state_async(run_in_thread)
        self._next_save = math.inf
        return saved

    # -- periodic saves ----------------------------------------------------------------

    def due(self) -> bool:
        """Is a periodic save due (by the pool's clock)? ``get_session()`` asks."""
        next_save = self._next_save
        return next_save != math.inf and next_save <= self.pool.clock()

    def save_in_background(self) -> None:
        """Make the periodic saves in a task of the running event loop instead of in ``get_session()``."""
        if self.interval is not None and self._task is None:
            self._next_save = math.inf
            self._task = asyncio.get_running_loop().create_task(self._every(self.interval))

    async def _every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await asyncio.shield(self.persist_state_async())  # cancelled at teardown: a save under way ends

    def _schedule(self) -> None:
        if self.interval is not None and self._task is None:
            self._next_save = self.pool.clock() + self.interval

    def _stop(self) -> asyncio.Task[None] | None:
        self._next_save = math.inf
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    def run(self, job: Callable[[], None]) -> bool:
        """Run a :meth:`capture` job (in any thread) and count the outcome."""
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - a failed save must never stop the pool's user
            self.failed(exc)
            return False
        self.stat("persisted")
        return True

    def failed(self, error: Exception) -> None:
        logger.warning("Could not save session pool %s to %s: %s", self.name, self.where, error)
        self.stat("persist_failed")


def open_session_pool(
    *,
    store: Store | None = None,
    persist_state_key: str = DEFAULT_KEY,
    persist_state_interval: float | None = 60.0,
    on_state_error: str = "start_fresh",
    stats: Stats = _no_stats,
    name: str | None = None,
    **options: Any,
) -> SessionPool:
    """A pool built with ``options`` (those of :class:`SessionPool`), restored from ``store``.

    With a store, the pool saves itself under ``persist_state_key`` every
    ``persist_state_interval`` seconds (in ``get_session()``, or in a task of the running
    event loop inside ``async with``), on :meth:`SessionPool.persist_state` and at
    :meth:`SessionPool.teardown` (or the end of a ``with`` / ``async with`` block).
    Without one, nothing is saved. A saved state that is unusable is set aside (or raises
    :class:`StateError` with ``on_state_error="stop"``).
    """
    from .pool import SessionPool

    pool = SessionPool(**options)
    if store is not None:
        pool.keep_in(
            PoolKeeper(
                pool,
                store,
                persist_state_key,
                name=name,
                on_error=on_state_error,
                interval=persist_state_interval,
                stats=stats,
            )
        )
    pool.initialize()
    return pool
