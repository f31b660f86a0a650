"""Session init: a new session logs in (or warms up) with requests of its own before it serves any other.

The hook is the spider's ``async def init_session(self, init)`` (and optionally
``def check_session(self, response, request)``), or a class named by ``SESSIONPOOL_SESSION_INIT``
with ``async def init(self, init)`` (and optionally ``check``), built from the crawler. The hook
sends its requests with ``await init.fetch(request)``: each is pinned to the session and goes
through the whole downloader middleware chain (cookies, proxy, redirects, the ban policy), not
through the spider. It returns True (ready) or False; None lets ``check`` decide on the last
answer (without ``check``: ready if an answer came).
"""

from __future__ import annotations

import inspect
import logging
import traceback
from typing import TYPE_CHECKING, Any
from weakref import WeakSet

from scrapy.exceptions import IgnoreRequest
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet import defer
from twisted.internet.defer import Deferred, succeed

from .core import reasons
from .meta import FLAG_INIT, META_POOL, META_SESSION_ID

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from .core.accounts import Account
    from .core.pool import SessionPool
    from .core.session import Session
    from .manager import PoolManager

__all__ = ["InitRunner", "SessionInit", "close_spider"]

logger = logging.getLogger(__name__)

_CLOSED: WeakSet[Crawler] = WeakSet()
#: Why the spider closes after ``SESSIONPOOL_MAX_BAD_INITS`` failed inits in a row.
BAD_INITS = "bad_session_inits"


class SessionInit:
    """What an init hook gets: the session it prepares, the session's account, and :meth:`fetch`."""

    def __init__(self, crawler: Crawler, session: Session, pool_name: str | None, account: Account | None) -> None:
        self._crawler = crawler
        self.session = session
        self.pool_name = pool_name
        #: The session's account (``SESSIONPOOL_ACCOUNTS``), or None.
        self.account = account
        #: The last answer :meth:`fetch` got.
        self.response: Response | None = None

    async def fetch(self, request: Request) -> Response:
        """Download ``request`` with this session, through the downloader middlewares.
        Raises ``IgnoreRequest`` once the session is retired (the ban policy saw it blocked)."""
        if self.session.is_retired:
            raise IgnoreRequest(f"sessionpool: session {self.session.id} retired during its init")
        request.meta[META_SESSION_ID] = self.session.id
        request.meta[META_POOL] = self.pool_name
        request.meta[FLAG_INIT] = True
        engine = self._crawler.engine
        assert engine is not None
        if hasattr(engine, "download_async"):  # Scrapy >= 2.14
            response = await engine.download_async(request)
        else:
            response = await maybe_deferred_to_future(engine.download(request))
        self.response = response
        return response


class InitRunner:
    """Runs each session's init once at a time, and stops the spider after too many failures in a row."""

    def __init__(self, crawler: Crawler, manager: PoolManager, hook: Any, closing: Callable[[], bool]) -> None:
        self.crawler = crawler
        #: Has the crawl begun to close?
        self.closing = closing
        self.manager = manager
        self._check = getattr(hook, "check", None) or getattr(hook, "check_session", None)
        self._init = getattr(hook, "init", None) or hook.init_session
        self._waiting: dict[str, list[Deferred[bool]]] = {}  # by session: who waits for its running init
        self._fresh: set[str] = set()  # initialised, no answer passed the check since
        self._bad_in_row = 0
        self._stopping = False

    @classmethod
    def from_crawler(cls, crawler: Crawler, manager: PoolManager, closing: Callable[[], bool]) -> InitRunner | None:
        """The runner of the configured hook; None when there is none."""
        from scrapy.utils.misc import build_from_crawler

        cls_ = manager.settings.session_init
        if cls_ is not None:
            return cls(crawler, manager, build_from_crawler(cls_, crawler), closing)
        spider = crawler.spider
        if spider is not None and callable(getattr(spider, "init_session", None)):
            return cls(crawler, manager, spider, closing)
        return None

    @property
    def has_check(self) -> bool:
        return self._check is not None

    def check(self, response: Response, request: Request) -> bool:
        """Is the session still what its init made it? (True without a ``check``.)"""
        return True if self._check is None else bool(self._check(response, request))

    def ready(self, session: Session, pool: SessionPool, pool_name: str | None) -> Deferred[bool]:
        """Fires with True once ``session`` is ready (at once if it is), False if its init failed.
        The init runs on its own, once however many requests wait for it: a waiting request
        may stop waiting (the crawl closes) without stopping the init."""
        if session.initialized:
            return succeed(not session.is_retired)
        waiter: Deferred[bool] = Deferred()
        waiting = self._waiting.get(session.id)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        self._waiting[session.id] = [waiter]
        pool.init_started(session)
        deferred_from_coro(self._drive(session, pool, pool_name))
        return waiter

    async def _drive(self, session: Session, pool: SessionPool, pool_name: str | None) -> None:
        reason = reasons.INIT_ERROR  # unless the run says otherwise: an error of ours fails the init too
        try:
            reason = await self._timed(self._run(session, pool, pool_name), session)
        finally:
            ok = reason == ""
            try:
                pool.init_ended(session, ok, reason or reasons.INIT_ERROR)
            finally:
                for waiter in self._waiting.pop(session.id, ()):
                    waiter.callback(ok)
                if ok:
                    self._fresh.add(session.id)
                self._counted(ok, counts=reason != reasons.INIT_INTERRUPTED)

    async def _timed(self, run: Coroutine[Any, Any, str], session: Session) -> str:
        """``run``'s reason, or ``init_interrupted`` past ``SESSIONPOOL_INIT_TIMEOUT`` or at the close."""
        from twisted.internet import reactor

        timeout = self.manager.settings.init_timeout
        done = deferred_from_coro(run)
        done.addTimeout(timeout, reactor)
        try:
            reason: str = await maybe_deferred_to_future(done)
        except (defer.TimeoutError, defer.CancelledError):
            logger.warning("Init of session %s took more than %g s (SESSIONPOOL_INIT_TIMEOUT)", session.id, timeout)
            return reasons.INIT_INTERRUPTED
        return reasons.INIT_INTERRUPTED if reason and self.closing() else reason

    async def _run(self, session: Session, pool: SessionPool, pool_name: str | None) -> str:
        """Run the hook: "" once the session is ready, else why not (a reason to retire it with)."""
        accounts = pool.accounts
        account = accounts.get(session.account) if accounts is not None and session.account else None
        init = SessionInit(self.crawler, session, pool_name, account)
        self.manager.stat("init/started")
        try:
            result = self._init(init)
            if inspect.isawaitable(result):
                result = await result
            if result is None:
                response = init.response
                result = response is not None and self.check(response, response.request or response)  # type: ignore[arg-type]
        except IgnoreRequest as exc:  # a download of the init failed (or was refused): the account's fault, maybe
            logger.warning("Init of session %s%s failed: %s", session.id, _of(account), _hidden(str(exc), account))
            return reasons.INIT_FAILED
        except Exception as exc:  # noqa: BLE001 - the user's hook: any error fails this init alone
            logger.warning("Init of session %s%s failed: %s", session.id, _of(account), _hidden(_trace(exc), account))
            return reasons.INIT_ERROR
        if session.is_retired:  # blocked during its init: the ban policy retired it
            logger.info("Init of session %s%s ended with the session retired", session.id, _of(account))
            return reasons.INIT_FAILED
        return "" if result else reasons.INIT_FAILED

    def fresh(self, session: Session) -> bool:
        """Has ``session`` had no answer that passed the check since its init? (The first one clears it.)"""
        return session.id in self._fresh

    def passed(self, session: Session) -> None:
        """An answer of ``session`` passed the check: the first since its init proves the init good."""
        if session.id in self._fresh:
            self._fresh.discard(session.id)
            self._bad_in_row = 0

    def failed_check(self, session: Session) -> None:
        """The first answer after its init failed the check: the init did not work after all."""
        self._fresh.discard(session.id)
        logger.info("Session %s failed the check on its first answer after its init: retired", session.id)
        session.retire(reasons.INIT_FAILED)
        self._counted(False)

    def _counted(self, ok: bool, *, counts: bool = True) -> None:
        """Count an init; ``counts``: toward the bad-init stop (not when cut short by the close or a timeout)."""
        self.manager.stat("init/succeeded" if ok else "init/failed")
        if not ok and not counts:
            return
        if ok:
            if self._check is None:  # with a check, the first answer that passes it proves the init good
                self._bad_in_row = 0
            return
        self._bad_in_row += 1
        limit = self.manager.settings.max_bad_inits
        if self._bad_in_row >= limit and not self._stopping:
            self._stopping = True
            logger.error(
                "%d session inits failed in a row (SESSIONPOOL_MAX_BAD_INITS = %d): closing the spider (%s)",
                self._bad_in_row,
                limit,
                BAD_INITS,
            )
            close_spider(self.crawler, BAD_INITS)


def _of(account: Account | None) -> str:
    return "" if account is None else f" (account {account.label!r})"


def _trace(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


def _hidden(text: str, account: Account | None) -> str:
    """``text`` with the account's secret values masked (a hook's error may quote them)."""
    if account is None:
        return text
    for value in sorted(account.secrets(), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def close_spider(crawler: Crawler, reason: str) -> None:
    """Close the crawl with ``reason`` (its ``finish_reason``), once."""
    engine = crawler.engine
    if engine is None or crawler in _CLOSED:
        return
    _CLOSED.add(crawler)
    if hasattr(engine, "close_spider_async"):  # Scrapy >= 2.14
        deferred_from_coro(engine.close_spider_async(reason=reason))
    elif crawler.spider is not None:
        engine.close_spider(crawler.spider, reason)
