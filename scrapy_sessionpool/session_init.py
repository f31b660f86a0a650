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
from twisted.internet.defer import Deferred, succeed

from .meta import FLAG_INIT, META_POOL, META_SESSION_ID

if TYPE_CHECKING:
    from collections.abc import Callable

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
        """Download ``request`` with this session, through the downloader middlewares."""
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
        self.hook = hook
        self._check = getattr(hook, "check", None) or getattr(hook, "check_session", None)
        self._init = getattr(hook, "init", None) or hook.init_session
        self._waiting: dict[str, list[Deferred[bool]]] = {}  # by session: who waits for its running init
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
        ok = False
        try:
            ok = await self._run(session, pool, pool_name)
        finally:
            pool.init_ended(session, ok)
            for waiter in self._waiting.pop(session.id, ()):
                waiter.callback(ok)
        self._counted(ok)

    async def _run(self, session: Session, pool: SessionPool, pool_name: str | None) -> bool:
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
        except IgnoreRequest as exc:
            logger.warning("Init of session %s%s failed: %s", session.id, _of(account), exc)
            return False
        except Exception as exc:  # noqa: BLE001 - the user's hook: any error fails this init alone
            logger.warning("Init of session %s%s failed: %s", session.id, _of(account), _hidden(_trace(exc), account))
            return False
        if session.is_retired:  # blocked during its init: the ban policy retired it
            logger.info("Init of session %s%s ended with the session retired", session.id, _of(account))
            return False
        return bool(result)

    def _counted(self, ok: bool) -> None:
        self.manager.stat("init/succeeded" if ok else "init/failed")
        if not ok and self.closing():
            return  # cut short by the close: it says nothing of the site
        if ok:
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
    from .core.accounts import SECRET

    for key, value in account.items():
        if SECRET.search(key) and isinstance(value, str) and value:
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
