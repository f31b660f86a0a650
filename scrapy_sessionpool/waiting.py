"""Waits on the reactor that end when the crawl closes or a deadline passes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred, DeferredList

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = ["POLL", "Closing", "crawl_is_closing", "sleep", "sleep_until", "until"]

#: A waiting request looks at least this often whether the crawl is closing.
POLL = 0.25


class Closing(Exception):
    """The crawl is closing while the request waits."""


def crawl_is_closing(crawler: Crawler) -> bool:
    """Has the crawl begun to close (``CLOSESPIDER_*``, a signal, ``engine.close_spider``)?

    Scrapy sends no signal before it waits for the requests in progress, so this reads the
    engine's state: ``running`` turns False on a shutdown, the slot's ``closing`` is set by
    every close.
    """
    engine = crawler.engine
    if engine is None or not engine.running:
        return True
    slot = getattr(engine, "_slot", None)
    return slot is None or getattr(slot, "closing", None) is not None


async def until(crawler: Crawler, done: Deferred[bool], deadline: float) -> bool:
    """``done``'s result, waited for in steps that notice a closing crawl (:class:`Closing`) and the
    ``time.monotonic()`` deadline (``TimeoutError``)."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    while not done.called:
        if crawl_is_closing(crawler):
            raise Closing
        if time.monotonic() >= deadline:
            raise TimeoutError
        tick = deferLater(reactor, POLL, lambda: None)
        await maybe_deferred_to_future(DeferredList([done, tick], fireOnOneCallback=True, consumeErrors=True))
        if not tick.called:
            tick.cancel()
    return bool(done.result)


async def sleep(crawler: Crawler, seconds: float, deadline: float) -> None:
    """Sleep ``seconds``, in steps that notice a closing crawl and the deadline (as :func:`until`)."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    end = time.monotonic() + seconds
    while True:
        if crawl_is_closing(crawler):
            raise Closing
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError
        if now >= end:
            return
        step = min(end - now, POLL, deadline - now)
        await maybe_deferred_to_future(deferLater(reactor, step, lambda: None))


async def sleep_until(crawler: Crawler, when: float, deadline: float) -> None:
    """Sleep until ``time.time()`` reaches ``when`` (as :func:`sleep`)."""
    while (left := when - time.time()) > 0:
        await sleep(crawler, min(left, POLL), deadline)
