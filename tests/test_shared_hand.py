"""The hand of a shared pool: hand-outs taken ahead of the next requests.

First the hand alone (sessions without a pool, an injected clock, no reactor), then the hand of
a real shared pool against a real redis-server.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from scrapy_sessionpool.core.observer import Pending
from scrapy_sessionpool.core.session import Session
from scrapy_sessionpool.shared.hand import Hand
from tests.clock import FakeClock
from tests.support.shared_pools import in_asyncio_task, reconnect_now, shared
from tests.test_shared_leases import in_flight, lose_one_reply, redis_of

TTL = 0.5


class Timers:
    """``call_later`` for the hand: records the delays; the test fires them."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, object]] = []

    def __call__(self, delay, f):
        timer = _Timer(f)
        self.pending.append((delay, timer))
        return timer

    def fire(self) -> None:
        due, self.pending = self.pending, []
        for _, timer in due:
            if not timer.cancelled:
                timer.f()


class _Timer:
    def __init__(self, f) -> None:
        self.f, self.cancelled = f, False

    def cancel(self) -> None:
        self.cancelled = True


def leased(n, proxy=None):
    sessions = [Session(proxy_url=proxy) for _ in range(n)]
    for session in sessions:
        session.lease()
    return sessions


def hand(limit=8, **kwargs):
    clock, timers = FakeClock(), Timers()
    return Hand(limit, ttl=TTL, clock=clock, call_later=timers, **kwargs), clock, timers


def test_the_hand_grows_while_its_hand_outs_go_quickly_and_not_past_its_limit():
    h, clock, _ = hand(limit=8)
    sizes = []
    for _ in range(6):
        sizes.append(h.want())
        h.put(leased(h.size - 1), asked=h.size - 1)  # the pick's own hand-out goes to its request
        while h.take() is not None:
            pass
        clock.advance(0.01)
    assert sizes == [1, 2, 4, 8, 8, 8]


def test_requests_that_miss_while_a_call_is_on_its_way_ask_only_for_what_it_does_not_bring():
    h, _, _ = hand(limit=8)
    h.size = 8
    assert h.want() == 8  # the first miss asks for 7 ahead
    assert [h.want() for _ in range(3)] == [1, 1, 1]  # the next ones for themselves only
    h.put(leased(5), asked=7)  # Redis had 5 to give
    assert len(h) == 5 and h.want() == 1 + 2  # the hand is topped up to its size, never past it
    h.put([], asked=2)  # that call failed
    h.take()
    assert h.want() == 1 + 3


@in_asyncio_task
async def test_requests_waiting_for_a_call_on_its_way_wake_when_it_comes_back_whatever_it_brings():
    h, _, _ = hand(limit=8)
    h.size = 8
    h.want()
    first, second = h.arrival(), h.arrival()
    h.put(leased(1))  # a spare put back: they wake to take it; a call is still on its way
    assert first.done() and second.done() and h.coming == 7
    h.take()
    fourth = h.arrival()
    h.put([], asked=7)  # the call failed: they wake and ask for themselves
    assert fourth.done() and h.coming == 0
    h.want()
    third = h.arrival()
    third.cancel()  # its request was cancelled
    h.put(leased(7), asked=7)
    assert len(h) == 7 and h.coming == 0


def test_a_slow_crawl_asks_for_one_at_a_time():
    h, clock, _ = hand()
    for _ in range(5):
        assert h.want() == 1
        clock.advance(TTL)  # the next request comes after a while


def test_hand_outs_held_for_the_ttl_are_given_back_and_the_hand_shrinks():
    returned = []
    h, clock, timers = hand(on_given_back=returned.append)
    h.size = 8
    first = leased(3)
    h.put(first)
    clock.advance(0.3)
    second = leased(2)
    h.put(second)
    assert [delay for delay, _ in timers.pending] == [TTL]  # one timer at a time
    clock.advance(0.2)
    timers.fire()
    assert len(h) == 2 and all(s.in_flight == 0 for s in first) and returned == [3]
    assert h.size == 4
    assert [round(delay, 6) for delay, _ in timers.pending] == [0.3]  # for the rest
    clock.advance(0.3)
    assert h.take() is None and all(s.in_flight == 0 for s in second) and h.size == 2


def test_take_gives_the_oldest_fit_hand_out_that_avoid_allows():
    paused = set()
    h, _, _ = hand(fit=lambda s: s.is_usable and s.proxy_url not in paused)
    a, b, c = leased(1, "http://a:1")[0], leased(1, "http://b:1")[0], leased(1, "http://c:1")[0]
    h.put([a, b, c])
    a.retire("status_403")  # retired by another request meanwhile
    assert h.take(avoid=lambda sid: sid == b.id) is c  # b is kept for another request
    assert a.in_flight == 0 and len(h) == 1  # a was given back on the way
    paused.add("http://b:1")
    assert h.take() is None and b.in_flight == 0


def test_a_pinned_request_takes_its_own_session_from_the_hand():
    h, _, _ = hand()
    a, b = leased(2)
    h.put([a, b, a])
    assert h.take(b.id) is b and h.take(b.id) is None
    assert h.take(a.id) is a and len(h) == 1


def test_give_back_and_clear_release_what_they_drop():
    h, _, timers = hand()
    here, there = leased(2, "http://a:1"), leased(1, "http://b:1")
    h.put([*here, *there])
    h.give_back(lambda s: s.proxy_url == "http://a:1")  # its exit cools down
    assert [s.in_flight for s in here] == [0, 0] and len(h) == 1
    h.clear()
    assert there[0].in_flight == 0 and len(h) == 0 and timers.pending[0][1].cancelled


# -- the hand of a shared pool, on a real redis-server ------------------------------------


async def fill(pool, n):
    """Make the pool's ``n`` sessions (one round trip each: a pool with room takes nothing ahead)."""
    sessions = []
    for _ in range(n):
        sessions.append((await pool.pick()).session)
        assert len(pool.hand) == 0
    return sessions


async def warm(pool, n):
    """Picks in quick succession until the hand holds hand-outs ahead: ``n`` picks at most."""
    used = []
    for _ in range(n):
        pick = pool.acquire()
        session = (await pick).session if isinstance(pick, Pending) else pick.session
        used.append(session)
        if len(pool.hand):
            return used
    raise AssertionError("the hand never filled")


@in_asyncio_task
async def test_a_full_pool_hands_out_ahead_and_each_hand_out_is_counted_and_leased(redis_server, redis_prefix):
    pool = shared(redis_server, redis_prefix, max_pool_size=4, redis_prefetch=8)
    made = await fill(pool, 4)
    used = await warm(pool, 10)
    client = redis_of(redis_server, redis_prefix)
    out = in_flight(client, pool.base)
    assert sum(out.values()) == len(made) + len(used) + len(pool.hand)  # nothing answered yet
    leases = client.hgetall(f"{pool.base}:lease:{pool.process_id}")
    assert sum(map(int, leases.values())) == sum(out.values())
    held = len(pool.hand)
    pick = pool.acquire()
    assert not isinstance(pick, Pending) and pick.session is not None  # at once, no round trip
    assert len(pool.hand) == held - 1
    pool.hand.clear()
    await pool.flush()
    assert sum(in_flight(client, pool.base).values()) == len(made) + len(used) + 1  # the hand was given back
    await pool.close()


@in_asyncio_task
async def test_requests_that_miss_together_share_one_call_to_redis(redis_server, redis_prefix):
    pool = shared(redis_server, redis_prefix, max_pool_size=8, redis_prefetch=8)
    for session in await fill(pool, 8):
        session.mark_good()
    await pool.flush()
    pool.hand.size = 8
    run, calls = pool.link.eval, []

    def counted(*args):
        calls.append(args)
        return run(*args)

    pool.link.eval = counted
    picks = [pool.acquire() for _ in range(8)]  # eight requests at once, as Scrapy sends them
    sessions = [pick.session for pick in await asyncio.gather(*(pick for pick in picks))]
    assert len(calls) == 1 and None not in sessions
    for session in sessions:
        session.mark_good()
    await pool.close()


@in_asyncio_task
async def test_a_pool_with_room_makes_a_session_per_request_and_takes_nothing_ahead(redis_server, redis_prefix):
    pool = shared(redis_server, redis_prefix, max_pool_size=6, redis_prefetch=8)
    for _ in range(3):  # picks in quick succession: the hand would grow if it could
        (await pool.pick()).session.mark_good()
    assert len(pool.hand) == 0 and pool.usable_sessions_count == 3
    await pool.close()


@in_asyncio_task
async def test_hand_outs_not_taken_within_the_ttl_go_back_to_redis(redis_server, redis_prefix):
    pool = shared(redis_server, redis_prefix, max_pool_size=3, redis_prefetch=8)
    stats = []
    pool.stat = lambda key, count=1, **kwargs: stats.append((key, count))
    made = await fill(pool, 3)
    used = await warm(pool, 10)
    held = len(pool.hand)
    await asyncio.sleep(TTL * 1.2)
    assert len(pool.hand) == 0
    await pool.flush()
    client = redis_of(redis_server, redis_prefix)
    assert sum(in_flight(client, pool.base).values()) == len(made) + len(used)
    assert ("redis/prefetch_returned", held) in stats
    assert sum(count for key, count in stats if key == "redis/prefetched") >= held
    await pool.close()


@in_asyncio_task
async def test_the_hand_never_serves_a_session_retired_or_of_a_cooling_exit(redis_server, redis_prefix):
    pool = shared(
        redis_server,
        redis_prefix,
        max_pool_size=2,
        redis_prefetch=8,
        proxies=("http://a:1", "http://b:1"),
        reuse_strategy="round_robin",  # the hand holds hand-outs of both sessions
    )
    first, second = await fill(pool, 2)
    used = await warm(pool, 10)
    assert {s.id for s in pool.hand} == {first.id, second.id}
    first.retire("status_403")
    pool.pause_proxy(second.proxy_url)
    assert all(s.proxy_url != second.proxy_url for s in pool.hand)  # given back at once, for other processes
    await pool.flush()
    client = redis_of(redis_server, redis_prefix)
    assert in_flight(client, pool.base) == {second.id: 1 + used.count(second)}  # the hand's went back
    pick = pool.acquire()
    assert isinstance(pick, Pending) and len(pool.hand) == 0  # the retired one's were given back on the way
    await pick
    await pool.close()


@in_asyncio_task
async def test_a_hand_out_of_a_session_another_process_retired_retires_this_copy_at_its_answer(
    redis_server, redis_prefix
):
    a = shared(redis_server, redis_prefix, max_pool_size=2, redis_prefetch=8)
    b = shared(redis_server, redis_prefix, max_pool_size=2)
    await fill(a, 2)
    await warm(a, 10)
    doomed = next(iter(a.hand))
    (await b.pick(doomed.id)).session.retire("status_403")
    await b.flush()
    got = a.hand.take(doomed.id)  # within the TTL the hand may still serve it (README: Known limitations)
    assert got is doomed and not doomed.is_retired
    doomed.mark_good()  # its answer: Redis says it is gone
    await a.flush()
    assert doomed.is_retired and a.find(doomed.id) is None
    assert a.hand.take(doomed.id) is None  # its other hand-outs are given back, not served
    await asyncio.sleep(TTL * 1.2)
    for _ in range(10):
        pick = a.acquire()
        session = (await pick).session if isinstance(pick, Pending) else pick.session
        assert session is None or session.id != doomed.id
        if session is not None:
            session.mark_good()
    await a.close()
    await b.close()


@in_asyncio_task
async def test_a_lost_reply_gives_back_every_hand_out_it_took(redis_server, redis_prefix):
    pool = shared(redis_server, redis_prefix, max_pool_size=3, redis_prefetch=8)
    made = await fill(pool, 3)
    used = await warm(pool, 10)
    pool.hand.clear()
    await pool.flush()
    pool.hand.size = 8
    lose_one_reply(pool, "ACQUIRE")
    await pool.pick()  # Redis hands out 8, the reply is lost
    client = redis_of(redis_server, redis_prefix)
    assert sum(in_flight(client, pool.base).values()) == len(made) + len(used) + 8
    reconnect_now(pool)
    await pool.pick()  # back online: the next call gives them back
    assert sum(in_flight(client, pool.base).values()) == len(made) + len(used) + 1 + len(pool.hand)
    await pool.close()


@pytest.mark.parametrize("prefetch", [1, 8])
@in_asyncio_task
async def test_redis_going_away_gives_the_hand_back_with_the_replay(own_redis, redis_prefix, prefetch):
    pool = shared(own_redis, redis_prefix, max_pool_size=3, redis_prefetch=prefetch)
    made = await fill(pool, 3)
    for session in made:
        session.mark_good()
    made_id = made[0].id
    used = await warm(pool, 10) if prefetch > 1 else []
    own_redis.stop()
    pool.mirrors[used[0].id if used else made_id].set_cookie("sid", "1", domain="shop.example")
    await pool.flush()  # fails: the outage begins
    assert not pool.is_online and len(pool.hand) == 0
    own_redis.start()
    reconnect_now(pool)
    await pool.save()
    client = redis_of(own_redis, redis_prefix)
    assert pool.is_online and sum(in_flight(client, pool.base).values()) == len(used)  # the hand's came back
    await pool.close()


@in_asyncio_task
async def test_spares_a_paced_request_does_not_choose_go_back_to_the_hand_not_to_redis(redis_server, redis_prefix):
    from scrapy_sessionpool.manager import PoolManager
    from scrapy_sessionpool.settings import PoolSettings
    from scrapy_sessionpool.stores.redis import RedisStore

    cfg = PoolSettings(
        max_pool_size=3, warm_up=False, redis_url=redis_server.url, redis_prefix=redis_prefix, redis_prefetch=8
    )
    m = PoolManager(cfg, store=RedisStore(redis_server.url, prefix=redis_prefix), state_key="spider")
    pool = m.pool()
    await fill(pool, 3)
    await warm(pool, 10)
    for _ in range(20):  # the exit was refused at this pace: it is slowed down
        m.pacer.turn("shop.example", None)
    m.pacer.slow_exit("shop.example", None)
    m.pacer.turn("shop.example", None)
    held = len(pool.hand)
    got = m.acquire(site="shop.example")  # its exit waits: spares of the same exit are no better
    assert got is not None and not isinstance(got, Pending)
    assert len(pool.hand) == held - 1 and not any(op.kind == "release" for op in pool.queue)
    await pool.close()


@in_asyncio_task
async def test_a_broken_version_in_redis_retires_that_session_alone(redis_server, redis_prefix, caplog):
    pool = shared(redis_server, redis_prefix, max_pool_size=3, redis_prefetch=8)
    made = await fill(pool, 3)
    client = redis_of(redis_server, redis_prefix)
    client.hset(f"{pool.base}:s:{made[0].id}", "cv", "x")
    for session in made:
        session.mark_good()
    await pool.flush()
    pool.hand.size = 8
    got = (await pool.pick()).session  # no error reaches Scrapy, whichever hand-out had it
    await pool.flush()
    assert "has unusable data in Redis" in caplog.text
    assert client.zscore(f"{pool.base}:live", made[0].id) is None
    assert got is None or got.id != made[0].id
    assert sum(in_flight(client, pool.base).values()) == (got is not None) + len(pool.hand)
    await pool.close()


@pytest.mark.parametrize("when", ["pick", "fetch"])
@in_asyncio_task
async def test_a_pick_cancelled_after_redis_ran_it_gives_its_hand_outs_back(redis_server, redis_prefix, when):
    pool = shared(redis_server, redis_prefix, max_pool_size=3, redis_prefetch=8)
    made = await fill(pool, 3)
    for session in made:
        session.mark_good()
    await pool.flush()
    if when == "fetch":  # a copy this process must fetch: the cancel comes during the fetch
        pool.mirrors.clear()
    pool.hand.size = 8
    run, read = pool.link.eval, pool.link.pipeline

    async def then_cancel(call, *args):
        await call(*args)
        raise asyncio.CancelledError

    if when == "pick":
        pool.link.eval = lambda *args: then_cancel(run, *args)
    else:
        pool.link.pipeline = lambda *args: then_cancel(read, *args)
    with pytest.raises(asyncio.CancelledError):
        await pool.pick()
    pool.link.eval, pool.link.pipeline = run, read
    client = redis_of(redis_server, redis_prefix)
    assert sum(in_flight(client, pool.base).values()) == 8  # Redis handed them out
    await pool.flush()
    session = (await pool.pick()).session  # the next call gives them back
    assert sum(in_flight(client, pool.base).values()) == 1 + len(pool.hand)
    session.mark_good()
    await pool.close()


@in_asyncio_task
async def test_redis_gone_during_the_fetch_gives_every_hand_out_back_at_the_replay(own_redis, redis_prefix):
    pool = shared(own_redis, redis_prefix, max_pool_size=3, redis_prefetch=8)
    made = await fill(pool, 3)
    for session in made:
        session.mark_good()
    await pool.flush()
    pool.mirrors.clear()  # every copy must be fetched
    pool.hand.size = 8
    read = pool.link.pipeline

    async def fail(*commands):
        pool.link.pipeline = read
        raise redis.exceptions.ConnectionError("gone")

    pool.link.pipeline = fail
    assert (await pool.pick()).session is None and not pool.is_online
    client = redis_of(own_redis, redis_prefix)
    assert sum(in_flight(client, pool.base).values()) == 8
    reconnect_now(pool)
    await pool.save()  # the replay
    assert pool.is_online and sum(in_flight(client, pool.base).values()) == 0
    await pool.close()
