"""The hand: hand-outs of shared sessions a process took from Redis ahead of its next requests.

A pick that goes to Redis may bring back a few more hand-outs of ready sessions (never new
ones: a pool with room makes a session per request, as a local pool does). They are leased and
counted in Redis like any hand-out, so usage limits, warm-ups and ``MAX_POOL_SIZE`` hold as
before; the next requests take them at once, without a round trip. A hand-out is given back
unused after ``ttl`` seconds, or as soon as its session is no longer fit (retired, its exit
cooling down, sitting out), so a session retired by another process is used here at most ``ttl``
seconds after its retirement.

How many hand-outs one call asks for follows the crawl's pace: the hand doubles (up to its
limit) when the last ones went within half the TTL, and halves when some were given back
unused. A slow crawl asks for one at a time, as without a hand. Requests that find the hand
empty while a call is on its way wait for what it brings (:meth:`arrival`) rather than make a
call each, and a call asks only for what the calls on their way do not bring, so the hand never
holds more than its size.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..core.observer import Avoid
from ..core.session import Session

__all__ = ["PREFETCH_TTL", "Hand"]

#: Seconds a hand-out waits in the hand before it is given back unused.
PREFETCH_TTL = 0.5


class Hand:
    """Leased hand-outs waiting for a request, oldest first."""

    def __init__(
        self,
        limit: int,
        *,
        ttl: float = PREFETCH_TTL,
        fit: Callable[[Session], bool] = lambda session: session.is_usable,
        clock: Callable[[], float] = time.monotonic,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
        on_given_back: Callable[[int], None] = lambda count: None,
    ) -> None:
        self.limit = max(limit, 1)
        self.ttl = ttl
        self.fit = fit
        self.clock = clock
        self._call_later = call_later
        self.on_given_back = on_given_back
        #: how many hand-outs the next call to Redis asks for (this request's included)
        self.size = 1
        self._held: list[tuple[Session, float]] = []
        self._coming = 0  # hand-outs asked for ahead by calls on their way
        self._waiters: list[asyncio.Future[None]] = []
        self._asked_at = float("-inf")
        self._timer: Any = None

    def __len__(self) -> int:
        return len(self._held)

    def __iter__(self) -> Iterator[Session]:
        return iter([session for session, _ in self._held])

    def want(self) -> int:
        """How many hand-outs to ask Redis for now (the request's, and those ahead): called when a
        request found none in the hand. Say what came with :meth:`put`."""
        now = self.clock()
        if not self._held and not self._coming and now - self._asked_at < self.ttl / 2:  # they went quickly
            self.size = min(self.size * 2, self.limit)
        self._asked_at = now
        ahead = max(self.size - 1 - len(self._held) - self._coming, 0)
        self._coming += ahead
        return 1 + ahead

    @property
    def coming(self) -> int:
        """Hand-outs asked for ahead by calls on their way."""
        return self._coming

    def arrival(self) -> asyncio.Future[None]:
        """Done when hand-outs come to the hand, or a call on its way comes back without them."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def put(self, sessions: list[Session], asked: int = 0) -> None:
        """Hold hand-outs (leased already) for the next requests: those a call brought that asked
        for ``asked`` ahead (its ``want() - 1``; it may bring fewer, or none if it failed), or a
        spare put back (``asked`` 0)."""
        self._coming = max(self._coming - asked, 0)
        if sessions:
            now = self.clock()
            self._held.extend((session, now) for session in sessions)
            if self._timer is None:
                self._timer = self._later(self.ttl, self._expire_due)
        if sessions or asked:
            self._wake()

    def take(self, session_id: str | None = None, avoid: Avoid | None = None) -> Session | None:
        """A hand-out of ``session_id`` (of any session when None) that ``avoid`` does not refuse, or
        None. Hand-outs gone stale or unfit on the way are given back."""
        if not self._held:
            return None
        self.expire()
        i = 0
        while i < len(self._held):
            session = self._held[i][0]
            if session_id is not None and session.id != session_id:
                i += 1
            elif not self.fit(session):
                del self._held[i]
                self._release([session])
            elif avoid is not None and avoid(session.id):
                i += 1
            else:
                del self._held[i]
                return session
        return None

    def expire(self) -> None:
        """Give back the hand-outs held for the TTL (and ask for fewer from now on)."""
        deadline = self.clock() - self.ttl
        old = 0
        while old < len(self._held) and self._held[old][1] <= deadline:
            old += 1
        if old:
            stale, self._held = self._held[:old], self._held[old:]
            self._release([session for session, _ in stale])
            self.size = max(self.size // 2, 1)

    def clear(self) -> None:
        """Give every hand-out back (Redis went away, or the pool closes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, []
        self._release([session for session, _ in held])
        self._wake()

    def give_back(self, which: Callable[[Session], bool]) -> None:
        """Give back the hand-outs of the sessions ``which`` selects (of an exit that cools down)."""
        kept: list[tuple[Session, float]] = []
        dropped: list[tuple[Session, float]] = []
        for entry in self._held:
            (dropped if which(entry[0]) else kept).append(entry)
        self._held = kept
        self._release([session for session, _ in dropped])

    def _release(self, sessions: list[Session]) -> None:
        for session in sessions:
            session.release()
        if sessions:
            self.on_given_back(len(sessions))

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _expire_due(self) -> None:
        self._timer = None
        self.expire()
        if self._held:  # the rest expire later
            wait = self._held[0][1] + self.ttl - self.clock()
            self._timer = self._later(max(wait, 0.0), self._expire_due)

    def _later(self, delay: float, f: Callable[[], None]) -> Any:
        if self._call_later is not None:
            return self._call_later(delay, f)
        return asyncio.get_event_loop().call_later(delay, f)
