"""The downloader middleware: a pool session for every request, a verdict for every answer.

Enable it at priority 650: after ``RedirectMiddleware`` (600) in the response
path, so that cookies set by redirects reach the session and blocks are judged
before ``RetryMiddleware`` (550) retries them; before ``CookiesMiddleware``
(700) and ``HttpProxyMiddleware`` (750) in the request path.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, NamedTuple
from weakref import WeakKeyDictionary

from scrapy import signals
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.httpobj import urlparse_cached

from .browser import FLAG_ESCALATED, BrowserContexts, uses_playwright
from .core.exceptions import MetaError
from .core.jar_keys import NO_KEY
from .core.observer import Pending
from .core.proxies import proxy_label
from .core.verdict import VerdictKind
from .helpers import get_manager, restart, rotate
from .identity import IdentityHeaders
from .meta import (
    FLAG_AWAY_FROM,
    FLAG_COOKIE_HEADER,
    FLAG_COOKIES,
    FLAG_INIT,
    FLAG_NOT_BEFORE,
    FLAG_PICKED,
    FLAG_PROXY,
    FLAG_REQUEUED,
    FLAG_SENT_AT,
    FLAG_SLOT,
    FLAG_USER_AGENT,
    META_CHALLENGES,
    META_ENABLED,
    META_POOL,
    META_SESSION_ID,
)
from .policy import build_policy
from .session_cookies import SessionCookies
from .session_init import InitRunner, close_spider
from .settings import SettingsError
from .waiting import POLL, Closing, crawl_is_closing, sleep, sleep_until, until

if TYPE_CHECKING:
    from collections.abc import Hashable

    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from .core.observer import Avoid
    from .core.session import Session
    from .manager import Outcome

__all__ = ["MetaError", "SessionPoolMiddleware"]

logger = logging.getLogger(__name__)

_POOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: A request beaten by a challenge that its session's browser takes on for another request goes again after this.
BROWSER_WAIT = 0.5


class Ask(NamedTuple):
    """What a request asks the pool for."""

    pool_name: str | None
    session_id: str | None  #: the session it is pinned to (by the spider, its redirect chain or its key)
    picked: bool  #: not pinned by the spider: a block moves it to another session
    key: Hashable = NO_KEY  #: its ``meta["cookiejar"]`` key
    avoid: Avoid | None = None  #: sessions it must not get (those of other keys)


class SessionPoolMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.manager = get_manager(crawler)
        if not self.manager.settings.enabled:
            raise NotConfigured("SESSIONPOOL_ENABLED is False")
        self.policy = build_policy(crawler, self.manager.settings.ban_policy)
        #: Scrapy's cookie code with each session's jar; None when Scrapy would handle no cookies.
        self.cookies = SessionCookies.from_crawler(crawler)
        #: The sessions' init hook (``SESSIONPOOL_SESSION_INIT`` or the spider's ``init_session``), or None.
        self.inits = InitRunner.from_crawler(crawler, self.manager, lambda: crawl_is_closing(crawler))
        self.manager.stop = lambda reason: close_spider(crawler, reason)
        #: The sessions' browser contexts, when scrapy-playwright's handler is on (None: it is not).
        settings = self.manager.settings
        self.browser = (
            BrowserContexts(crawler, self.manager.stat, settings.browser_challenge_wait)
            if uses_playwright(crawler)
            else None
        )
        if settings.browser_escalation and self.browser is None:
            raise SettingsError(
                "SESSIONPOOL_BROWSER_ESCALATION: expected scrapy-playwright's download handler in DOWNLOAD_HANDLERS "
                "(pip install 'scrapy-sessionpool[browser]'), found none"
            )
        self.escalation = settings.browser_escalation
        if (
            self.browser is not None
            and self.manager.store is not None
            and settings.redis_url
            and settings.persist_state
        ):
            raise SettingsError(
                "DOWNLOAD_HANDLERS: browser sessions (scrapy-playwright) work with the in-process pool only, "
                "not yet with a Redis store (SESSIONPOOL_PERSIST_STATE_STORE)"
            )
        if self.browser is not None:
            self.manager.retired_hooks.append(self.browser.session_retired)
        self._warned_keys = False
        self._in_flight: WeakKeyDictionary[Request, tuple[Session, float]] = WeakKeyDictionary()
        self._default_user_agent = (crawler.settings.get("USER_AGENT") or "").encode()
        self.identity = IdentityHeaders(crawler, impersonate=self.manager.impersonate)
        self._redirect_priority = crawler.settings.getint("REDIRECT_PRIORITY_ADJUST")
        crawler.signals.connect(self._spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SessionPoolMiddleware:
        return cls(crawler)

    # -- request path -----------------------------------------------------------

    def process_request(
        self, request: Request, spider: Spider | None = None
    ) -> Request | Coroutine[Any, Any, Any] | None:
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
        if meta.get(FLAG_INIT) and (session_id is None or not self.manager.alive(pool_name, session_id)):
            raise IgnoreRequest("sessionpool: the session this init request is for is gone")
        if session_id is not None and "redirect_urls" in meta and not self.manager.alive(pool_name, session_id):
            self.manager.stat("redirects_restarted")  # the chain's session is gone: start it over with another
            new = restart(request)
            new.meta.pop(META_SESSION_ID, None)
            new.meta.pop(FLAG_PICKED, None)
            return new
        site = urlparse_cached(request).hostname or ""
        ask = self._ask(request, pool_name, session_id)
        if session_id is not None and FLAG_SENT_AT in meta and "redirect_urls" in meta:  # a redirect goes on at once
            chained = self.manager.acquire(pool_name, session_id, site, chained=True, avoid=ask.avoid)
            if chained is not None and not isinstance(chained, Pending) and not self._needs_init(chained, meta):
                self._claim(ask, chained)
                self._apply(request, chained, False)
                return None
            return self._wait(request, chained, ask._replace(picked=False))
        session = (
            None if FLAG_NOT_BEFORE in meta else self.manager.acquire(pool_name, ask.session_id, site, avoid=ask.avoid)
        )
        if session is not None and not isinstance(session, Pending) and not self._needs_init(session, meta):
            self._claim(ask, session)
            turn = self.manager.turn(site, session)
            if turn is not None and turn <= 0:
                self._apply(request, session, ask.picked)
                return None
            return self._wait(request, session, ask, turn)
        return self._wait(request, session, ask)

    def _ask(self, request: Request, pool_name: str | None, session_id: str | None) -> Ask:
        """What the request asks the pool for: its pinned session, or that of its ``cookiejar`` key."""
        meta = request.meta
        if self.cookies is None or "cookiejar" not in meta:
            return Ask(pool_name, session_id, session_id is None, avoid=self.manager.jar_keys.avoid(pool_name, NO_KEY))
        key = meta["cookiejar"]
        try:
            hash(key)
        except TypeError:
            raise MetaError(
                f"Request meta 'cookiejar': expected a hashable key (a number, a string...), got {type(key).__name__}"
            ) from None
        keys = self.manager.jar_keys
        away = meta.pop(FLAG_AWAY_FROM, None)
        avoid = keys.avoid(pool_name, key, away)  # should its session be gone, a fresh one of no other key
        if session_id is not None:
            return Ask(pool_name, session_id, False, key, avoid)
        bound = keys.session_of(pool_name, key)
        if bound is not None and bound != away and self.manager.alive(pool_name, bound):
            return Ask(pool_name, bound, True, key, avoid)
        return Ask(pool_name, None, True, key, avoid)

    async def _wait(
        self, request: Request, pending: Session | Pending[Session | None] | None, ask: Ask, turn: float | None = None
    ) -> Request | None:
        """Wait for a session and for its turn (``turn``: what the last ask for it said): a shared
        pool's answer, a challenge's delay, the end of a cool-down, a busy spell, a probe or a paced
        exit. Ends when the crawl closes, and after ``SESSIONPOOL_MAX_WAIT`` seconds."""
        manager = self.manager
        manager.stat("waits")
        meta = request.meta
        deadline = time.monotonic() + manager.settings.max_wait
        site = urlparse_cached(request).hostname or ""
        session: Session | None = None
        try:
            not_before = meta.pop(FLAG_NOT_BEFORE, None)
            if not_before is not None:
                await sleep_until(self.crawler, not_before, deadline)
            session = await pending if isinstance(pending, Pending) else pending
            session = await self._readied(session, ask, request, deadline)
            if session is not None:
                self._claim(ask, session)
                if turn is None:
                    turn = manager.turn(site, session)
            while True:
                if turn == 0 and session is not None:
                    self._apply(request, session, ask.picked)
                    return None
                if session is not None and not manager.fit(session):  # its exit cools down, or it sits out
                    session.release()
                    session = None
                if session is None:
                    await sleep(self.crawler, manager.wait_hint(), deadline)
                    result = manager.acquire(ask.pool_name, ask.session_id, site, avoid=ask.avoid)
                    session = await result if isinstance(result, Pending) else result
                    session = await self._readied(session, ask, request, deadline)
                    if session is not None:
                        self._claim(ask, session)
                    turn = None if session is None else manager.turn(site, session)
                    continue
                await sleep(self.crawler, POLL if turn is None else min(turn, POLL), deadline)
                turn = manager.turn(site, session)
        except Closing:
            if session is not None:
                session.release()
            return self._end_at_close(request)
        except TimeoutError:
            if session is not None:
                session.release()
            manager.stat("waits/timed_out")
            logger.warning(
                "Gave up on %s: no session was free for it within SESSIONPOOL_MAX_WAIT (%g s)",
                request,
                manager.settings.max_wait,
            )
            raise IgnoreRequest("sessionpool: no session within SESSIONPOOL_MAX_WAIT") from None

    def _needs_init(self, session: Session, meta: dict[str, Any]) -> bool:
        return self.inits is not None and not session.initialized and not meta.get(FLAG_INIT)

    async def _readied(self, session: Session | None, ask: Ask, request: Request, deadline: float) -> Session | None:
        """``session`` once its init is done (run now, or joined), or None if the init failed."""
        if session is None or self.inits is None or not self._needs_init(session, request.meta):
            return session
        done = self.inits.ready(session, self.manager.pool(ask.pool_name), ask.pool_name)  # type: ignore[arg-type]
        if await until(self.crawler, done, deadline):  # a closing crawl ends the wait: the caller lets the session go
            return session
        session.release()
        return None

    def _end_at_close(self, request: Request) -> Request:
        """A request still waiting when the crawl closes goes back to the scheduler (kept by ``JOBDIR``
        and scrapy-redis queues); the second time, it ends as ``IgnoreRequest``."""
        self.manager.stat("waits/closed")
        if request.meta.get(FLAG_REQUEUED):
            raise IgnoreRequest("sessionpool: the crawl is closing")
        copy = request.replace(dont_filter=True)
        copy.meta[FLAG_REQUEUED] = True
        return copy

    def _apply(self, request: Request, session: Session, picked: bool) -> None:
        """Give ``request`` the session's cookies, proxy, User-Agent and download slot."""
        meta = request.meta
        headers = request.headers
        now = time.time()
        if "redirect_urls" in meta and FLAG_SENT_AT in meta:  # a redirect is judged with the request it follows
            sent_at = meta[FLAG_SENT_AT]
        else:
            sent_at = meta[FLAG_SENT_AT] = now
        self._in_flight[request] = (session, sent_at)
        meta[META_SESSION_ID] = session.id
        if picked:
            meta[FLAG_PICKED] = True

        if meta.pop(FLAG_COOKIE_HEADER, False):
            headers.pop(b"Cookie", None)  # a retry or redirect copy: built for another URL or session
        if meta.get(FLAG_COOKIES) or not meta.get("dont_merge_cookies"):
            meta["dont_merge_cookies"] = True  # keeps any cookie middleware's own jars out of session requests
            meta[FLAG_COOKIES] = True
            browser = self.browser is not None and meta.get("playwright")  # its context sends the cookies
            if self.cookies is not None and urlparse_cached(request).hostname is not None and not browser:
                meta[FLAG_COOKIE_HEADER] = self.cookies.send(request, session, self.crawler.spider)

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
        self.identity.apply(request, session)

        if self.browser is not None and meta.get("playwright"):
            self.browser.prepare(request, session)

        if meta.pop(FLAG_SLOT, False):
            meta.pop("download_slot", None)
        if meta.get(FLAG_PROXY) and self.manager.settings.proxy_slots and "download_slot" not in meta:
            # the slot of the session's exit (not when the request goes through a proxy of its own)
            meta["download_slot"] = f"{urlparse_cached(request).hostname}@{proxy_label(proxy)}"
            meta[FLAG_SLOT] = True

    def _claim(self, ask: Ask, session: Session) -> None:
        """A request of a ``cookiejar`` key got a session other than its key's: the key holds it now
        (at once, so that the key's next requests get it too, while this one waits for its turn)."""
        if ask.key is NO_KEY or session.id == ask.session_id:
            return
        keys = self.manager.jar_keys
        keys.bind(ask.pool_name, ask.key, session.id)
        if not self._warned_keys and len(keys) >= self.manager.settings.for_pool(ask.pool_name).max_pool_size:
            self._warned_keys = True
            logger.warning(
                "Every session of the pool is held by a meta['cookiejar'] key (%d keys): requests of "
                "new keys wait until a session retires; raise SESSIONPOOL_MAX_POOL_SIZE for more keys",
                len(keys),
            )

    # -- response path ----------------------------------------------------------

    def process_response(
        self, request: Request, response: Response, spider: Spider | None = None
    ) -> Request | Response | Coroutine[Any, Any, Request | Response]:
        entry = self._in_flight.pop(request, None)
        if entry is None:
            return response
        session, sent_at = entry
        site = urlparse_cached(request).hostname or ""
        if self.browser is not None and request.meta.get("playwright"):
            return self._after_browser(request, response, session, sent_at, site)
        if request.meta.get(FLAG_COOKIES) and self.cookies is not None and site:  # not data:, file:...
            self.cookies.receive(request, response, session, self.crawler.spider)
        return self._judged(request, response, session, sent_at, site)

    async def _after_browser(
        self, request: Request, response: Response, session: Session, sent_at: float, site: str
    ) -> Request | Response:
        """A page of the session's browser: its cookies into the jar, then judged as any answer."""
        assert self.browser is not None

        def is_challenge(answer: Response) -> bool:
            return self.policy.response_verdict(request, answer).kind is VerdictKind.CHALLENGE

        response = await self.browser.after(request, response, session, is_challenge)
        return self._judged(request, response, session, sent_at, site)

    def _judged(
        self, request: Request, response: Response, session: Session, sent_at: float, site: str
    ) -> Request | Response:
        meta = request.meta
        verdict = self.policy.response_verdict(request, response)
        outcome = self.manager.settle(
            session,
            verdict,
            site=site,
            sent_at=sent_at,
            challenges=meta.get(META_CHALLENGES, 0),
            escalate=self.escalation and not meta.get("playwright"),  # a page the browser could not pass: blocked
        )
        if self.browser is not None:
            if meta.get(FLAG_ESCALATED):
                self.browser.escalated(session, passed=verdict.kind is VerdictKind.GOOD)
                self.browser.unescalate(meta)  # its copies (a retry, a rotation) go over HTTP again
            elif verdict.kind is VerdictKind.GOOD and not meta.get("playwright"):
                self.browser.back_to_http(session)
        if meta.get(FLAG_INIT):  # no rotation: its init judges the answer (a challenge is re-fetched)
            again = self._again(request, outcome, session) if outcome.challenge else None
            return response if again is None else again
        if not outcome.retry:
            if self.inits is not None and self.inits.has_check:
                if not self.inits.check(response, request):
                    return self._init_lost(request, session)
                self.inits.passed(session)
            return response
        new = self._again(request, outcome, session)
        if new is not None:
            return new
        self.manager.stat("rotations_exhausted")
        logger.warning(
            "Gave up on %s: blocked (%s) on %d session(s) in a row (SESSIONPOOL_MAX_SESSION_ROTATIONS)",
            request,
            outcome.reason,
            self.manager.settings.max_session_rotations + 1,
        )
        raise IgnoreRequest(f"sessionpool: rotations exhausted ({outcome.reason})")

    def process_exception(self, request: Request, exception: Exception, spider: Spider | None = None) -> Request | None:
        entry = self._in_flight.pop(request, None)
        if entry is None:
            return None
        session, sent_at = entry
        if self.browser is not None and request.meta.get("playwright"):
            self.browser.failed(request, session)
        verdict = self.policy.exception_verdict(request, exception)
        outcome = self.manager.settle(session, verdict, site=urlparse_cached(request).hostname or "", sent_at=sent_at)
        return self._again(request, outcome) if outcome.retry and not request.meta.get(FLAG_INIT) else None

    def _init_lost(self, request: Request, session: Session) -> Request:
        """The answer fails the init's check: the session is initialised again before it serves
        more, and the request goes again (pinned requests wait for that init, others rotate).
        A session that fails the check before any answer passed it since its init retires
        instead (``init_failed``; a bad init): its init does not work."""
        assert self.inits is not None
        self.manager.stat("init/check_failed")
        if self.inits.fresh(session):
            self.inits.failed_check(session)
        else:
            self.manager.pool(request.meta.get(META_POOL)).init_again(session)  # type: ignore[attr-defined]
        pinned = not request.meta.get(FLAG_PICKED)
        new = rotate(request, self.crawler, "check_failed", keep_session=pinned)
        if new is None:
            raise IgnoreRequest("sessionpool: rotations exhausted (check_failed)")
        return new

    def _escalate(self, request: Request, session: Session) -> Request:
        """Once more in the session's browser, unless its browser is on the challenge already (then
        once more over HTTP, when it is done) or got past it since this request left (at once)."""
        assert self.browser is not None
        what = self.browser.escalation(session, request.meta.get(FLAG_SENT_AT, 0.0))
        new = request.replace(dont_filter=True, priority=request.priority + self._redirect_priority)
        meta = new.meta
        meta.pop(FLAG_SENT_AT, None)
        if what == "browser":
            self.manager.stat("browser/escalations")
            meta["playwright"] = True
            meta[FLAG_ESCALATED] = True
        else:
            self.manager.stat(f"browser/escalation_{what}")
            if what == "wait":
                meta[FLAG_NOT_BEFORE] = time.time() + BROWSER_WAIT
        return new

    def _again(self, request: Request, outcome: Outcome, session: Session | None = None) -> Request | None:
        """The request once more: a challenge re-fetch with the same session, or a rotation."""
        meta = request.meta
        if outcome.browser and self.browser is not None and session is not None:
            return self._escalate(request, session)
        if outcome.challenge:
            url = outcome.url or request.url
            # a continuation, like a meta refresh: first in the queue, as Scrapy's redirects
            new = request.replace(url=url, dont_filter=True, priority=request.priority + self._redirect_priority)
            new.meta.pop(FLAG_SENT_AT, None)
            new.meta[META_CHALLENGES] = meta.get(META_CHALLENGES, 0) + 1
            if url != request.url:  # a refresh to another page: a redirect, for rotations to undo
                new.meta["redirect_urls"] = [*meta.get("redirect_urls", ()), request.url]
            if outcome.delay:
                new.meta[FLAG_NOT_BEFORE] = time.time() + outcome.delay
            return new
        # a request pinned by the spider keeps a session that was not to blame
        return rotate(
            request,
            self.crawler,
            outcome.reason,
            keep_session=outcome.same_session and not meta.get(FLAG_PICKED),
            counted=outcome.counted,
        )

    async def _spider_closed(self, spider: Spider) -> None:
        for session, _ in list(self._in_flight.values()):
            session.release()
        self._in_flight.clear()
        if self.browser is not None:
            await self.browser.close()
