"""A website with a login form, for crawls whose sessions log in before they fetch; served on 127.0.0.1.

Every visitor gets a ``sid`` cookie. GET /login shows ``<form id="login">`` with a csrf token bound to the sid
(a fresh one per GET; only the latest is accepted, once); POST /login logs the sid in as an account and logs out
that account's previous sid (a "kick": one session per account). /members/<n> needs a logged-in sid. After
``ban_after`` member pages an account (or a sid, ``ban_key="sid"``) is banned: it gets ``ban_signal`` from then
on, or for ``ban_secs``. With ``consent``, the login form needs the ``consent=yes`` cookie that /consent gives.
Every request is logged as a :class:`Hit`.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from html import escape
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.support.server import Header, LocalServer, read_body, send

__all__ = ["BAN_SIGNALS", "Hit", "LoginSite"]

BAN_SIGNALS = ("403", "429", "captcha", "login_redirect")
_MEMBER = re.compile(r"/members/(\d+)")
_HTML = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Hit:
    """One request as the site saw it. ``event``: "form" (a login form), "login", "login_failed", "csrf_failed",
    "banned" (the ban signal), "member_page" (real content), "redirect_to_login", "kicked" (a member page asked by
    a sid that a later login of its account logged out), "consent" (/consent, redirects to it), "logout" or None.
    """

    time: float  #: from the site's clock
    method: str
    path: str
    sid: str | None  #: the sid cookie sent
    account: str | None  #: what that sid was logged in as when the request came
    status: int
    event: str | None
    username: str | None = None  #: the one posted (to /login)
    issued: str | None = None  #: the sid this answer set
    kicked: str | None = None  #: the account's previous sid, that this login logged out


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes = b""
    event: str | None = None
    headers: tuple[Header, ...] = ()
    issued: str | None = None
    kicked: str | None = None


def _html(title: str, body: str) -> bytes:
    return f"<html><title>{title}</title><body>{body}</body></html>".encode()


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{name}" value="{escape(value)}">'


def _redirect(location: str, event: str) -> _Reply:
    return _Reply(302, b"", event, (("Location", location),))


def _local(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site, else ``default``."""
    return target if target and target.startswith("/") and not target.startswith("//") else default


def _cookies(header: str | None) -> dict[str, str]:
    pairs = (pair.strip().partition("=") for pair in (header or "").split(";"))
    return {name: value for name, _, value in pairs if name}


class LoginSite(LocalServer):
    """A members' area behind a login form; see the module's docstring. ``accounts``: username -> password.

    ``login_status_on_failure``: the status of the "Wrong username or password" form; ``new_sid_on_login``: a
    login sets a new sid (and forgets the old one), as sites that guard against session fixation do; ``pages``:
    the number of member pages; ``clock``: the time of the hits and of ``ban_secs``.
    """

    def __init__(
        self,
        accounts: Mapping[str, str],
        *,
        pages: int = 10,
        ban_after: int | Mapping[str, int] | None = None,
        ban_signal: str = "403",
        ban_secs: float | None = None,
        ban_key: str = "account",
        login_status_on_failure: int = 200,
        consent: bool = False,
        new_sid_on_login: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ban_signal not in BAN_SIGNALS:
            raise ValueError(f"ban_signal must be one of {', '.join(BAN_SIGNALS)}; got {ban_signal!r}")
        if ban_key not in ("account", "sid"):
            raise ValueError(f"ban_key must be 'account' or 'sid'; got {ban_key!r}")
        super().__init__()
        self.accounts = dict(accounts)
        self.pages = pages
        self.ban_after, self.ban_signal, self.ban_secs, self.ban_key = ban_after, ban_signal, ban_secs, ban_key
        self.login_status_on_failure = login_status_on_failure
        self.consent, self.new_sid_on_login, self.clock = consent, new_sid_on_login, clock
        self._lock = threading.Lock()
        self._hits: list[Hit] = []
        self._sids: set[str] = set()
        self._csrf: dict[str, str] = {}  # sid -> its latest token
        self._session: dict[str, str] = {}  # sid -> account it is logged in as
        self._account_sid: dict[str, str] = {}  # account -> its logged-in sid
        self._kicked: set[str] = set()  # sids logged out by a kick (until they log in again)
        self._login_times: dict[str, float] = {}  # sid -> its first login
        self._served: dict[str, int] = {}  # ban key -> member pages served
        self._banned: dict[str, float] = {}  # ban key -> when its ban began
        self._ever_banned: set[str] = set()
        self._pages_served: set[int] = set()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def logins(self, account: str | None = None) -> list[Hit]:
        """The successful logins, optionally of one account."""
        return [h for h in self.hits if h.event == "login" and account in (None, h.username)]

    def kicks(self) -> list[Hit]:
        """The logins that logged out another sid of their account (none, for a pool that keeps one each)."""
        return [hit for hit in self.hits if hit.kicked is not None]

    def bans(self) -> set[str]:
        """The accounts (sids, with ``ban_key="sid"``) banned at some time."""
        with self._lock:
            return set(self._ever_banned)

    def pages_served(self) -> set[int]:
        """The member pages served as real content."""
        with self._lock:
            return set(self._pages_served)

    def first_login_time(self, sid: str) -> float | None:
        with self._lock:
            return self._login_times.get(sid)

    def hits_by_sid(self) -> dict[str | None, list[Hit]]:
        """The hits by the sid sent; a first contact (no sid sent) goes under the sid it was given."""
        by_sid: dict[str | None, list[Hit]] = {}
        for hit in self.hits:
            by_sid.setdefault(hit.sid if hit.sid is not None else hit.issued, []).append(hit)
        return by_sid

    def requests_before_login(self) -> list[Hit]:
        """Requests for member pages with no sid or a sid that had not logged in yet (none, for a correct pool)."""
        logged_in: set[str | None] = set()
        early = []
        for hit in self.hits:
            if hit.event == "login":
                logged_in.add(hit.issued or hit.sid)
            elif hit.path.startswith("/members/") and hit.sid not in logged_in:
                early.append(hit)
        return early

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = read_body(request)
        cookies = _cookies(request.headers.get("Cookie"))
        sent = cookies.get("sid")
        form = dict(parse_qsl(body.decode())) if request.command == "POST" else {}
        with self._lock:
            now = self.clock()
            sid, issued = sent, None
            if sid is None or sid not in self._sids:
                sid = issued = secrets.token_hex(12)
                self._sids.add(sid)
            account = self._session.get(sid)
            reply = self._route(request.command, request.path, form, sid, cookies.get("consent") == "yes", now)
            issued = reply.issued or issued
            hit = Hit(now, request.command, request.path, sent, account, reply.status, reply.event)
            self._hits.append(replace(hit, username=form.get("username"), issued=issued, kicked=reply.kicked))
        headers = [("Content-Type", _HTML), *reply.headers]
        if issued is not None:
            headers.append(("Set-Cookie", f"sid={issued}; Path=/; HttpOnly"))
        send(request, reply.status, reply.body, headers)

    def _route(self, method: str, path: str, form: dict[str, str], sid: str, consent: bool, now: float) -> _Reply:
        url = urlsplit(path)
        target = form.get("next") or dict(parse_qsl(url.query)).get("next")
        if url.path == "/login":
            if method == "POST":
                return self._login(sid, _local(target, "/members/0"), form, now)
            if self.consent and not consent:
                return _redirect("/consent?" + urlencode({"next": path}), "consent")
            return _Reply(200, self._form(sid, target), "form")
        if url.path == "/consent":
            target = _local(target, "/login")
            if method == "POST" and form.get("consent") == "yes":
                return _Reply(302, b"", "consent", (("Location", target), ("Set-Cookie", "consent=yes; Path=/")))
            fields = _hidden("consent", "yes") + _hidden("next", target) + '<button type="submit">Accept</button>'
            body = f'<p>We use cookies.</p><form id="consent" method="post" action="/consent">{fields}</form>'
            return _Reply(200, _html("Consent", body), "consent")
        if (page := _MEMBER.fullmatch(url.path)) and int(page[1]) < self.pages:
            return self._member(int(page[1]), sid, path, now)
        if url.path == "/logout":
            self._logout(sid)
            return _redirect("/login", "logout")
        if url.path == "/":
            links = "".join(f'<a class="member" href="/members/{n}">{n}</a>' for n in range(self.pages))
            return _Reply(200, _html("Home", f'<a class="login" href="/login">Log in</a>{links}'))
        return _Reply(404, _html("Not Found", "<p>No such page.</p>"))

    def _form(self, sid: str, target: str | None, error: str = "") -> bytes:
        token = self._csrf[sid] = secrets.token_hex(16)
        fields = _hidden("csrf_token", token) + (_hidden("next", target) if target else "")
        fields += '<input name="username"><input type="password" name="password"><button type="submit">Log in</button>'
        error = f'<p class="error">{error}</p>' if error else ""
        return _html("Log in", f'{error}<form id="login" method="post" action="/login">{fields}</form>')

    def _login(self, sid: str, target: str, form: dict[str, str], now: float) -> _Reply:
        username = form.get("username")
        if "csrf_token" not in form or self._csrf.get(sid) != form["csrf_token"]:
            return _Reply(403, _html("Forbidden", '<p class="error">CSRF token invalid</p>'), "csrf_failed")
        del self._csrf[sid]
        if username is None or username not in self.accounts or self.accounts[username] != form.get("password"):
            body = self._form(sid, target, "Wrong username or password")
            return _Reply(self.login_status_on_failure, body, "login_failed")
        if self._is_banned(username if self.ban_key == "account" else sid, now):
            return self._ban(sid)
        self._logout(sid)  # from another account it was logged in as
        issued = None
        if self.new_sid_on_login:
            self._sids.discard(sid)
            sid = issued = secrets.token_hex(12)
            self._sids.add(sid)
        kicked = self._account_sid.get(username)
        if kicked is not None:
            del self._session[kicked]
            self._kicked.add(kicked)
        self._session[sid], self._account_sid[username] = username, sid
        self._kicked.discard(sid)
        self._login_times.setdefault(sid, now)
        return replace(_redirect(target, "login"), issued=issued, kicked=kicked)

    def _logout(self, sid: str) -> None:
        account = self._session.pop(sid, None)
        if account is not None and self._account_sid.get(account) == sid:
            del self._account_sid[account]

    def _member(self, n: int, sid: str, target: str, now: float) -> _Reply:
        account = self._session.get(sid)
        if account is None:
            event = "kicked" if sid in self._kicked else "redirect_to_login"
            return _redirect("/login?" + urlencode({"next": target}), event)
        key = account if self.ban_key == "account" else sid
        if self._is_banned(key, now):
            return self._ban(sid)
        self._served[key] = self._served.get(key, 0) + 1
        self._is_banned(key, now)  # starts the ban once ban_after pages are served
        self._pages_served.add(n)
        more = f'<a class="next" href="/members/{n + 1}">next</a>' if n + 1 < self.pages else ""
        body = f'<h1>Member page {n}</h1><p class="who">{escape(account)}</p>{more}'
        return _Reply(200, _html(f"Member page {n}", body), "member_page")

    def _is_banned(self, key: str, now: float) -> bool:
        """Whether ``key`` is banned now: ends an expired ban (and its count), starts a due one."""
        began = self._banned.get(key)
        if began is not None and self.ban_secs is not None and now - began >= self.ban_secs:
            del self._banned[key]
            self._served[key] = 0
            began = None
        limit = self.ban_after.get(key) if isinstance(self.ban_after, Mapping) else self.ban_after
        if began is None and limit is not None and self._served.get(key, 0) >= limit:
            self._banned[key] = began = now
            self._ever_banned.add(key)
        return began is not None

    def _ban(self, sid: str) -> _Reply:
        if self.ban_signal == "login_redirect":  # a site that silently logs a banned account out
            self._logout(sid)
            return _redirect("/login", "banned")
        if self.ban_signal == "429":
            return _Reply(429, _html("Too Many Requests", "<p>Slow down.</p>"), "banned", (("Retry-After", "30"),))
        if self.ban_signal == "captcha":
            form = '<form id="captcha" method="post" action="/captcha"><input name="answer"></form>'
            return _Reply(200, _html("Captcha", f"<p>Please solve the captcha.</p>{form}"), "banned")
        return _Reply(403, _html("Forbidden", "<p>Access denied.</p>"), "banned")
