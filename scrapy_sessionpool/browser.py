"""A session's browser: its own scrapy-playwright context, with its cookies going both ways.

A request with ``meta["playwright"] = True`` gets the context named after its session, made with the
session's proxy, User-Agent and header profile; before the page loads, the context gets the cookies of
the session's jar (cookies earned over plain HTTP), and after it, every cookie the context holds
(``Set-Cookie`` of any sub-resource, ``document.cookie``) goes back into the jar, attributes and all,
so the session's next plain HTTP request sends them. A context closes when its session retires, and the
least recently used one when more than ``PLAYWRIGHT_MAX_CONTEXTS`` would be open (it is made again from
the jar when needed). scrapy-playwright and Playwright are imported only when a crawl uses them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import OrderedDict
from http.cookiejar import Cookie
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from scrapy.http import HtmlResponse
from scrapy.utils.defer import deferred_from_coro

from .core.cookies import jar_cookies

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from .core.session import Session

__all__ = ["CONTEXT_PREFIX", "BrowserContexts", "browser_cookie", "jar_cookie", "uses_playwright"]

logger = logging.getLogger(__name__)

CONTEXT_PREFIX = "sessionpool-"
#: Meta flags of a browser request: what it asked of scrapy-playwright itself (context kwargs, page,
#: page init callback), before the session's were added; it escalated a challenge.
FLAG_OWN = "_sessionpool_playwright_own"
FLAG_ESCALATED = "_sessionpool_escalated"
#: How often a challenge page in the browser is looked at again while its script runs.
POLL = 0.1
#: How long other requests of a session wait for its escalation before they may escalate again themselves.
ESCALATION_HOLD = 60.0
_SAME_SITE = {"strict": "Strict", "lax": "Lax", "none": "None"}


def uses_playwright(crawler: Crawler) -> bool:
    """Is scrapy-playwright's download handler (or a subclass) Scrapy's handler for http or https?"""
    handlers = crawler.settings.getwithbase("DOWNLOAD_HANDLERS")
    paths = [handlers.get(scheme) for scheme in ("http", "https")]
    if not any(paths):
        return False
    try:
        from scrapy_playwright.handler import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
            ScrapyPlaywrightDownloadHandler,
        )
    except ImportError:
        return False
    from scrapy.utils.misc import load_object

    for path in filter(None, paths):
        handler = load_object(path) if isinstance(path, str) else path
        if isinstance(handler, type) and issubclass(handler, ScrapyPlaywrightDownloadHandler):
            return True
    return False


def browser_cookie(cookie: Cookie) -> dict[str, Any]:
    """A jar cookie as Playwright's ``add_cookies`` takes it (a host-only cookie keeps a domain without a dot)."""
    rest = {k.lower(): v for k, v in cookie._rest.items()}  # type: ignore[attr-defined]
    shown: dict[str, Any] = {
        "name": cookie.name,
        "value": cookie.value or "",
        "domain": cookie.domain,
        "path": cookie.path or "/",
        "expires": float(cookie.expires) if cookie.expires is not None else -1,
        "httpOnly": "httponly" in rest,
        "secure": bool(cookie.secure),
    }
    same_site = _SAME_SITE.get(str(rest.get("samesite", "")).lower())
    if same_site is not None:
        shown["sameSite"] = same_site
    return shown


def jar_cookie(shown: dict[str, Any], kept: Cookie | None = None) -> Cookie:
    """A Playwright cookie as a jar cookie. ``kept``: the jar's own copy, whose attributes the browser
    cannot report (a SameSite it was not given shows as Lax there) stay when nothing else changed."""
    domain = shown["domain"]
    expires = None if shown.get("expires", -1) in (-1, None) else int(shown["expires"])
    if kept is not None and (kept.value or "") == shown["value"] and kept.expires == expires:
        return kept
    rest: dict[str, Any] = {}  # HttpOnly has no value (None), as the standard library keeps it
    if shown.get("httpOnly"):
        rest["HttpOnly"] = None
    same_site = shown.get("sameSite")
    unsaid = kept is not None and not any(k.lower() == "samesite" for k in kept._rest)  # type: ignore[attr-defined]
    if same_site and not (same_site == "Lax" and unsaid):  # Lax is what the browser shows for no SameSite
        rest["SameSite"] = same_site
    return Cookie(
        version=0,
        name=shown["name"],
        value=shown["value"],
        port=None,
        port_specified=False,
        domain=domain,
        domain_specified=domain.startswith("."),
        domain_initial_dot=domain.startswith("."),
        path=shown.get("path") or "/",
        path_specified=True,
        secure=bool(shown.get("secure")),
        expires=expires,
        discard=expires is None,
        comment=None,
        comment_url=None,
        rest=rest,
    )


#: The HTTP status of the page's last navigation, as the browser got it (0 where it cannot tell).
_STATUS = "() => (performance.getEntriesByType('navigation')[0] || {}).responseStatus || 0"
_BODY = re.compile(rb"<body[^>]*>\s*[^\s<]|<body[^>]*>\s*<(?!/body)", re.IGNORECASE)


def _whole(response: Response) -> bool:
    """Has the page a body with something in it (not a document caught between two navigations)?"""
    return bool(_BODY.search(response.body))


class _Documents:
    """The status of a page's latest main-frame document, from its responses (scrapy-playwright reports
    the first navigation's, and the performance API may not have a reload's yet)."""

    def __init__(self, page: Any) -> None:
        self.page, self.status = page, 0
        page.on("response", self._seen)

    def _seen(self, answer: Any) -> None:
        if answer.frame == self.page.main_frame and answer.request.is_navigation_request():
            self.status = answer.status

    def close(self) -> None:
        self.page.remove_listener("response", self._seen)


def _proxy(proxy_url: str) -> dict[str, str]:
    """Playwright's proxy settings of a proxy URL (its credentials apart, as Playwright wants them)."""
    parts = urlsplit(proxy_url)
    server = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    proxy = {"server": server}
    if parts.username is not None:
        proxy["username"] = unquote(parts.username)
        proxy["password"] = unquote(parts.password or "")
    return proxy


class BrowserContexts:
    """The browser contexts of a crawler's sessions, by session id, least recently used first."""

    def __init__(self, crawler: Crawler, stat: Any, challenge_wait: float) -> None:
        self.crawler = crawler
        self.stat = stat
        self.challenge_wait = challenge_wait
        self.max_contexts: int | None = crawler.settings.getint("PLAYWRIGHT_MAX_CONTEXTS") or None
        self._contexts: OrderedDict[str, Any] = OrderedDict()  # session id -> its context (None: being made)
        self._busy: dict[str, int] = {}  # pages in flight, by session
        self._owed = 0  # contexts to close as soon as they go idle, for new ones that wait for room
        self._passed: set[str] = set()  # sessions that got past a challenge in the browser, back to HTTP
        #: sessions whose browser takes on a challenge now (from when the escalation was decided)
        self._escalating: dict[str, float] = {}
        self._cleared_at: dict[str, float] = {}  # when each session last got past a challenge in its browser
        self._documents: dict[int, _Documents] = {}  # by id of the page, until its answer is read

    def name(self, session: Session) -> str:
        return CONTEXT_PREFIX + session.id

    def prepare(self, request: Request, session: Session) -> None:
        """Give a playwright request its session's context, and the jar's cookies before the page loads.
        A request that names a context of its own keeps it (and the session's cookies go in its headers)."""
        meta = request.meta
        own = meta.get(FLAG_OWN)
        if own is None:  # first seen: keep what the request itself asked of scrapy-playwright
            if "playwright_context" in meta:
                return
            own = meta[FLAG_OWN] = {
                "kwargs": dict(meta.get("playwright_context_kwargs") or {}),
                "include_page": bool(meta.get("playwright_include_page")),
                "init": meta.get("playwright_page_init_callback"),
            }
        request.headers.pop(b"Cookie", None)  # the context sends the session's cookies, fresh
        meta["playwright_context"] = self.name(session)
        if session.id not in self._contexts:
            self._make_room()
            self._contexts[session.id] = None
        self._contexts.move_to_end(session.id)
        self._busy[session.id] = self._busy.get(session.id, 0) + 1
        kwargs = dict(own["kwargs"])
        if session.proxy_url:
            kwargs.setdefault("proxy", _proxy(session.proxy_url))
        agent = request.headers.get(b"User-Agent")
        if agent:
            kwargs.setdefault("user_agent", agent.decode("latin-1"))
        profile = {k: v for k, v in session.headers.items() if k.lower() != "user-agent"}
        if profile:
            kwargs.setdefault("extra_http_headers", profile)
        meta["playwright_context_kwargs"] = kwargs
        meta["playwright_include_page"] = True  # to read the context's cookies after the page
        meta["playwright_page_init_callback"] = self._page_init(session, own["init"])
        if meta.get(FLAG_ESCALATED):
            self._escalating[session.id] = time.monotonic()
        self.stat("browser/renders")

    def _page_init(self, session: Session, own: Any) -> Any:
        async def init(page: Any, request: Request) -> None:
            self._documents[id(page)] = _Documents(page)
            cookies = [browser_cookie(c) for c in jar_cookies(session.cookie_jar) if c.domain]
            if cookies:
                await page.context.add_cookies(cookies)
            if own is not None:
                from scrapy.utils.misc import load_object

                await load_object(own)(page, request)

        return init

    async def after(self, request: Request, response: Response, session: Session, is_challenge: Any) -> Response:
        """The page's cookies into the session's jar (once a challenge page's script is done with it,
        up to ``wait`` seconds); the page closed unless the request asked for it. Returns the answer."""
        meta = request.meta
        own = meta.get(FLAG_OWN)
        if own is None:  # a context of the request's own: nothing of the session's in it
            return response
        page = meta.get("playwright_page")
        if page is None:
            self._done(session)
            return response
        try:
            context = page.context
            if session.id in self._contexts:
                self._contexts[session.id] = context
            if meta.get(FLAG_ESCALATED) and (is_challenge(response) or not _whole(response)):
                response = await self._past_challenge(page, request, response, is_challenge)
            status = self._status(page)
            if status and status != response.status:  # the page reloaded itself (a challenge did) before
                response = response.replace(status=status)  # scrapy-playwright read it: the reload's status
            self._into_jar(session, await context.cookies())
        finally:
            self._forget(page)
            if not own["include_page"]:
                meta.pop("playwright_page", None)
                await page.close()
            self._done(session)
        if session.is_retired:
            self._close(session.id)
        return response

    async def _past_challenge(self, page: Any, request: Request, response: Response, is_challenge: Any) -> Response:
        """Wait while the challenge's script runs and reloads, until the page is another one, whole
        (or time is up: the challenge page it is)."""
        deadline = time.monotonic() + self.challenge_wait
        while time.monotonic() < deadline:
            await page.wait_for_timeout(POLL * 1000)
            try:
                await page.wait_for_load_state("load")
                body = (await page.content()).encode("utf-8")
                status = self._status(page) or await page.evaluate(_STATUS)  # a 500 stays a 500
            except Exception:  # noqa: BLE001, S112 - the page is navigating: look again
                continue
            if not status:  # not known yet (never taken for a 200)
                continue
            answer = HtmlResponse(
                page.url,
                status=int(status),
                body=body,
                encoding="utf-8",
                request=request,
                flags=["playwright"],
            )
            if _whole(answer) and not is_challenge(answer):
                return answer
        return response

    def _forget(self, page: Any) -> None:
        if (documents := self._documents.pop(id(page), None)) is not None:
            documents.close()

    def _status(self, page: Any) -> int:
        documents = self._documents.get(id(page))
        return 0 if documents is None else documents.status

    def _into_jar(self, session: Session, cookies: list[dict[str, Any]]) -> None:
        jar = session.cookie_jar
        kept = {(c.domain, c.path, c.name): c for c in jar_cookies(jar)}
        for shown in cookies:
            key = (shown["domain"], shown.get("path") or "/", shown["name"])
            jar.set_cookie(jar_cookie(shown, kept.get(key)))

    def failed(self, request: Request, session: Session) -> None:
        """A browser request of ``session`` ended without an answer."""
        own = request.meta.get(FLAG_OWN)
        if own is None:
            return
        self._done(session)
        self._escalating.pop(session.id, None)
        if (shown := request.meta.get("playwright_page")) is not None:
            self._forget(shown)
        page = None if own["include_page"] else request.meta.pop("playwright_page", None)
        if page is not None:
            deferred_from_coro(page.close())

    def escalated(self, session: Session, passed: bool) -> None:
        """The browser of ``session`` took on a challenge that beat it over HTTP, and ``passed`` it or not."""
        self._escalating.pop(session.id, None)
        if passed:
            self.stat("browser/challenges_passed")
            self._passed.add(session.id)
            self._cleared_at[session.id] = time.time()

    def unescalate(self, meta: dict[str, Any]) -> None:
        """Take off an escalated request what made it a browser request (it was not one of its own)."""
        own = meta.pop(FLAG_OWN, None) or {}
        for key in ("playwright", "playwright_context", "playwright_context_kwargs", "playwright_page_init_callback"):
            meta.pop(key, None)
        if not own.get("include_page"):
            meta.pop("playwright_include_page", None)
        meta.pop(FLAG_ESCALATED, None)

    def escalation(self, session: Session, sent_at: float) -> str:
        """What a request of ``session`` that a challenge beat over HTTP does: ``"browser"`` (the
        session's browser takes it on), ``"wait"`` (the browser is on it for another request: go
        again a little later) or ``"again"`` (it got past since this request left: go again now)."""
        if time.monotonic() - self._escalating.get(session.id, float("-inf")) < ESCALATION_HOLD:
            return "wait"
        if self._cleared_at.get(session.id, float("-inf")) > sent_at:
            return "again"
        self._escalating[session.id] = time.monotonic()  # from now: its escalated request may wait in the queue
        return "browser"

    def back_to_http(self, session: Session) -> None:
        """A plain HTTP request of ``session`` was answered well: after a challenge passed in the browser,
        the session is back on HTTP."""
        if session.id in self._passed:
            self._passed.discard(session.id)
            self.stat("browser/handed_back")

    def _done(self, session: Session) -> None:
        """A page of ``session`` is over; its context, idle now, closes if a new one waits for room."""
        left = self._busy.get(session.id, 0) - 1
        if left > 0:
            self._busy[session.id] = left
            return
        self._busy.pop(session.id, None)
        if self._owed and self._contexts.get(session.id) is not None:
            self._owed -= 1
            self.stat("browser/contexts_closed/lru")
            self._close(session.id)

    def _make_room(self) -> None:
        """Close the least recently used idle context if a new one would be one too many (with none idle,
        the next to go idle closes: scrapy-playwright makes the new one wait till then)."""
        if self.max_contexts is None or len(self._contexts) - self._owed < self.max_contexts:
            return
        for sid in self._contexts:
            if not self._busy.get(sid) and self._contexts[sid] is not None:
                self.stat("browser/contexts_closed/lru")
                self._close(sid)
                return
        self._owed += 1

    def session_retired(self, session: Session) -> None:
        self._passed.discard(session.id)
        self._escalating.pop(session.id, None)
        self._cleared_at.pop(session.id, None)
        if not self._busy.get(session.id):
            self._close(session.id)

    def _close(self, sid: str) -> None:
        context = self._contexts.pop(sid, None)
        if context is not None:
            self.stat("browser/contexts_closed")
            logger.debug("Closing the browser context of session %s", sid)
            deferred_from_coro(context.close())

    async def close(self) -> None:
        """Close every context of ours (the crawl is over)."""
        contexts = [c for c in self._contexts.values() if c is not None]
        self._contexts.clear()
        for context in contexts:
            with contextlib.suppress(Exception):  # already closed, with its browser
                await context.close()
