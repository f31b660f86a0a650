"""Helpers of the shared-pool tests: pools on a test redis-server, async tests on the reactor's loop."""

from __future__ import annotations

import asyncio
import functools
import random

import pytest_twisted

from scrapy_sessionpool.settings import PoolSettings
from scrapy_sessionpool.shared import SharedPool


def in_asyncio_task(test):
    """Run an async test as an asyncio task on the reactor's loop, as Scrapy runs middleware coroutines."""
    from twisted.internet.defer import Deferred

    @pytest_twisted.inlineCallbacks
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        yield Deferred.fromFuture(asyncio.ensure_future(test(*args, **kwargs)))

    return wrapper


def shared(redis_server, prefix, **settings):
    cfg = PoolSettings(**{"max_pool_size": 3, "warm_up": False, **settings})
    return SharedPool(url=redis_server.url, key="spider", settings=cfg, prefix=prefix, rng=random.Random(1))


def reconnect_now(pool):
    pool.retry_now()  # do not wait for the next reconnect attempt
