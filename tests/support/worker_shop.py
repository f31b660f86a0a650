"""A catalogue for distributed crawls: listing pages, item pages, a ``sid`` cookie per session.

It records which worker (the ``X-Worker`` header) sent each request with which ``sid``, and
when, so that a test can tell how the workers shared the pages and the sessions. Knobs:
``first_visit_delay`` (a request without a known sid waits that long before its answer, which
issues a sid), ``delay`` (every answer), ``budget`` and ``block`` (a sid is refused after
``budget`` requests, with ``"403"`` or ``"429"`` + Retry-After).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.support.server import LocalServer, read_body, send

__all__ = ["Hit", "WorkerShop"]

_LIST = re.compile(r"/list/(\d+)")
_ITEM = re.compile(r"/items/(\d+)")


@dataclass(frozen=True)
class Hit:
    at: float  #: time.monotonic() when the request arrived
    path: str
    sid: str  #: the session it counts against (issued by this answer when ``issued``)
    issued: bool
    worker: str | None
    status: int


class WorkerShop(LocalServer):
    def __init__(
        self,
        items: int = 100,
        per_page: int = 10,
        *,
        first_visit_delay: float = 0.0,
        delay: float = 0.0,
        budget: int | None = None,
        block: str = "403",
    ) -> None:
        super().__init__()
        self.items, self.per_page = items, per_page
        self.first_visit_delay, self.delay = first_visit_delay, delay
        self.budget, self.block = budget, block
        self._lock = threading.Lock()
        self._hits: list[Hit] = []
        self._uses: dict[str, int] = {}

    @property
    def pages(self) -> int:
        return -(-self.items // self.per_page)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def items_on(self, page: int) -> range:
        return range(page * self.per_page + 1, min((page + 1) * self.per_page, self.items) + 1)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        read_body(request)
        arrived = time.monotonic()
        cookies = dict(p.strip().partition("=")[::2] for p in (request.headers.get("Cookie") or "").split(";") if p)
        sid = cookies.get("sid")
        with self._lock:
            known = sid is not None and sid in self._uses
            if known:
                self._uses[sid] += 1
            uses = self._uses[sid] if known else 1
        headers: list[tuple[str, str]] = [("Content-Type", "text/html")]
        if not known:
            time.sleep(self.first_visit_delay)
            sid = secrets.token_hex(8)
            with self._lock:
                self._uses[sid] = 1
            headers.append(("Set-Cookie", f"sid={sid}; Path=/"))
        time.sleep(self.delay)
        status, body = self._answer(request.path, uses)
        if status == 429:
            headers.append(("Retry-After", "1"))
        with self._lock:
            self._hits.append(Hit(arrived, request.path, sid, not known, request.headers.get("X-Worker"), status))
        send(request, status, body, headers)

    def _answer(self, path: str, uses: int) -> tuple[int, bytes]:
        if self.budget is not None and uses > self.budget:
            return int(self.block), b"<html><body>blocked</body></html>"
        if match := _LIST.fullmatch(path):
            page = int(match[1])
            links = "".join(f'<a class="item" href="/items/{n}">{n}</a>' for n in self.items_on(page))
            links += '<a class="list" href="/list/0">first</a>'  # every worker meets the dupefilter
            return 200, f"<html><body>{links}</body></html>".encode()
        if (match := _ITEM.fullmatch(path)) and 1 <= int(match[1]) <= self.items:
            return 200, f'<html><body><p class="item">{match[1]}</p></body></html>'.encode()
        return 404, b"<html><body>no such page</body></html>"
