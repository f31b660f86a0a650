"""The downloader middleware: a pool session for every request, a verdict for every answer.

Enable it at priority 650: after ``RedirectMiddleware`` (600) in the response
path, so that cookies set by redirects reach the session and blocks are judged
before ``RetryMiddleware`` (550) retries them; before ``CookiesMiddleware``
(700) and ``HttpProxyMiddleware`` (750) in the request path.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from scrapy import signals
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http.cookies import WrappedRequest, WrappedResponse
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached

from .exceptions import SessionPoolError
from .helpers import (
    FLAG_COOKIE_HEADER,
    FLAG_COOKIES,
    FLAG_PROXY,
    FLAG_SLOT,
    FLAG_USER_AGENT,
    META_ENABLED,
    META_POOL,
    META_SESSION_ID,
    get_manager,
    rotate,
)
from .policy import build_policy
from .proxies import proxy_label

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from .session import Session

__all__ = ["MetaError", "SessionPoolMiddleware"]

logger = logging.getLogger(__name__)

_POOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class MetaError(SessionPoolError, ValueError):
    """A ``sessionpool_*`` request meta key has a wrong type or value."""


class SessionPoolMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.manager = get_manager(crawler)
        if not self.manager.settings.enabled:
            raise NotConfigured("SESSIONPOOL_ENABLED is False")
        self.policy = build_policy(crawler, self.manager.settings.ban_policy)
        self._in_flight: WeakKeyDictionary[Request, Session] = WeakKeyDictionary()
        self._default_user_agent = (crawler.settings.get("USER_AGENT") or "").encode()
        self._base_delay = crawler.settings.getfloat("DOWNLOAD_DELAY")
        self._autothrottle = crawler.settings.getbool("AUTOTHROTTLE_ENABLED")
        self._slot_delays: dict[str, float] = {}
        crawler.signals.connect(self._spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SessionPoolMiddleware:
        return cls(crawler)

    # -- request path -----------------------------------------------------------

    def process_request(self, request: Request, spider: Spider | None = None) -> Coroutine[Any, Any, None] | None:
        meta = request.meta
        enabled = meta.get(META_ENABLED, True)
        if enabled is not True:
            if enabled is False:
                return None
            raise MetaError(f"Request meta {META_ENABLED!r}: expected True or False, got {enabled!r}")
        pool_name = meta.get(META_POOL)
        if pool_name is not None and (not isinstance(pool_name, str) or not _POOL_NAME.fullmatch(pool_name)):
            raise MetaError(
                f"Request meta {META_POOL!r}: expected a pool name of 1-64 characters [A-Za-z0-9_.-], got {pool_name!r}"
            )
        session_id = meta.get(META_SESSION_ID)
        if session_id is not None and not isinstance(session_id, str):
            raise MetaError(f"Request meta {META_SESSION_ID!r}: expected a session id string, got {session_id!r}")
        session = self.manager.acquire(pool_name, session_id)
        if session is None or inspect.isawaitable(session):
            return self._apply_later(request, session, pool_name, session_id)
        self._apply(request, session)
        return None

    async def _apply_later(
        self, request: Request, pending: Any, pool_name: str | None, session_id: str | None
    ) -> None:
        """Wait for a session: a shared pool's answer, or the end of a cool-down or of a busy spell."""
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        session = await pending if pending is not None else None
        if session is None:
            self.manager.stat("waits")
        while session is None:
            await maybe_deferred_to_future(deferLater(reactor, self.manager.wait_hint(), lambda: None))
            result = self.manager.acquire(pool_name, session_id)
            session = await result if inspect.isawaitable(result) else result
        self._apply(request, session)

    def _apply(self, request: Request, session: Session) -> None:
        """Give ``request`` the session's cookies, proxy, User-Agent and download slot."""
        meta = request.meta
        headers = request.headers
        self._in_flight[request] = session
        meta[META_SESSION_ID] = session.id

        if meta.pop(FLAG_COOKIE_HEADER, False):
            headers.pop(b"Cookie", None)  # a retry or redirect copy: built for another URL or session
        if meta.get(FLAG_COOKIES) or not meta.get("dont_merge_cookies"):
            meta["dont_merge_cookies"] = True  # keeps CookiesMiddleware's jars out of session requests
            meta[FLAG_COOKIES] = True
            jar = session.cookie_jar
            if request.cookies:
                _store_request_cookies(request, jar)
            if b"Cookie" not in headers:
                jar.add_cookie_header(WrappedRequest(request))
                meta[FLAG_COOKIE_HEADER] = b"Cookie" in headers

        proxy = session.proxy_url
        if meta.pop(FLAG_PROXY, False):
            meta.pop("proxy", None)
        if proxy is not None and "proxy" not in meta:
            meta["proxy"] = proxy
            meta[FLAG_PROXY] = True

        agent = session.user_agent
        if meta.pop(FLAG_USER_AGENT, False):
            headers[b"User-Agent"] = self._default_user_agent
        if agent is not None and headers.get(b"User-Agent") in (None, self._default_user_agent):
            headers[b"User-Agent"] = agent  # a User-Agent the request chose itself wins
            meta[FLAG_USER_AGENT] = True

        if meta.pop(FLAG_SLOT, False):
            meta.pop("download_slot", None)
        if proxy is not None and self.manager.settings.proxy_slots and "download_slot" not in meta:
            meta["download_slot"] = f"{urlparse_cached(request).hostname}@{proxy_label(proxy)}"
            meta[FLAG_SLOT] = True

    # -- response path ----------------------------------------------------------

    def process_response(self, request: Request, response: Response, spider: Spider | None = None) -> Request | Response:
        session = self._in_flight.pop(request, None)
        if session is None:
            return response
        if request.meta.get(FLAG_COOKIES):
            session.cookie_jar.extract_cookies(WrappedResponse(response), WrappedRequest(request))
        verdict = self.policy.response_verdict(request, response)
        if not self.manager.judge(session, verdict):
            self._pace(request, session)
            return response
        self._pace(request, session)
        new = rotate(request, self.crawler, verdict.reason)
        if new is not None:
            return new
        self.manager.stat("rotations_exhausted")
        logger.warning(
            "Gave up on %s: blocked (%s) on %d session(s) in a row (SESSIONPOOL_MAX_SESSION_ROTATIONS)",
            request,
            verdict.reason,
            self.manager.settings.max_session_rotations + 1,
        )
        raise IgnoreRequest(f"sessionpool: rotations exhausted ({verdict.reason})")

    def process_exception(self, request: Request, exception: Exception, spider: Spider | None = None) -> None:
        session = self._in_flight.pop(request, None)
        if session is not None:
            self.manager.judge(session, self.policy.exception_verdict(request, exception))
        return None

    def _pace(self, request: Request, session: Session) -> None:
        """Carry the exit's throttle delay over to its download slot (never below ``DOWNLOAD_DELAY``).

        With AutoThrottle on, this only ever raises a slot's delay: AutoThrottle eases it off.
        """
        key = request.meta.get("download_slot") if request.meta.get(FLAG_SLOT) else None
        if key is None:
            return
        delay = max(self._base_delay, self.manager.proxies.delay(session.proxy_url))
        if self._slot_delays.get(key, self._base_delay) == delay:
            return
        slot = self.crawler.engine.downloader.slots.get(key) if self.crawler.engine else None
        if slot is not None:
            slot.delay = max(slot.delay, delay) if self._autothrottle else delay
            self._slot_delays[key] = delay

    def _spider_closed(self, spider: Spider) -> None:
        for session in list(self._in_flight.values()):
            session.release()
        self._in_flight.clear()


def _store_request_cookies(request: Request, jar: Any) -> None:
    """Put the cookies a request carries (``Request(cookies=...)``) into the session's jar."""
    from scrapy.http import Response

    cookies = request.cookies
    items = cookies.items() if isinstance(cookies, dict) else None
    lines = []
    if items is not None:
        lines = [f"{k}={v}" for k, v in items]
    else:
        for c in cookies:
            if "name" not in c or "value" not in c or c["value"] is None:
                continue
            line = f"{c['name']}={c['value']}"
            for attr, key in (("Domain", "domain"), ("Path", "path")):
                if c.get(key):
                    line += f"; {attr}={c[key]}"
            if c.get("secure"):
                line += "; Secure"
            lines.append(line)
    if not lines:
        return
    fake = Response(request.url, headers={"Set-Cookie": lines})
    wrapped = WrappedRequest(request)
    for cookie in jar.make_cookies(WrappedResponse(fake), wrapped):
        jar.set_cookie_if_ok(cookie, wrapped)
