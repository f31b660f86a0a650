"""What a session tells the pool that holds it, and what every pool offers its users.

A session never calls its pool's private methods: it reports each change to its
:class:`SessionObserver` (the local :class:`~scrapy_sessionpool.core.pool.SessionPool`,
or the shared Redis pool), which keeps its own indexes up to date. The manager and the
middleware hold a :class:`Pool` and never ask which kind it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Avoid", "Mark", "Pending", "Pick", "Pool", "SessionObserver", "SuspicionChange"]

T = TypeVar("T")

#: A use of a session: ``"good"`` and ``"bad"`` count; ``"release"`` gives back a hand-out unused.
Mark = Literal["good", "bad", "release"]
#: A change of a session's suspicion: it sits out, is acquitted by its control, or is cleared.
SuspicionChange = Literal["suspect", "acquit", "clear"]
#: ``avoid(session_id)`` is True for sessions a request must not get (those of other cookiejar keys).
Avoid = Callable[[str], bool]


class SessionObserver(Protocol):
    """The pool a session belongs to, as the session sees it."""

    def session_marked(self, session: Session, mark: Mark) -> None:
        """The session was used and is still live, or a hand-out was given back (``"release"``,
        retired or not: a pool may count hand-outs in flight)."""

    def session_suspected(self, session: Session, change: SuspicionChange) -> None:
        """The session's suspicion changed (``"acquit"`` and ``"clear"`` may come after retirement)."""

    def session_retiring(self, session: Session, reason: str) -> bool:
        """May the session retire now? False: the pool decides it later (a shared pool decides
        the retirements that follow from counts, from the marks of every process)."""

    def session_retired(self, session: Session) -> None:
        """The session retired for good."""


class Pick(NamedTuple):
    """A pool's answer to a request for a session."""

    session: Session | None  #: None: no session now (the pool is busy, or every exit cools down)
    pinned_missing: bool = False  #: the pinned session is gone: ``session`` is a fresh one (or None)


class Pending(Generic[T]):
    """An answer that comes later (a shared pool asks Redis): ``await`` it."""

    __slots__ = ("_awaitable",)

    def __init__(self, awaitable: Awaitable[T]) -> None:
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, None, T]:
        return self._awaitable.__await__()


class Pool(Protocol):
    """What the manager and the middleware use of a pool, local or shared."""

    @property
    def max_pool_size(self) -> int: ...

    @property
    def usable_sessions_count(self) -> int: ...

    @property
    def retired_sessions_count(self) -> int: ...

    def __iter__(self) -> Iterator[Session]: ...

    def find(self, session_id: str) -> Session | None:
        """The live session with that id, without handing it out."""

    def acquire(self, session_id: str | None = None, *, avoid: Avoid | None = None) -> Pick | Pending[Pick]:
        """Hand out the pinned session, else a session ``avoid`` does not refuse (a new one while
        there is room). A :class:`Pending` when the answer needs a round trip."""

    def spare(self, *, avoid: Avoid | None = None) -> Session | None:
        """Another session, handed out, if one can be had at once (else None)."""

    def put_back(self, session: Session) -> None:
        """A hand-out the caller did not use (a spare it did not choose): released, or kept at hand
        for the next request."""

    def pause_proxy(self, proxy_url: str | None) -> None:
        """Keep the sessions of ``proxy_url`` but stop handing them out (pinned ones aside)."""

    def resume_proxy(self, proxy_url: str | None) -> None:
        """Hand out the sessions of ``proxy_url`` again."""

    async def start(self) -> None:
        """The crawl begins: connect to where the pool lives (a local pool is ready already)."""

    async def save(self, run_in_thread: RunInThread) -> bool:
        """Persist the pool now (the slow part through ``run_in_thread``); False if it could not."""

    async def close(self, run_in_thread: RunInThread) -> None:
        """The crawl ends: persist and let go of connections."""


#: Runs ``f()`` off the event loop's thread and gives its result (``asyncio.to_thread``, Twisted's
#: ``deferToThread``...).
RunInThread = Callable[[Callable[[], Any]], Awaitable[Any]]
