"""A website behind a JavaScript challenge, as anti-bot vendors put in front of sites; served on 127.0.0.1.

Every page (``/``, ``/items/<n>``, any other path) asked without a valid clearance cookie gets a challenge page
("Just a moment...", "Checking your browser") whose inline script computes a token from the nonce in the page,
stores it as the clearance cookie (``document.cookie``) and reloads. The next request, with that cookie, gets the
real page. Only a client that runs the script (a real browser) gets past it; one that reads the page for a token
finds none there.

The token of a nonce is :func:`challenge_token`, ``<nonce>.<hash>``: a 32-bit FNV-1a of the nonce's characters,
then ``rounds`` rounds of ``h = (h ^ (h >> 15) ^ i) * 0x85EBCA6B mod 2**32`` (i = 0, 1, ...), as 8 hex digits.

The site checks the cookie: the token must be the one for a nonce it issued, and it is bound to the exit (the
``X-Proxy-Name`` header that the tests' proxies add, else "direct") and the User-Agent of the request that got
that challenge page; sent from another exit or User-Agent it is refused ("mismatch"). It expires
``clearance_secs`` after it was solved (its first accepted use), by the site's clock ("expired"). A refused
request gets a new challenge page. With ``subresource_cookie``, the challenge page also loads ``/c.js``, whose
answer sets an HttpOnly ``visitor`` cookie (bound the same way), and a page needs both cookies.
``/favicon.ico`` (that browsers ask on their own) is a plain 404, never challenged.

Run standalone with ``python -m tests.support.challenge_site --port 0``.
"""

from __future__ import annotations

import argparse
import math
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.support.server import Header, LocalServer, read_body, send

__all__ = ["EVENTS", "ChallengeSite", "Hit", "challenge_token"]

#: A hit's possible events; see :class:`Hit`.
EVENTS = ("challenge", "mismatch", "expired", "solved", "page", "script", None)
#: The events of a request answered with a challenge page.
CHALLENGE_EVENTS = frozenset({"challenge", "mismatch", "expired"})

_HTML = "text/html; charset=utf-8"
_ITEM = re.compile(r"/items/(\d+)")
_MASK = 0xFFFFFFFF


def challenge_token(nonce: str, rounds: int) -> str:
    """The token the challenge page's script computes for ``nonce`` (``<nonce>.<8 hex digits>``)."""
    h = 0x811C9DC5
    for char in nonce:
        h = ((h ^ ord(char)) * 0x01000193) & _MASK
    for i in range(rounds):
        h = ((h ^ (h >> 15) ^ i) * 0x85EBCA6B) & _MASK
    return f"{nonce}.{h:08x}"


# The same computation in the page: Math.imul multiplies modulo 2**32, ">>> 0" reads the result as unsigned.
_SOLVE_JS = """function solve(nonce, rounds) {
  var h = 0x811c9dc5;
  for (var c = 0; c < nonce.length; c++) h = Math.imul(h ^ nonce.charCodeAt(c), 0x01000193) >>> 0;
  for (var i = 0; i < rounds; i++) h = Math.imul(h ^ (h >>> 15) ^ i, 0x85ebca6b) >>> 0;
  return nonce + "." + h.toString(16).padStart(8, "0");
}"""


@dataclass(frozen=True)
class Hit:
    """One request as the site saw it.

    ``event``: "challenge" (no valid clearance: a challenge page), "mismatch" (a clearance cookie, or a visitor
    cookie, replayed from another exit or User-Agent than the one it was issued to: a challenge page), "expired"
    (a clearance older than ``clearance_secs``: a challenge page), "solved" (the first request with a fresh valid
    clearance: the real page), "page" (a later request with it: the real page), "script" (``/c.js``) or None
    (``/favicon.ico``). ``status`` is that of the answer (a real page of a path the site lacks is a 404).
    """

    time: float  #: from the site's clock
    method: str
    path: str
    exit: str  #: the X-Proxy-Name header, or "direct"
    user_agent: str | None
    cookie: str | None  #: the Cookie header sent
    status: int
    event: str | None
    token: str | None = None  #: the clearance cookie sent
    nonce: str | None = None  #: the nonce of the challenge page this answer is


@dataclass
class _Clearance:
    exit: str
    user_agent: str | None
    solved: float | None = None  #: when it was first accepted


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    event: str | None
    content_type: str = _HTML
    headers: tuple[Header, ...] = ()
    nonce: str | None = None


def _cookies(header: str | None) -> dict[str, str]:
    pairs = (pair.strip().partition("=") for pair in (header or "").split(";"))
    return {name: value for name, _, value in pairs if name}


def _html(title: str, body: str, head: str = "") -> bytes:
    return f"<!DOCTYPE html><html><head><title>{title}</title>{head}</head><body>{body}</body></html>".encode()


class ChallengeSite(LocalServer):
    """A site of ``items`` item pages behind a JavaScript challenge; see the module's docstring.

    ``cookie_name``: the clearance cookie's name; ``challenge_status``: the challenge page's status (200, or 503
    as Cloudflare answers); ``clearance_secs``: how long a clearance lasts once solved (also the cookie's
    max-age); ``rounds``: the hash rounds of the token; ``subresource_cookie``: the challenge page also loads
    ``/c.js``, which sets the ``visitor_cookie`` that every page then needs too; ``fail_once``: item numbers
    answered once with a 500 (event "error") past the challenge; ``clock``: the hits' time and the clearances'
    expiry.
    """

    def __init__(
        self,
        items: int = 10,
        *,
        cookie_name: str = "challenge",
        challenge_status: int = 200,
        clearance_secs: float = 60.0,
        rounds: int = 5000,
        subresource_cookie: bool = False,
        visitor_cookie: str = "visitor",
        fail_once: frozenset[int] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.items = items
        self.cookie_name = cookie_name
        self.challenge_status = challenge_status
        self.clearance_secs = clearance_secs
        self.rounds = rounds
        self.subresource_cookie = subresource_cookie
        self.visitor_cookie = visitor_cookie
        self.fail_once = fail_once
        self.clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the nonces, clearances, visitors and hits."""
        with self._lock:
            self._hits: list[Hit] = []
            self._clearances: dict[str, _Clearance] = {}  # token -> to whom its nonce was issued
            self._visitors: dict[str, tuple[str, str | None]] = {}  # visitor id -> (exit, user agent)
            self._pages_served: set[int] = set()
            self._failed: set[int] = set()  # items of fail_once that failed already

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def pages_served(self) -> set[int]:
        """The item numbers served as real content."""
        with self._lock:
            return set(self._pages_served)

    def challenges(self) -> list[Hit]:
        """The requests answered with a challenge page (events "challenge", "mismatch" and "expired")."""
        return [hit for hit in self.hits if hit.event in CHALLENGE_EVENTS]

    def solves(self) -> list[Hit]:
        """The requests that brought a fresh clearance (one a hit each)."""
        return [hit for hit in self.hits if hit.event == "solved"]

    def clearances(self) -> int:
        """How many distinct tokens were accepted."""
        return len({hit.token for hit in self.hits if hit.event in ("solved", "page")})

    def token_for(self, nonce: str) -> str:
        """The token of ``nonce`` with this site's rounds."""
        return challenge_token(nonce, self.rounds)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        read_body(request)
        header = request.headers.get("Cookie")
        cookies = _cookies(header)
        exit_ip = request.headers.get("X-Proxy-Name") or "direct"
        user_agent = request.headers.get("User-Agent")
        token = cookies.get(self.cookie_name)
        with self._lock:
            now = self.clock()
            reply = self._route(urlsplit(request.path).path, cookies, exit_ip, user_agent, now)
            self._hits.append(
                Hit(
                    now,
                    request.command,
                    request.path,
                    exit_ip,
                    user_agent,
                    header,
                    reply.status,
                    reply.event,
                    token,
                    reply.nonce,
                )
            )
        headers = (("Content-Type", reply.content_type), ("Cache-Control", "no-store"), *reply.headers)
        send(request, reply.status, reply.body, headers)

    def _route(self, path: str, cookies: dict[str, str], exit_ip: str, user_agent: str | None, now: float) -> _Reply:
        if path == "/favicon.ico":
            return _Reply(404, b"", None, "text/plain")
        if path == "/c.js":
            visitor = secrets.token_hex(8)
            self._visitors[visitor] = (exit_ip, user_agent)
            set_cookie = f"{self.visitor_cookie}={visitor}; Path=/; HttpOnly; SameSite=Strict"
            body = b"window.__challengeVisitor = true;\n"
            return _Reply(200, body, "script", "application/javascript", (("Set-Cookie", set_cookie),))
        refusal = self._gate(cookies, exit_ip, user_agent, now)
        if refusal is not None:
            return self._challenge(refusal, exit_ip, user_agent)
        clearance = self._clearances[cookies[self.cookie_name]]
        event = "page"
        if clearance.solved is None:
            clearance.solved, event = now, "solved"
        if path == "/":
            links = "".join(f'<li><a class="item" href="/items/{n}">Item {n}</a></li>' for n in range(self.items))
            return _Reply(200, _html("Items", f"<h1>Items</h1><ul>{links}</ul>"), event)
        if (item := _ITEM.fullmatch(path)) and int(item[1]) < self.items:
            n = int(item[1])
            if n in self.fail_once and n not in self._failed:  # past the challenge, a server error once
                self._failed.add(n)
                return _Reply(500, _html("Internal Server Error", "<p>Something went wrong.</p>"), "error")
            self._pages_served.add(n)
            body = f'<h1 class="name">Item {n}</h1><p class="item">item-{n}</p><a href="/">all items</a>'
            return _Reply(200, _html(f"Item {n}", body), event)
        return _Reply(404, _html("Not Found", "<p>No such page.</p>"), event)

    def _gate(self, cookies: dict[str, str], exit_ip: str, user_agent: str | None, now: float) -> str | None:
        """None when the request may see the page, else the event of its challenge page."""
        clearance = self._clearances.get(cookies.get(self.cookie_name, ""))
        if clearance is None:  # no cookie, a made-up token, or a token of a nonce the site never issued
            return "challenge"
        if (clearance.exit, clearance.user_agent) != (exit_ip, user_agent):
            return "mismatch"
        if clearance.solved is not None and now - clearance.solved >= self.clearance_secs:
            return "expired"
        if self.subresource_cookie:
            visitor = self._visitors.get(cookies.get(self.visitor_cookie, ""))
            if visitor is None:
                return "challenge"
            if visitor != (exit_ip, user_agent):
                return "mismatch"
        return None

    def _challenge(self, event: str, exit_ip: str, user_agent: str | None) -> _Reply:
        nonce = secrets.token_hex(8)
        self._clearances[challenge_token(nonce, self.rounds)] = _Clearance(exit_ip, user_agent)
        max_age = math.ceil(self.clearance_secs)
        script = (
            f"<script>\n{_SOLVE_JS}\n(function () {{\n"
            f'  var token = solve("{nonce}", {self.rounds});\n'
            f'  document.cookie = "{self.cookie_name}=" + token + "; path=/; max-age={max_age}; SameSite=Lax";\n'
            "  location.reload();\n})();\n</script>"
        )
        head = '<script src="/c.js"></script>' if self.subresource_cookie else ""
        body = (
            '<div id="challenge"><h1>Checking your browser before accessing the site.</h1>'
            "<p>This process is automatic. Your browser will redirect to your requested content shortly.</p>"
            f"<noscript><p>Enable JavaScript and cookies to continue.</p></noscript></div>{script}"
        )
        headers = (("cf-mitigated", "challenge"),)
        return _Reply(self.challenge_status, _html("Just a moment...", body, head), event, headers=headers, nonce=nonce)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--status", type=int, default=200, help="the challenge page's status (200 or 503)")
    parser.add_argument("--clearance-secs", type=float, default=60.0)
    parser.add_argument("--subresource-cookie", action="store_true")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    site = ChallengeSite(
        args.items,
        challenge_status=args.status,
        clearance_secs=args.clearance_secs,
        subresource_cookie=args.subresource_cookie,
    ).start(args.port)
    try:
        print(site.url(""), flush=True)
        stopping.wait()
    finally:
        site.stop()


if __name__ == "__main__":
    main()
