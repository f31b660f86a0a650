"""A small shop that guards itself against scrapers, served on 127.0.0.1.

Run standalone with ``python -m tests.support.site --port 0 [--budget N]``.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from tests.support.server import Header, LocalServer, read_body, send


def _cookie(header: str | None, name: str) -> str | None:
    for pair in (header or "").split(";"):
        key, _, value = pair.strip().partition("=")
        if key == name:
            return value
    return None


def _html(title: str, body: str) -> bytes:
    return f"<html><title>{title}</title><body>{body}</body></html>".encode()


_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_BLOCK_KINDS = ("403", "429", "captcha")
_PAGE = re.compile(r"/(?P<kind>items|private)/(?P<n>\d+)")
_STATUS = re.compile(r"/status/(?P<code>[2-5]\d\d)")


@dataclass(frozen=True)
class Hit:
    """One request as the site saw it. `sid` is the sid cookie sent; `blocked` means the guard refused it."""

    path: str
    sid: str | None
    cookie: str | None
    user_agent: str | None
    proxy: str | None
    status: int
    blocked: bool


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = _HTML
    headers: tuple[Header, ...] = ()
    blocked: bool = False


def _block_reply(kind: str, headers: tuple[Header, ...]) -> _Reply:
    if kind == "captcha":
        return _Reply(200, _html("Captcha", "<p>Please solve the captcha.</p>"), headers=headers, blocked=True)
    if kind == "429":
        return _Reply(429, _html("Too Many Requests", "<p>Slow down.</p>"), headers=headers, blocked=True)
    return _Reply(403, _html("Forbidden", "<p>Access denied.</p>"), headers=headers, blocked=True)


class GuardedSite(LocalServer):
    """A shop that hands out `sid` cookies, blocks a sid after `budget` requests, and can rate-limit exit IPs.

    `block` picks the block answer: "403", "429", "captcha" (a 200 captcha page) or "mixed" (cycles the three
    across sids). The exit IP is the `X-Proxy-Name` header or "direct"; with `ip_limit` set, an exit IP that made
    more than `ip_limit` requests to /items or /private within `ip_window` seconds gets 503 + Retry-After.
    Refused requests count in that window too, so a client that ignores Retry-After stays throttled.
    """

    def __init__(
        self,
        budget: int | None = 5,
        block: str = "403",
        ip_limit: int | None = None,
        ip_window: float = 1.0,
        retry_after: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if block not in (*_BLOCK_KINDS, "mixed"):
            raise ValueError(f"block must be one of 403, 429, captcha, mixed; got {block!r}")
        super().__init__()
        self.budget = budget
        self.block = block
        self.ip_limit = ip_limit
        self.ip_window = ip_window
        self.retry_after = retry_after
        self.clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget all sids, counters and recorded requests."""
        with self._lock:
            self._requests: list[Hit] = []
            self._sid_counts: dict[str, int] = {}
            self._blocked: dict[str, str] = {}  # sid -> block kind
            self._served_items: set[int] = set()
            self._ip_times: dict[str, deque[float]] = {}
            self._rate_limited: Counter[str] = Counter()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[Hit]:
        with self._lock:
            return list(self._requests)

    def hits(self, path_prefix: str | None = None) -> list[Hit]:
        """Recorded requests, optionally only those whose path starts with `path_prefix`."""
        return [hit for hit in self.requests if path_prefix is None or hit.path.startswith(path_prefix)]

    @property
    def issued_sids(self) -> set[str]:
        with self._lock:
            return set(self._sid_counts)

    @property
    def blocked_sids(self) -> set[str]:
        with self._lock:
            return set(self._blocked)

    @property
    def served_items(self) -> set[int]:
        """Item numbers served as real content (200, not a captcha)."""
        with self._lock:
            return set(self._served_items)

    @property
    def rate_limited(self) -> dict[str, int]:
        """Number of 503 answers per exit IP ("direct" or a proxy name)."""
        with self._lock:
            return dict(self._rate_limited)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        read_body(request)
        cookie = request.headers.get("Cookie")
        sid = _cookie(cookie, "sid")
        proxy = request.headers.get("X-Proxy-Name")
        with self._lock:
            reply = self._route(request, sid, proxy)
            self._requests.append(
                Hit(request.path, sid, cookie, request.headers.get("User-Agent"), proxy, reply.status, reply.blocked)
            )
        send(request, reply.status, reply.body, (("Content-Type", reply.content_type), *reply.headers))

    def _route(self, request: BaseHTTPRequestHandler, sid: str | None, proxy: str | None) -> _Reply:
        url = urlsplit(request.path)
        query = dict(parse_qsl(url.query))
        if page := _PAGE.fullmatch(url.path):
            return self._page(page["kind"], int(page["n"]), sid, proxy or "direct")
        if url.path == "/redirect":
            cookie, refusal = self._visit(sid, may_issue=True)
            return refusal or _Reply(302, b"", _TEXT, (*cookie, ("Location", query.get("to", "/"))))
        if status := _STATUS.fullmatch(url.path):
            code = int(status["code"])
            retry = (("Retry-After", query["retry_after"]),) if "retry_after" in query else ()
            return _Reply(code, b"" if code in (204, 304) else f"status {code}".encode(), _TEXT, retry)
        if url.path == "/cookies/set" and "name" in query:
            return _Reply(200, b"ok", _TEXT, (("Set-Cookie", _set_cookie(query)),))
        if url.path == "/echo":
            echo = {
                "cookie": request.headers.get("Cookie"),
                "user_agent": request.headers.get("User-Agent"),
                "path": request.path,
                "proxy": request.headers.get("X-Proxy-Name"),
            }
            return _Reply(200, json.dumps(echo).encode(), "application/json")
        return _Reply(404, _html("Not Found", "<p>No such page.</p>"))

    def _page(self, kind: str, n: int, sid: str | None, exit_ip: str) -> _Reply:
        if self._over_ip_limit(exit_ip):
            self._rate_limited[exit_ip] += 1
            retry = (("Retry-After", str(self.retry_after)),)
            return _Reply(503, _html("Service Unavailable", "<p>Too busy.</p>"), headers=retry, blocked=True)
        cookie, refusal = self._visit(sid, may_issue=kind == "items")
        if refusal:
            return refusal
        if kind == "private":
            return _Reply(200, _html(f"Private {n}", f'<p class="private">private-{n}</p>'))
        self._served_items.add(n)
        return _Reply(200, _html(f"Item {n}", f'<p class="item">item-{n}</p>'), headers=cookie)

    def _visit(self, sid: str | None, may_issue: bool) -> tuple[tuple[Header, ...], _Reply | None]:
        """Count a request against its sid (issuing one if allowed); return Set-Cookie headers and a refusal."""
        cookie: tuple[Header, ...] = ()
        if sid is None or sid not in self._sid_counts:
            if not may_issue:
                return cookie, _Reply(403, _html("Forbidden", "<p>Log in first.</p>"), blocked=True)
            sid = secrets.token_hex(12)
            self._sid_counts[sid] = 0
            cookie = (("Set-Cookie", f"sid={sid}; Path=/; HttpOnly"),)
        self._sid_counts[sid] += 1
        if sid not in self._blocked and self.budget is not None and self._sid_counts[sid] > self.budget:
            self._blocked[sid] = _BLOCK_KINDS[len(self._blocked) % 3] if self.block == "mixed" else self.block
        if sid in self._blocked:
            return cookie, _block_reply(self._blocked[sid], cookie)
        return cookie, None

    def _over_ip_limit(self, exit_ip: str) -> bool:
        if self.ip_limit is None:
            return False
        now = self.clock()
        times = self._ip_times.setdefault(exit_ip, deque())
        while times and times[0] <= now - self.ip_window:
            times.popleft()
        times.append(now)
        return len(times) > self.ip_limit


def _set_cookie(query: dict[str, str]) -> str:
    """Build a Set-Cookie value from /cookies/set parameters; Path defaults to "/"."""
    parts = [f"{query['name']}={query.get('value', '')}", f"Path={query.get('path', '/')}"]
    if "domain" in query:
        parts.append(f"Domain={query['domain']}")
    if query.get("secure") == "1":
        parts.append("Secure")
    if "max_age" in query:
        parts.append(f"Max-Age={query['max_age']}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a GuardedSite until SIGTERM/SIGINT.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--budget", type=lambda v: None if v == "none" else int(v), default=5, help='int or "none"')
    parser.add_argument("--block", choices=(*_BLOCK_KINDS, "mixed"), default="403")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    site = GuardedSite(budget=args.budget, block=args.block).start(args.port)
    try:
        print(site.url(""), flush=True)
        stopping.wait()
    finally:
        site.stop()


if __name__ == "__main__":
    main()
