"""A session's cookies, handled by Scrapy's own cookie code.

Scrapy's ``CookiesMiddleware`` (the class enabled in ``DOWNLOADER_MIDDLEWARES``: Scrapy's own
unless a subclass replaces it) does all the work, with the session's jar in place of its
``cookiejar``-keyed jars: decoding ``Request(cookies=...)`` with its warnings, the Secure default
on https, the public-suffix and host checks, ``COOKIES_DEBUG``. So session requests get what
Scrapy's jars give, release after release. The session's jar itself is the core's
:class:`http.cookiejar.CookieJar`, inside Scrapy's :class:`~scrapy.http.cookies.CookieJar` wrapper.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from scrapy.downloadermiddlewares.cookies import CookiesMiddleware
from scrapy.exceptions import NotConfigured
from scrapy.http.cookies import CookieJar
from scrapy.utils.conf import build_component_list
from scrapy.utils.misc import build_from_crawler, load_object

from .settings import _fail

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from .core.session import Session

__all__ = ["SessionCookies"]


def _wants_spider(middleware_class: type[CookiesMiddleware]) -> bool:
    """Does the class's ``process_request`` need the ``spider`` argument (Scrapy < 2.14, or a subclass
    written for it)? A subclass taking ``*args`` follows Scrapy's own signature."""
    for cls in (middleware_class, CookiesMiddleware):
        spider = inspect.signature(cls.process_request).parameters.get("spider")
        if spider is not None:
            return spider.default is inspect.Parameter.empty
    return False


class _TheJar(dict):  # type: ignore[type-arg]
    """Stands for ``CookiesMiddleware.jars``: whatever the request's ``cookiejar`` key, the session's jar."""

    jar: CookieJar | None = None

    def __getitem__(self, key: Any) -> CookieJar | None:
        return self.jar


class SessionCookies:
    """Send and store a request's cookies with its session's jar, through Scrapy's ``CookiesMiddleware``."""

    def __init__(self, middleware: CookiesMiddleware) -> None:
        self._middleware = middleware
        self._jars = _TheJar()
        middleware.jars = self._jars  # type: ignore[assignment]
        self._wrappers: WeakKeyDictionary[Session, CookieJar] = WeakKeyDictionary()
        self._pass_spider = _wants_spider(type(middleware))

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SessionCookies | None:
        """None when Scrapy would handle no cookies: ``COOKIES_ENABLED`` is False, or no
        ``CookiesMiddleware`` is enabled in ``DOWNLOADER_MIDDLEWARES``."""
        if not crawler.settings.getbool("COOKIES_ENABLED"):
            return None
        for path in build_component_list(crawler.settings.getwithbase("DOWNLOADER_MIDDLEWARES")):
            middleware_class = load_object(path)
            if isinstance(middleware_class, type) and issubclass(middleware_class, CookiesMiddleware):
                for name in ("process_request", "process_response"):
                    if inspect.iscoroutinefunction(getattr(middleware_class, name)):
                        raise _fail(
                            "DOWNLOADER_MIDDLEWARES",
                            "a CookiesMiddleware whose process_request and "
                            "process_response return at once, as Scrapy's do (not coroutines)",
                            path,
                        )
                try:
                    return cls(build_from_crawler(middleware_class, crawler))
                except NotConfigured:
                    return None
        return None

    def send(self, request: Request, session: Session, spider: Spider | None) -> bool:
        """Store the request's own cookies in the session's jar and give it the jar's ``Cookie``
        header, unless it carries one set by the spider (that one is left alone). Returns whether
        the header on the request is the jar's. The request must have a host (the caller checks:
        ``data:``, ``file:`` and ``about:`` URLs carry no cookies)."""
        headers = request.headers
        own = headers.get(b"Cookie")
        merge = self._lend(request, session)
        try:
            self._middleware.process_request(*((request, spider) if self._pass_spider else (request,)))
        finally:
            self._take_back(request, merge)
        if own is not None:
            headers[b"Cookie"] = own
            return False
        return b"Cookie" in headers

    def receive(self, request: Request, response: Response, session: Session, spider: Spider | None) -> None:
        """Store the response's ``Set-Cookie`` cookies in the session's jar."""
        merge = self._lend(request, session)
        try:
            self._middleware.process_response(
                *((request, response, spider) if self._pass_spider else (request, response))
            )
        finally:
            self._take_back(request, merge)

    def _lend(self, request: Request, session: Session) -> Any:
        """Give Scrapy's middleware the session's jar for this request, and the request to it."""
        self._jars.jar = self._jar(session)
        meta = request.meta
        merge = meta.get("dont_merge_cookies")
        meta["dont_merge_cookies"] = False  # set by the session middleware to keep Scrapy's own jars away
        return merge

    def _take_back(self, request: Request, merge: Any) -> None:
        request.meta["dont_merge_cookies"] = merge
        self._jars.jar = None

    def _jar(self, session: Session) -> CookieJar:
        """Scrapy's jar wrapper around the session's jar (made once per session)."""
        jar = session.cookie_jar
        wrapper = self._wrappers.get(session)
        if wrapper is None or wrapper.jar is not jar:
            # the wrapper's policy must be the jar's: Scrapy sets the time on it before matching
            wrapper = CookieJar(policy=jar._policy)  # type: ignore[attr-defined]
            wrapper.jar = jar
            self._wrappers[session] = wrapper
        return wrapper
