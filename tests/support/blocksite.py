"""The HTTP face of :class:`BlockModel`: a local site with configurable block semantics, on 127.0.0.1.

The exit IP is the ``X-Proxy-Name`` header the local forwarding proxies add ("direct" without one).
A dropped connection is a connection closed without an answer. Run standalone with
``python -m tests.support.blocksite --cell exit/ip_rate/403 --port 0``.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import scrapy

from tests.support.blocking import BlockModel, Cell, cell_options
from tests.support.server import LocalServer, read_body, send

__all__ = ["BlockSite", "CatalogueSpider", "Hit"]


@dataclass(frozen=True)
class Hit:
    """One request as the site saw it."""

    path: str
    sid: str | None
    exit: str
    status: int  # 0: dropped
    blocked: bool
    challenge: bool


def _cookies(header: str | None) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in (header or "").split(";"))
    return {key: value for key, _, value in pairs if key}


class BlockSite(LocalServer):
    """A local site whose blocks follow ``cell`` (see :mod:`tests.support.blocking`); ``options`` go to the model."""

    def __init__(self, cell: Cell | str, **options: Any) -> None:
        super().__init__()
        cell = Cell.parse(cell) if isinstance(cell, str) else cell
        self._lock = threading.Lock()
        self.model = BlockModel(cell, clock=time.monotonic, **{**cell_options(cell), **options})
        self._hits: list[Hit] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        read_body(request)
        cookies = _cookies(request.headers.get("Cookie"))
        exit_name = request.headers.get("X-Proxy-Name") or "direct"
        with self._lock:
            answer = self.model.answer(request.path, cookies, exit_name)
            self._hits.append(
                Hit(request.path, cookies.get("sid"), exit_name, answer.status, answer.blocked, answer.challenge)
            )
        if answer.delay:
            time.sleep(answer.delay)
        if answer.status == 0:  # a dropped connection: no answer at all
            request.close_connection = True
            return
        send(
            request,
            answer.status,
            answer.body.encode(),
            [("Content-Type", "text/html; charset=utf-8"), *answer.headers],
        )


class CatalogueSpider(scrapy.Spider):
    """Crawls a :class:`BlockSite` from its home page: categories, their pages, then every item."""

    name = "catalogue"

    def __init__(self, site: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.site = site.rstrip("/")
        self.items: set[int] = set()

    async def start(self):
        yield scrapy.Request(f"{self.site}/")

    def parse(self, response):
        for href in response.css("a.category::attr(href), a.next::attr(href)").getall():
            yield response.follow(href, callback=self.parse)
        for href in response.css("a.item::attr(href)").getall():
            yield response.follow(href, callback=self.parse_item)

    def parse_item(self, response):
        name = response.css("h1.name::text").get()
        if name is None:  # a block or a challenge would show here: the pool must never let one through
            raise AssertionError(f"not an item page: {response.url} {response.status}")
        number = int(response.url.rsplit("/", 1)[1])
        self.items.add(number)
        yield {"number": number, "price": response.css("span.price::text").get()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a BlockSite until SIGTERM/SIGINT.")
    parser.add_argument("--cell", required=True, help="key/trigger/signal, e.g. session/budget/429_retry_after")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    site = BlockSite(args.cell, items=args.items, seed=args.seed).start(args.port)
    try:
        print(site.url, flush=True)
        stopping.wait()
    finally:
        site.stop()


if __name__ == "__main__":
    main()
