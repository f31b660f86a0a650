"""A local shop that guards itself against scrapers, like a real one.

The seed fixes the catalogue and which items are slow or fail once; a session's hidden traits follow from
its cookie, which is random, so tests that count on them set ``flagged=0.0``.

Guards, in the order a request meets them (``GET /__stats`` skips them all):

- the exit IP (the ``X-Proxy-Name`` header the demo proxies add, else "direct"): a blocked exit, or one
  over ``rate_limit`` requests in the last second, gets 503 with ``Retry-After``; an exit that got
  ``exit_block_after`` sessions blocked within ``exit_block_window`` seconds is blocked for ``exit_block_secs``;
- the session cookie: a request without a valid ``shop_session`` is served with a new one; cookies are signed, so a
  session from an earlier run of the shop (same seed)
  is still known (its request count starts again);
- the session's hidden budget: after that many requests it is blocked for good with 403, 429 (no
  ``Retry-After``) or a 200 captcha page; a ``flagged`` share of new sessions gets a budget of 1 to 3.

Some item pages are slow and some fail once with 500: those are not blocks. ``latency`` seconds are added
to every answer, as a remote shop's response time.

With ``challenge``, every page first needs a ``shop_clearance`` cookie that only a browser gets: a
page without it is a "Just a moment..." page whose script computes the cookie from a nonce and
reloads. The cookie is bound to the exit and the User-Agent that got the page, and lasts
``challenge_secs``.

With ``accounts`` (username -> password), customers can sign in: ``GET /login`` shows a form with a
csrf token bound to the session cookie, ``POST /login`` signs that session in, and signs out the
account's previous session (one session per account). Item pages show a signed-in session its
member price (``span.member-price``).

Run: ``python -m demo.shop --port 0 --items 500 --proxies 4 --seed 1`` (from ``example_project/``) prints
``{"site": ..., "proxies": [...]}`` on one line and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from demo.net import ForwardingProxy, Header, LocalServer, read_body, send

COOKIE = "shop_session"
BLOCK_KINDS = ("403", "429", "captcha")
RATE_RETRY_AFTER = 2
FLAGGED_BUDGET = (1, 3)
CATEGORIES = ("books", "garden", "kitchen", "music", "outdoor", "sports", "tools", "toys")
_ADJECTIVES = ("Blue", "Sturdy", "Classic", "Compact", "Deluxe", "Handy", "Quiet", "Rustic", "Smart", "Tiny")
_NOUNS = ("Lamp", "Kettle", "Backpack", "Chair", "Guitar", "Hammer", "Notebook", "Puzzle", "Racket", "Teapot")
_HTML = "text/html; charset=utf-8"
_ITEM = re.compile(r"/item/(\d+)")
_CATEGORY = re.compile(r"/category/([a-z]+)")
_CATALOGUE = re.compile(r"/(category|item)/")


@dataclass(frozen=True)
class Item:
    """One product of the catalogue."""

    number: int
    name: str
    price: str
    sku: str
    category: str


@dataclass(frozen=True)
class _Page:
    status: int
    body: bytes
    headers: tuple[Header, ...] = ()
    delay: float = 0.0


@dataclass
class _Session:
    budget: int
    block: str
    flagged: bool
    used: int = 0
    blocked: bool = False
    account: str | None = None  # signed in as
    csrf: str | None = None  # the token of its last login form
    anonymous_pages: int = 0  # category and item pages it asked for while not signed in


@dataclass
class _Exit:
    hits: deque[float] = field(default_factory=deque)  # request times within the last second
    blocks: deque[float] = field(default_factory=deque)  # times sessions got blocked through this exit
    blocked_until: float = 0.0


def _html(title: str, body: str) -> bytes:
    return f"<!DOCTYPE html>\n<html><head><title>{title}</title></head><body>{body}</body></html>\n".encode()


def _trim(times: deque[float], since: float) -> None:
    while times and times[0] <= since:
        times.popleft()


def _unavailable(retry_after: int) -> _Page:
    body = _html("Service Unavailable", "<p>Too many requests from your network.</p>")
    return _Page(503, body, (("Retry-After", str(retry_after)),))


def _blocked(kind: str) -> _Page:
    if kind == "captcha":
        return _Page(200, _html("Are you human?", '<form action="/captcha"><p>Please complete the captcha.</p></form>'))
    if kind == "429":
        return _Page(429, _html("Too Many Requests", "<p>You are browsing too fast.</p>"))
    return _Page(403, _html("Forbidden", "<p>Access denied.</p>"))


_NOT_FOUND = _Page(404, _html("Not Found", "<p>No such page.</p>"))


class DemoShop(LocalServer):
    """The guarded shop (see the module docstring); items are numbered 1 to `items`.

    Fractions (`flagged`, `slow`, `flaky`) and ranges (`budget`, `slow_secs`) are drawn from `seed`: the
    catalogue, `slow_items` and `flaky_items` are fixed by it, and so are the budget, flag and block kind of
    the n-th session issued (the cookie values themselves are random). `None` turns a limit off.
    """

    def __init__(
        self,
        *,
        items: int = 500,
        categories: int = 5,
        per_page: int = 20,
        seed: int = 1,
        budget: tuple[int, int] = (25, 60),
        flagged: float = 0.05,
        block_kinds: tuple[str, ...] = BLOCK_KINDS,
        rate_limit: int | None = 8,
        exit_block_after: int | None = 8,
        exit_block_window: float = 60.0,
        exit_block_secs: float = 20.0,
        slow: float = 0.02,
        slow_secs: tuple[float, float] = (1.0, 2.0),
        latency: float = 0.0,
        flaky: float = 0.02,
        accounts: Mapping[str, str] | None = None,
        challenge: bool = False,
        challenge_secs: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= categories <= len(CATEGORIES):
            raise ValueError(f"categories must be 1 to {len(CATEGORIES)}, got {categories}")
        if not block_kinds or set(block_kinds) - set(BLOCK_KINDS):
            raise ValueError(f"block_kinds must be some of {BLOCK_KINDS}, got {block_kinds}")
        super().__init__()
        self.per_page = per_page
        self.budget = budget
        self.flagged = flagged
        self.block_kinds = block_kinds
        self.rate_limit = rate_limit
        self.exit_block_after = exit_block_after
        self.exit_block_window = exit_block_window
        self.exit_block_secs = exit_block_secs
        self.clock = clock
        self.latency = latency
        self.accounts = dict(accounts or {})
        self.challenge, self.challenge_secs = challenge, challenge_secs
        self._clearances: dict[str, tuple[str, str, float]] = {}  # cookie -> (exit, User-Agent, issued at)
        self._signed_in: dict[str, _Session] = {}  # account -> its session
        rng = random.Random(seed)
        self.categories = CATEGORIES[:categories]
        self.catalogue = {n: self._make_item(rng, n) for n in range(1, items + 1)}
        numbers = list(self.catalogue)
        self.slow_items = {n: rng.uniform(*slow_secs) for n in sorted(rng.sample(numbers, round(items * slow)))}
        self.flaky_items = frozenset(rng.sample(numbers, round(items * flaky)))
        self._seed = seed
        self._secret = f"demo-shop:{seed}".encode()
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._exits: dict[str, _Exit] = {}
        self._failed: set[int] = set()  # flaky items that already failed once
        self._served: set[int] = set()
        self._counts: Counter[str] = Counter()
        self._by_exit: Counter[str] = Counter()
        self._first_request_at, self._last_request_at = math.inf, -math.inf

    def _make_item(self, rng: random.Random, n: int) -> Item:
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
        price = f"{rng.randint(199, 19999) / 100:.2f}"
        return Item(n, name, price, f"DS-{n:05d}", self.categories[(n - 1) % len(self.categories)])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def summary(self) -> dict[str, Any]:
        """What the shop served so far (the body of ``GET /__stats``).

        `items_served`/`items_missing`: items whose real page was answered (200, not a captcha); `blocks`:
        refusals of blocked sessions by kind; `rate_limited`: 503s to an exit over the rate limit;
        `exit_blocks`: times an exit got blocked, `exit_blocked`: 503s it got meanwhile; `server_errors`: 500s;
        `busy_secs`: from the first request to the last. With accounts: `logins` (and `logins_failed`),
        `kicked` (sessions signed out by a login of their account elsewhere), `member_prices_served`, and
        `requests_before_login`: category and item pages asked by a session that signed in only later.
        """
        with self._lock:
            return {
                "items": len(self.catalogue),
                "items_served": len(self._served),
                "items_missing": sorted(set(self.catalogue) - self._served),
                "requests": self._counts["requests"],
                "sessions_issued": self._counts["issued"],
                "sessions_known": len(self._sessions),
                "sessions_flagged": self._counts["flagged"],
                "sessions_blocked": self._counts["sessions_blocked"],
                "blocks": {kind: self._counts[f"block/{kind}"] for kind in BLOCK_KINDS},
                "rate_limited": self._counts["rate_limited"],
                "exit_blocks": self._counts["exit_blocks"],
                "exit_blocked": self._counts["exit_blocked"],
                "server_errors": self._counts["server_errors"],
                "requests_by_exit": dict(self._by_exit),
                "busy_secs": max(self._last_request_at - self._first_request_at, 0.0),
                **(self._account_summary() if self.accounts else {}),
                **({"challenges": self._counts["challenges"]} if self.challenge else {}),
            }

    def _account_summary(self) -> dict[str, int]:
        return {
            "logins": self._counts["logins"],
            "logins_failed": self._counts["logins_failed"],
            "kicked": self._counts["kicked"],
            "member_prices_served": self._counts["member_prices"],
            "requests_before_login": self._counts["before_login"],
        }

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        form = dict(parse_qsl(read_body(request).decode("utf-8", "replace"))) if request.command == "POST" else None
        if urlsplit(request.path).path == "/__stats":
            send(request, 200, json.dumps(self.summary()).encode(), [("Content-Type", "application/json")])
            return
        exit_ip = request.headers.get("X-Proxy-Name") or "direct"
        with self._lock:
            page = self._gate(exit_ip, request.headers.get("User-Agent") or "", request.headers.get("Cookie"))
            if page is None:
                page = self._answer(request.path, exit_ip, request.headers.get("Cookie"), form)
        if page.delay or self.latency:
            time.sleep(page.delay + self.latency)
        send(request, page.status, page.body, [("Content-Type", _HTML), *page.headers])

    def _answer(
        self, target: str, exit_ip: str, cookie_header: str | None, form: dict[str, str] | None = None
    ) -> _Page:
        """Run the guards, then serve the page (called under the lock)."""
        self._counts["requests"] += 1
        self._by_exit[exit_ip] += 1
        now = self.clock()
        self._first_request_at = min(self._first_request_at, now)
        self._last_request_at = now
        exit_ = self._exits.setdefault(exit_ip, _Exit())
        if refusal := self._exit_refusal(exit_, now):
            return refusal
        session = self._session(_cookie(cookie_header, COOKIE) or "")
        if session is None:
            return self._issue(target)
        if refusal := self._session_refusal(session, exit_, now):
            return refusal
        return self._serve(target, session, form)

    def _serve(self, target: str, session: _Session, form: dict[str, str] | None) -> _Page:
        if self.accounts and urlsplit(target).path == "/login":
            return self._login(session, form)
        if self.accounts and session.account is None and _CATALOGUE.match(target):
            session.anonymous_pages += 1
        return self._page(target, session)

    def _login(self, session: _Session, form: dict[str, str] | None) -> _Page:
        """The sign-in form (GET), or a sign-in (POST): one session per account."""
        if form is None:
            session.csrf = secrets.token_urlsafe(12)
            return _Page(200, _html("Sign in", _login_form(session.csrf)))
        token, session.csrf = session.csrf, None
        if not token or not hmac.compare_digest(form.get("csrf_token", ""), token):
            return _Page(403, _html("Forbidden", "<p>CSRF token invalid.</p>"))
        username = form.get("username", "")
        if self.accounts.get(username) != form.get("password") or not username:
            self._counts["logins_failed"] += 1
            session.csrf = secrets.token_urlsafe(12)
            return _Page(200, _html("Sign in", "<p>Wrong username or password.</p>" + _login_form(session.csrf)))
        previous = self._signed_in.get(username)
        if previous is not None and previous is not session:
            previous.account = None
            self._counts["kicked"] += 1
        self._counts["before_login"] += session.anonymous_pages
        session.anonymous_pages = 0
        self._signed_in[username] = session
        session.account = username
        self._counts["logins"] += 1
        return _Page(302, b"", (("Location", "/account"),))

    def _gate(self, exit_ip: str, agent: str, cookie_header: str | None) -> _Page | None:
        """With ``challenge``: the challenge page, unless the request has a clearance of its exit and agent."""
        if not self.challenge:
            return None
        now = self.clock()
        given = _cookie(cookie_header, CLEARANCE) or ""
        bound = self._clearances.get(given)
        if bound is not None and bound[:2] == (exit_ip, agent) and now - bound[2] < self.challenge_secs:
            return None
        self._counts["challenges"] += 1
        self._counts["requests"] += 1
        nonce = secrets.token_hex(8)
        self._clearances[_clearance(nonce)] = (exit_ip, agent, now)
        return _Page(200, _html("Just a moment...", _CHALLENGE % {"nonce": nonce, "name": CLEARANCE}))

    def _exit_refusal(self, exit_: _Exit, now: float) -> _Page | None:
        """A 503 for a blocked exit or one over the rate limit."""
        if now < exit_.blocked_until:
            self._counts["exit_blocked"] += 1
            return _unavailable(math.ceil(exit_.blocked_until - now))
        if self.rate_limit is None:
            return None
        _trim(exit_.hits, now - 1.0)
        exit_.hits.append(now)  # refused requests count too: a client that ignores Retry-After stays throttled
        if len(exit_.hits) <= self.rate_limit:
            return None
        self._counts["rate_limited"] += 1
        return _unavailable(RATE_RETRY_AFTER)

    def _issue(self, target: str) -> _Page:
        """Start a session: serve the page with a new cookie (Scrapy's dupe filter would drop a redirect to
        the same URL, the usual shape of a bot check)."""
        nonce = secrets.token_urlsafe(12)
        token = f"{nonce}.{self._sign(nonce)}"
        session = self._sessions[token] = self._new_session(nonce)
        self._counts["issued"] += 1
        self._counts["flagged"] += session.flagged
        page = self._serve(target, session, None)
        return _Page(
            page.status, page.body, (*page.headers, ("Set-Cookie", f"{COOKIE}={token}; Path=/; HttpOnly")), page.delay
        )

    def _session(self, token: str) -> _Session | None:
        """The session of a cookie: one of ours, or a signed one from an earlier run of the shop."""
        session = self._sessions.get(token)
        if session is None and "." in token:
            nonce, signature = token.rsplit(".", 1)
            if hmac.compare_digest(signature, self._sign(nonce)):
                session = self._sessions[token] = self._new_session(nonce)
        return session

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()[:20]

    def _new_session(self, nonce: str) -> _Session:
        rng = random.Random(f"{self._seed}:{nonce}")  # a session's hidden traits follow from its cookie
        flagged = rng.random() < self.flagged
        budget = rng.randint(*(FLAGGED_BUDGET if flagged else self.budget))
        return _Session(budget, rng.choice(self.block_kinds), flagged)

    def _session_refusal(self, session: _Session, exit_: _Exit, now: float) -> _Page | None:
        """Count the request against the session's budget; the block answer once it is spent."""
        session.used += 1
        if not session.blocked and session.used > session.budget:
            session.blocked = True
            self._counts["sessions_blocked"] += 1
            self._note_session_block(exit_, now)
        if session.blocked:
            self._counts[f"block/{session.block}"] += 1
            return _blocked(session.block)
        return None

    def _note_session_block(self, exit_: _Exit, now: float) -> None:
        """Block the exit once too many of its sessions got blocked lately."""
        _trim(exit_.blocks, now - self.exit_block_window)
        exit_.blocks.append(now)
        if self.exit_block_after is not None and len(exit_.blocks) >= self.exit_block_after:
            exit_.blocked_until = now + self.exit_block_secs
            exit_.blocks.clear()
            self._counts["exit_blocks"] += 1

    def _page(self, target: str, session: _Session | None = None) -> _Page:
        url = urlsplit(target)
        member = session.account if session is not None else None
        if url.path == "/":
            return self._home()
        if url.path == "/account" and self.accounts:
            if member is None:
                return _Page(302, b"", (("Location", "/login?" + urlencode({"next": "/account"})),))
            return _Page(200, _html("Your account", f'<p class="who">Signed in as {member}</p>'))
        if match := _CATEGORY.fullmatch(url.path):
            page = dict(parse_qsl(url.query)).get("page", "1")
            return self._category(match[1], int(page)) if page.isdigit() else _NOT_FOUND
        if match := _ITEM.fullmatch(url.path):
            return self._item(int(match[1]), member)
        return _NOT_FOUND

    def _home(self) -> _Page:
        links = "".join(f'<li><a class="category" href="/category/{c}">{c.title()}</a></li>' for c in self.categories)
        return _Page(200, _html("Demo Shop", f"<h1>Demo Shop</h1><ul>{links}</ul>"))

    def _category(self, category: str, page: int) -> _Page:
        numbers = [item.number for item in self.catalogue.values() if item.category == category]
        shown = numbers[(page - 1) * self.per_page : page * self.per_page]
        if not shown:  # an unknown category, or past the last page
            return _NOT_FOUND
        links = "".join(f'<li><a class="item" href="/item/{n}">{self.catalogue[n].name}</a></li>' for n in shown)
        more = page * self.per_page < len(numbers)
        next_link = f'<a class="next" href="/category/{category}?page={page + 1}">Next</a>' if more else ""
        title = f"{category.title()}, page {page}"
        return _Page(200, _html(title, f"<h1>{title}</h1><ul>{links}</ul>{next_link}"))

    def _item(self, n: int, member: str | None = None) -> _Page:
        item = self.catalogue.get(n)
        if item is None:
            return _NOT_FOUND
        if n in self.flaky_items and n not in self._failed:
            self._failed.add(n)
            self._counts["server_errors"] += 1
            return _Page(500, _html("Internal Server Error", "<p>Something went wrong.</p>"))
        self._served.add(n)
        body = (
            f'<h1 class="name">{item.name}</h1><p>Price: <span class="price">{item.price}</span></p>'
            f'<p>SKU: <span class="sku">{item.sku}</span></p><a href="/category/{item.category}">Back</a>'
        )
        if member is not None:  # 10 % off for signed-in customers
            self._counts["member_prices"] += 1
            body += f'<p>Your price: <span class="member-price">{float(item.price) * 0.9:.2f}</span></p>'

        return _Page(200, _html(item.name, body), delay=self.slow_items.get(n, 0.0))


CLEARANCE = "shop_clearance"
#: The challenge page: its script stores the nonce, reversed and hex-summed, as the clearance, and reloads.
_CHALLENGE = """<p>Checking your browser...</p><script>
var n = "%(nonce)s", s = 0, r = n.split("").reverse().join("");
for (var i = 0; i < r.length; i++) { s = (s * 31 + r.charCodeAt(i)) %% 1000000007; }
document.cookie = "%(name)s=" + r + "." + s + "; path=/; SameSite=Lax";
location.reload();
</script>"""


def _clearance(nonce: str) -> str:
    """The cookie value the challenge script computes for ``nonce``."""
    reverse, total = nonce[::-1], 0
    for char in reverse:
        total = (total * 31 + ord(char)) % 1_000_000_007
    return f"{reverse}.{total}"


def _login_form(token: str) -> str:
    return (
        '<form id="login" method="post" action="/login">'
        f'<input type="hidden" name="csrf_token" value="{token}">'
        '<input name="username"><input type="password" name="password"><button>Sign in</button></form>'
    )


def _cookie(header: str | None, name: str) -> str | None:
    for pair in (header or "").split(";"):
        key, _, value = pair.strip().partition("=")
        if key == name:
            return value
    return None


def start_demo(
    items: int = 500, proxies: int = 4, seed: int = 1, port: int = 0, **options: Any
) -> tuple[DemoShop, list[ForwardingProxy]]:
    """Start the shop (on `port`, with `options` for `DemoShop`) and proxies named proxy0, proxy1, ..."""
    shop = DemoShop(items=items, seed=seed, **options).start(port)
    return shop, [ForwardingProxy(f"proxy{i}").start() for i in range(proxies)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the guarded demo shop and its proxies until SIGTERM/SIGINT.")
    parser.add_argument("--port", type=int, default=0, help="the shop's port (0: any free one)")
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--proxies", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    shop, proxies = start_demo(args.items, args.proxies, args.seed, args.port)
    try:
        print(json.dumps({"site": shop.url, "proxies": [proxy.url for proxy in proxies]}), flush=True)
        stopping.wait()
    finally:
        for server in (shop, *proxies):
            server.stop()


if __name__ == "__main__":
    main()
