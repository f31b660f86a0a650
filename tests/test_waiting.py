"""Waits that end when the crawl closes or a deadline passes (a stand-in engine, the real reactor)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import pytest_twisted
from scrapy.utils.defer import deferred_from_coro
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from scrapy_sessionpool.waiting import Closing, crawl_is_closing, sleep, sleep_until, until


def crawler(running: bool = True, closing: object = None, slot: bool = True) -> SimpleNamespace:
    engine = SimpleNamespace(running=running, _slot=SimpleNamespace(closing=closing) if slot else None)
    return SimpleNamespace(engine=engine)


def test_a_crawl_is_closing_once_its_engine_stops_or_its_slot_closes():
    assert not crawl_is_closing(crawler())
    assert crawl_is_closing(SimpleNamespace(engine=None))
    assert crawl_is_closing(crawler(running=False))
    assert crawl_is_closing(crawler(closing=Deferred()))
    assert crawl_is_closing(crawler(slot=False))


@pytest_twisted.inlineCallbacks
def test_until_gives_the_result_once_it_comes():
    done: Deferred[bool] = Deferred()
    reactor.callLater(0.05, done.callback, True)
    assert (yield deferred_from_coro(until(crawler(), done, time.monotonic() + 5))) is True


@pytest_twisted.inlineCallbacks
def test_until_ends_when_the_crawl_closes_and_at_the_deadline():
    c = crawler()
    reactor.callLater(0.05, setattr, c.engine, "running", False)
    started = time.monotonic()
    with pytest.raises(Closing):
        yield deferred_from_coro(until(c, Deferred(), time.monotonic() + 5))
    assert time.monotonic() - started < 2  # noticed within a poll, not at the deadline
    with pytest.raises(TimeoutError):
        yield deferred_from_coro(until(crawler(), Deferred(), time.monotonic() - 1))


@pytest_twisted.inlineCallbacks
def test_sleeps_end_at_their_time_when_the_crawl_closes_and_at_the_deadline():
    yield deferred_from_coro(sleep(crawler(), 0.01, time.monotonic() + 5))
    yield deferred_from_coro(sleep_until(crawler(), time.time() + 0.01, time.monotonic() + 5))
    with pytest.raises(Closing):
        yield deferred_from_coro(sleep(crawler(running=False), 10, time.monotonic() + 5))
    with pytest.raises(TimeoutError):
        yield deferred_from_coro(sleep_until(crawler(), time.time() + 10, time.monotonic() + 0.05))
