"""The Redis store: one live pool shared by processes, atomic counts, outages, real crawls."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_twisted

from scrapy_sessionpool import Session, SessionPool, StateError
from scrapy_sessionpool.core.cookies import make_cookie
from scrapy_sessionpool.settings import PoolSettings
from scrapy_sessionpool.shared import RemoteSession, SharedPool
from scrapy_sessionpool.shared.queue import Batch, Op
from scrapy_sessionpool.stores.redis import RedisStore
from tests.clock import FakeClock
from tests.crawling import make_crawler, stats
from tests.support.shared_pools import in_asyncio_task, reconnect_now, shared

ROOT = Path(__file__).resolve().parent.parent


def test_store_round_trip_and_delete(redis_server, redis_prefix):
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    pool = SessionPool(
        max_pool_size=2,
        seed=1,
        create_session_function=lambda p: p.make_session(
            proxy_url="http://u:secret@p:1", user_agent="UA", user_data={"k": [1]}
        ),
    )
    session = pool.get_session()
    session.set_cookie("sid", "v", domain="example.com", expires=4_000_000_000, secure=True)
    session.mark_bad()
    store.save("spider", pool.get_state())
    assert store.load("spider") == pool.get_state()
    assert store.load("other") is None
    assert "secret" not in store.describe("spider")
    assert store.delete("spider") and store.load("spider") is None


@in_asyncio_task
async def test_a_session_made_by_one_process_is_handed_out_by_another(redis_server, redis_prefix):
    a, b = shared(redis_server, redis_prefix, max_pool_size=1), shared(redis_server, redis_prefix, max_pool_size=1)
    made, _ = await a.pick()
    made.set_cookie("sid", "from-a", domain="shop.example")
    made.mark_good()
    await a.flush()  # (sent within 100 ms anyway; cookies at once)
    got, _ = await b.pick()
    assert got.id == made.id and got.usage_count == 1
    assert [c["value"] for c in got.cookies] == ["from-a"]  # cookies travel with the session
    await a.close()
    await b.close()


@in_asyncio_task
async def test_every_cookie_the_jar_accepts_reaches_another_process_and_a_bad_one_is_left_out_alone(
    redis_server, redis_prefix, caplog
):
    a, b = shared(redis_server, redis_prefix, max_pool_size=1), shared(redis_server, redis_prefix, max_pool_size=1)
    made, _ = await a.pick()
    jar = made.cookie_jar
    for cookie in (
        make_cookie("consent", None, domain="shop.example"),
        make_cookie("odd", "1", domain=""),
        make_cookie("huge", "1", domain=".shop.example", expires=10**30),
    ):
        jar.set_cookie(cookie)
    made.mark_good()
    await a.flush()
    RedisStore(redis_server.url, prefix=redis_prefix).client.hset(f"{a.base}:c:{made.id}", "x;/;broken", "{not json")
    got, _ = await b.pick()
    assert got is not None and got.id == made.id and not got.is_retired
    assert sorted((c["name"], c["value"]) for c in got.cookies) == [("consent", None), ("huge", "1"), ("odd", "1")]
    assert "Left out an unusable cookie of a shared session" in caplog.text
    await a.close()
    await b.close()


@in_asyncio_task
async def test_max_pool_size_holds_across_processes(redis_server, redis_prefix):
    pools = [shared(redis_server, redis_prefix, max_pool_size=3) for _ in range(3)]
    ids = set()
    for _ in range(4):
        for pool in pools:
            session, _ = await pool.pick()
            ids.add(session.id)
    assert len(ids) == 3 and pools[0].usable_sessions_count == 3
    for pool in pools:
        await pool.close()


@in_asyncio_task
async def test_a_retirement_in_one_process_is_seen_before_the_next_pick_in_another(redis_server, redis_prefix):
    a, b = shared(redis_server, redis_prefix, max_pool_size=2), shared(redis_server, redis_prefix, max_pool_size=2)
    first, _ = await a.pick()
    second, _ = await a.pick()
    first.retire("status_403")
    await a.flush()
    seen = set()
    for _ in range(20):
        session, _ = await b.pick()
        seen.add(session.id)
        session.mark_good()
    assert first.id not in seen and second.id in seen
    pinned, missing = await b.pick(first.id)
    assert missing and pinned.id != first.id
    assert b.retired_sessions_count == 1
    await a.close()
    await b.close()


@in_asyncio_task
async def test_a_suspect_sits_out_for_every_process_and_its_strikes_are_shared(redis_server, redis_prefix):
    clock = FakeClock(time.time())
    a = SharedPool(
        url=redis_server.url,
        key="spider",
        settings=PoolSettings(max_pool_size=2, warm_up=False),
        prefix=redis_prefix,
        rng=random.Random(1),
        clock=clock,
    )
    b = SharedPool(
        url=redis_server.url,
        key="spider",
        settings=PoolSettings(max_pool_size=2, warm_up=False),
        prefix=redis_prefix,
        rng=random.Random(2),
        clock=clock,
    )
    first, _ = await a.pick()
    second, _ = await a.pick()
    first.mark_good()
    first.suspect(clock.now + 30, strikes=2, condemned=True)
    await a.flush()
    seen = set()
    for _ in range(12):  # b never gets it while it sits out; a fresh one stands in (condemned: no room held)
        session, _ = await b.pick()
        seen.add(session.id)
        session.release()
    assert first.id not in seen and second.id in seen and len(seen - {second.id}) == 1
    pinned, _ = await b.pick(first.id)  # a pinned request learns the suspicion (and waits for it)
    assert pinned.id == first.id and pinned.is_sitting_out and pinned.strikes == 2 and pinned.is_condemned
    pinned.release()
    clock.advance(31)
    first.acquit()
    await a.flush()
    again, _ = await b.pick(first.id)
    assert again.is_suspect and not again.is_sitting_out and not again.is_condemned
    again.clear_suspicion()
    await b.flush()
    fields = RedisStore(redis_server.url, prefix=redis_prefix).client.hgetall(f"{a.base}:s:{first.id}")
    assert (fields["sus"], fields["strikes"], fields["cond"]) == ("", "0", "0")
    await a.close()
    await b.close()


@in_asyncio_task
async def test_error_scores_retire_in_redis(redis_server, redis_prefix):
    a = shared(redis_server, redis_prefix, max_pool_size=1, max_error_score=2)
    retired = []
    a.on_retired = retired.append
    session, _ = await a.pick()
    session.mark_bad()
    again, _ = await a.pick()
    assert again.id == session.id and again.error_score == 1
    again.mark_bad()
    await a.flush()
    assert [s.id for s in retired] == [session.id] and retired[0].retired_reason == "error_score"
    fresh, _ = await a.pick()
    assert fresh.id != session.id
    await a.close()


@in_asyncio_task
async def test_sessions_that_expire_in_redis_are_counted_by_the_process_whose_pick_retired_them(
    redis_server, redis_prefix
):
    clock = FakeClock()
    cfg = PoolSettings(max_pool_size=2, warm_up=False, max_age_secs=60)
    a, b = (
        SharedPool(
            url=redis_server.url, key="spider", settings=cfg, prefix=redis_prefix, clock=clock, rng=random.Random(1)
        )
        for _ in range(2)
    )
    retired_a, retired_b = [], []
    a.on_retired, b.on_retired = retired_a.append, retired_b.append
    old, _ = await a.pick()
    old.release()
    clock.advance(30)
    young, _ = await b.pick()
    young.release()
    await a.flush()
    await b.flush()
    clock.advance(40)  # old is 70 s old now, young 40 s
    got, _ = await b.pick()
    assert got.id != old.id and retired_a == []
    assert [(s.id, s.retired_reason) for s in retired_b] == [(old.id, "expired")]
    await a.close()
    await b.close()


@in_asyncio_task
async def test_redis_decides_retirements_by_error_score_from_every_process_s_marks(redis_server, redis_prefix):
    a, b = shared(redis_server, redis_prefix, max_pool_size=2), shared(redis_server, redis_prefix, max_pool_size=2)
    session, _ = await a.pick()
    other, _ = await a.pick()
    for _ in range(2):
        session.mark_bad()
        session, _ = await a.pick(session.id)
    await a.flush()  # error score 2 of 3, in Redis and in a's copy
    for _ in range(4):  # b gets good answers from it: 0 in Redis
        copy, _ = await b.pick(session.id)
        copy.mark_good()
    await b.flush()
    other.mark_good()  # a write of a's is queued, so a's next two picks overlap it
    await asyncio.gather(a.pick(other.id), a.pick(session.id))
    session.mark_bad()
    await a.flush()
    assert not session.is_retired and session.error_score == 1  # Redis's verdict, not a's stale copy's
    assert (await b.pick(session.id))[0].id == session.id
    await a.close()
    await b.close()


@in_asyncio_task
async def test_each_retirement_is_counted_once_by_the_process_that_saw_it(own_redis, redis_prefix, monkeypatch):
    from scrapy_sessionpool.shared import online as online_module

    monkeypatch.setattr(online_module, "BATCH", 5)
    clock = FakeClock()
    cfg = PoolSettings(max_pool_size=2, warm_up=False, max_usage_count=1000, max_age_secs=60)
    a = SharedPool(
        url=own_redis.url, key="spider", settings=cfg, prefix=redis_prefix, clock=clock, rng=random.Random(1)
    )
    created, retired = [], []
    a.on_created, a.on_retired = created.append, retired.append
    blocked, _ = await a.pick()
    other, _ = await a.pick()
    blocked.release()
    other.release()
    await a.flush()
    own_redis.stop()
    for _ in range(10):
        session, _ = await a.pick(other.id)
        session.mark_good()
    blocked.retire("status_403")  # counted now, while Redis is away
    own_redis.start()
    clock.advance(61)  # both are past their age when the replay's first pick retires them in Redis
    reconnect_now(a)
    late, _ = await a.pick()
    await a.flush()
    late.mark_good()
    clock.advance(61)
    late.mark_good()  # an answer after its age: retired here, and by the next pick in Redis
    await a.pick()
    await a.flush()
    assert sorted(s.id for s in retired) == sorted([blocked.id, other.id, late.id])
    assert [s.retired_reason for s in retired] == ["status_403", "expired", "expired"]
    meta = RedisStore(own_redis.url, prefix=redis_prefix).client.hgetall(f"{a.base}:meta")
    assert (int(meta["created"]), int(meta["retired"])) == (len(created), len(retired))
    await a.close()


@in_asyncio_task
async def test_a_replay_cut_short_leaves_out_what_redis_retired_meanwhile(redis_server, redis_prefix, monkeypatch):
    import redis.exceptions

    from scrapy_sessionpool.shared import online as online_module

    a, b = (shared(redis_server, redis_prefix, max_pool_size=2, max_usage_count=6) for _ in range(2))
    first, _ = await a.pick()
    second, _ = await a.pick()
    first.mark_good()
    second.mark_good()
    await a.flush()
    link = {"up": False, "batches": 0}  # a's link to Redis only: b goes on
    send, ping = a.link.eval, a.link.client.ping

    async def eval_over_link(script, args):
        if not link["up"] or (script == "APPLY" and link["batches"] == 0):
            raise redis.exceptions.ConnectionError("link down")
        link["batches"] -= script == "APPLY"
        return await send(script, args)

    async def ping_over_link():
        if not link["up"]:
            raise redis.exceptions.ConnectionError("link down")
        return await ping()

    a.link.eval, a.link.client.ping = eval_over_link, ping_over_link
    (await a.pick())[0].release()  # offline now
    blocked, _ = await b.pick(first.id)
    blocked.retire("status_403")
    await b.flush()
    first.mark_good()
    second.mark_good()
    monkeypatch.setattr(online_module, "BATCH", 1)
    link.update(up=True, batches=2)  # the replay sends two batches, then the link drops again
    reconnect_now(a)
    await a.pick()
    assert not a.is_online and first.retired_reason == "gone"
    link["up"] = False
    handed = set()
    for _ in range(12):
        session, _ = await a.pick()
        handed.add(session.id)
        session.mark_good()
    assert first.id not in handed and second.id in handed
    await a.close()
    await b.close()


@in_asyncio_task
async def test_a_redis_out_of_memory_is_an_outage_not_lost_writes(redis_server, redis_prefix, caplog):
    a = shared(redis_server, redis_prefix, max_pool_size=1)
    session, _ = await a.pick()
    session.set_cookie("sid", "v1", domain="shop.example")
    session.mark_good()
    client = RedisStore(redis_server.url, prefix=redis_prefix).client
    client.config_set("maxmemory", "1")
    try:
        again, _ = await a.pick()  # the writes it carries are refused: the pool goes on locally
        assert again is session and not a.is_online and len(a.queue) == 2
        for _ in range(3):  # it answers pings but refuses the replay: still the same outage
            reconnect_now(a)
            assert (await a.pick())[0] is session and not a.is_online
    finally:
        client.config_set("maxmemory", "0")
    warnings = [r.getMessage() for r in caplog.records if "Redis at" in r.getMessage()]
    assert len(warnings) == 1 and "unreachable" in warnings[0]
    await a.close()  # replays them
    assert client.hget(f"{a.base}:s:{session.id}", "usage") == "1"
    assert list(client.hgetall(f"{a.base}:c:{session.id}")) == ["shop.example;/;sid"]


def test_counts_are_exact_under_concurrent_processes(redis_server, redis_prefix):
    rounds, workers = 300, 4
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "redis_worker.py"),
                redis_server.url,
                redis_prefix,
                str(rounds),
                str(n),
            ],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for n in range(workers)
    ]
    totals = {"good": 0, "bad": 0}
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        for k, v in json.loads(out).items():
            totals[k] += v
    state = RedisStore(redis_server.url, prefix=redis_prefix).load("shared")
    sessions = state["sessions"]
    assert len(sessions) == 3  # one pool for all four processes
    assert sum(s["usage_count"] for s in sessions) == totals["good"] + totals["bad"] == rounds * workers
    assert sum(s["error_score"] for s in sessions) == totals["bad"]  # no lost update


@pytest_twisted.inlineCallbacks
def test_a_crawl_with_the_redis_store(site, redis_server, redis_prefix):
    site.budget = 4
    settings = {
        "SESSIONPOOL_PERSIST_STATE": True,
        "SESSIONPOOL_PERSIST_STATE_STORE": redis_server.url,
        "SESSIONPOOL_REDIS_PREFIX": redis_prefix,
        "SESSIONPOOL_MAX_POOL_SIZE": 3,
        "SESSIONPOOL_REDIS_TTL": 3600,
        "SESSIONPOOL_SUSPECT_WAIT": 0.2,
    }
    crawler = make_crawler(settings=settings)
    yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(30)])
    assert sorted(int(r.url.rsplit("/", 1)[1]) for r in crawler.spider.responses) == list(range(30))
    s = stats(crawler)
    assert s["blame/session"] >= 2 and s["retired"] == s["blame/session"] + s.get("retired/max_usage_count", 0)
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    state = store.load("list")
    assert len(state["sessions"]) == s["created"] - s["retired"] and state["retired_sessions_count"] == s["retired"]
    suspects = [sess for sess in state["sessions"] if sess.get("suspicion")]  # shared: every process sees them
    assert all(sess["suspicion"]["strikes"] >= 1 for sess in suspects)
    keys = list(store.client.scan_iter(match=f"{redis_prefix}:*"))
    assert keys and all(0 < store.client.ttl(k) <= 3600 for k in keys)  # SESSIONPOOL_REDIS_TTL
    assert all(sess["cookies"] for sess in state["sessions"])

    again = make_crawler(settings=settings)  # a second run resumes the same live pool
    site.budget = None
    yield again.crawl(urls=[site.url(f"/items/{i}") for i in range(6)])
    assert stats(again)["restored"] == len(state["sessions"]) and len(again.spider.responses) == 6


def test_two_crawler_processes_share_one_pool(site, redis_server, redis_prefix):
    site.budget = None
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "process_shared_crawl.py"),
                site.url(""),
                redis_server.url,
                redis_prefix,
                str(first),
                "40",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for first in (0, 100)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["response_received_count"] == 40 for r in results)
    assert sum(r.get("created", 0) for r in results) == 3  # MAX_POOL_SIZE across both processes
    assert len(site.issued_sids) == 3  # the site saw three sessions in all, each with one cookie
    state = RedisStore(redis_server.url, prefix=redis_prefix).load("shared")
    assert len(state["sessions"]) == 3
    assert sum(s["usage_count"] for s in state["sessions"]) == 80


@pytest_twisted.inlineCallbacks
def test_redis_going_away_mid_crawl_loses_nothing(site, redis_prefix, tmp_path, caplog):
    from twisted.internet import reactor

    from tests.support.redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    try:
        site.budget = None
        settings = {
            "SESSIONPOOL_PERSIST_STATE": True,
            "SESSIONPOOL_PERSIST_STATE_STORE": server.url,
            "SESSIONPOOL_REDIS_PREFIX": redis_prefix,
            "SESSIONPOOL_MAX_POOL_SIZE": 3,
            "CONCURRENT_REQUESTS": 2,
            "DOWNLOAD_DELAY": 0.05,
        }
        crawler = make_crawler(settings=settings)
        reactor.callLater(0.6, server.stop)
        reactor.callLater(1.6, server.start)
        yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(50)])
        assert len(crawler.spider.responses) == 50 and not crawler.spider.failures
        warnings = [r.getMessage() for r in caplog.records if "Redis at" in r.getMessage()]
        assert any("unreachable" in w for w in warnings) and any("answers again" in w for w in warnings)
        assert sum("unreachable" in w for w in warnings) == 1  # warned once
        state = RedisStore(server.url, prefix=redis_prefix).load("list")
        assert sum(s["usage_count"] for s in state["sessions"]) == 50  # every mark made it, outage or not
        assert len(state["sessions"]) == 3 and all(s["cookies"] for s in state["sessions"])
    finally:
        server.stop()


def slow_batches(pool, delay, *, only_the_first=False):
    """Make the pool's batches of writes (APPLY) reach Redis ``delay`` seconds late."""
    send, slowed = pool.link.eval, []

    async def eval_late(script, args):
        if script == "APPLY" and not (only_the_first and slowed):
            slowed.append(args)
            await asyncio.sleep(delay)
        return await send(script, args)

    pool.link.eval = eval_late


async def pick_once_online(pool):
    """Another request's pick, as soon as the pool is back online (while its replay runs)."""
    while not pool.is_online:
        await asyncio.sleep(0.001)
    return await pool.pick()


@in_asyncio_task
async def test_an_outage_queues_per_session_not_per_request_and_counts_retirements_at_once(
    own_redis, redis_prefix, monkeypatch, caplog
):
    from scrapy_sessionpool.shared import outage as outage_module

    monkeypatch.setattr(outage_module, "COMPACT_AT", 100)
    pool = shared(own_redis, redis_prefix, max_pool_size=2, max_usage_count=5)
    created, retired = [], []
    pool.on_created, pool.on_retired = created.append, retired.append
    before, _ = await pool.pick()
    before.mark_good()
    await pool.flush()
    own_redis.stop()
    for n in range(2000):
        session, _ = await pool.pick()
        session.set_cookie("sid", str(n), domain="shop.example")
        session.mark_good()
    assert not pool.is_online and before.is_retired
    # 400 sessions made offline for 2,000 uses of 5; retirements counted as they happen, not at the replay
    live = list(pool.outage.pool)
    assert len(created) == 401 and len(retired) == len(created) - len(live)
    assert 5 * len(retired) + sum(s.usage_count for s in live) == 2000 + 1
    assert len(pool.queue) < 2 * (len(retired) + 3 * len(live))  # uncompacted: 12 writes a session
    pool.queue.compact()
    assert sorted(op[1] for op in pool.queue if op[0].is_retired) == ["retire"] * len(retired)
    assert len(pool.queue) <= len(retired) + 3 * len(live)  # the live: create, last cookie, marks

    own_redis.start()
    reconnect_now(pool)
    after, _ = await pool.pick()
    assert pool.is_online and not pool.queue and after is not None
    client = RedisStore(own_redis.url, prefix=redis_prefix).client
    meta, alive = client.hgetall(f"{pool.base}:meta"), client.zcard(f"{pool.base}:live")
    assert len(retired) == 401 - len(live)  # the replay did not count them again
    assert (int(meta["created"]), int(meta["retired"]), alive) == (len(created), len(retired), len(live))
    assert [c["value"] for c in after.cookies] == [max((c["value"] for c in after.cookies), key=int)]

    own_redis.stop()
    held = len(pool.hand)  # hand-outs the pick took ahead: given back (written) when Redis goes away
    after.mark_good()  # one write, or two if that use was its last
    await pool.flush()  # goes offline again
    unsent = len(pool.queue)
    await pool.close()
    assert unsent - held in (1, 2) and f"{unsent} write(s) queued since the outage are lost" in caplog.text


@in_asyncio_task
async def test_a_session_retired_during_an_outage_never_comes_back(own_redis, redis_prefix, monkeypatch):
    from scrapy_sessionpool.shared import online as online_module

    monkeypatch.setattr(online_module, "BATCH", 5)
    a = shared(own_redis, redis_prefix, max_pool_size=2, max_usage_count=1000)
    b = shared(own_redis, redis_prefix, max_pool_size=2, max_usage_count=1000)
    retired = []
    a.on_retired = retired.append
    known, _ = await a.pick()
    known.mark_good()
    await a.flush()
    own_redis.stop()
    made, _ = await a.pick()  # made while Redis is away
    assert made.id != known.id
    made.set_cookie("sid", "secret", domain="shop.example")
    made.mark_good()
    for _ in range(20):
        pinned, _ = await a.pick(known.id)
        pinned.mark_good()
    made.retire("status_403")
    assert retired == [made]

    own_redis.start()
    picks = []
    send = a.link.eval

    async def eval_then_look(script, args):  # another process picks between the replay's batches
        reply = await send(script, args)
        picks.append(await b.pick(made.id))
        return reply

    a.link.eval = eval_then_look
    reconnect_now(a)
    await a.pick()
    assert len(picks) >= 3 and all(missing and got.id != made.id for got, missing in picks)
    meta = RedisStore(own_redis.url, prefix=redis_prefix).client.hgetall(f"{a.base}:meta")
    assert int(meta["created"]) - int(meta["retired"]) == b.usable_sessions_count == 2  # known + one of b's
    assert retired == [made]
    await a.close()
    await b.close()


@in_asyncio_task
async def test_a_replay_sends_one_batch_at_a_time(own_redis, redis_prefix, monkeypatch):
    from scrapy_sessionpool.shared import online as online_module

    monkeypatch.setattr(online_module, "BATCH", 5)
    a = shared(own_redis, redis_prefix, max_pool_size=1, max_usage_count=1000)
    session, _ = await a.pick()
    session.mark_good()
    await a.flush()
    own_redis.stop()
    session, _ = await a.pick(session.id)
    session.set_cookie("token", "1", domain="shop.example")
    for _ in range(4):
        session.release()
        session, _ = await a.pick(session.id)
    session.set_cookie("token", "2", domain="shop.example")  # batch 1: cookie=1 and 4 releases; batch 2: this
    session.mark_good()
    own_redis.start()
    slow_batches(a, 0.2, only_the_first=True)
    reconnect_now(a)
    await asyncio.gather(a.pick(), pick_once_online(a))  # that pick would carry the next batch past the slow one
    await a.flush()
    store = RedisStore(own_redis.url, prefix=redis_prefix)
    assert [c["value"] for c in store.load("spider")["sessions"][0]["cookies"]] == ["2"]
    await a.close()


@in_asyncio_task
async def test_during_a_replay_a_session_retired_offline_is_not_handed_out(own_redis, redis_prefix, monkeypatch):
    from scrapy_sessionpool.shared import online as online_module

    monkeypatch.setattr(online_module, "BATCH", 5)
    a = shared(own_redis, redis_prefix, max_pool_size=2, max_usage_count=1000)
    blocked, _ = await a.pick()
    other, _ = await a.pick()
    blocked.release()
    other.release()
    await a.flush()
    own_redis.stop()
    for _ in range(10):  # two batches of other writes come first
        session, _ = await a.pick(other.id)
        session.mark_good()
    blocked.retire("status_403")  # the third batch
    own_redis.start()
    slow_batches(a, 0.1)  # picks without writes overtake the batch with the retirement
    reconnect_now(a)
    picked = await asyncio.gather(a.pick(), *[pick_once_online(a) for _ in range(8)])
    assert blocked.id not in {session.id for session, _ in picked[1:] if session is not None}
    await a.close()


@in_asyncio_task
async def test_a_session_in_flight_when_redis_goes_away_is_counted_when_it_retires(own_redis, redis_prefix):
    a, b = shared(own_redis, redis_prefix, max_pool_size=2), shared(own_redis, redis_prefix, max_pool_size=2)
    retired = []
    a.on_retired = retired.append
    stale = []
    for _ in range(2):  # sessions a knows and b retires: a's fallback must not prefer them
        session, _ = await b.pick()
        session.release()
        mirror, _ = await a.pick(session.id)
        mirror.mark_good()
        stale.append(session)
    await a.flush()
    for session in stale:
        session.retire("manual")
    await b.flush()
    in_flight, _ = await a.pick()
    own_redis.stop()
    await a.pick()  # goes offline
    in_flight.retire("status_403")
    assert retired == [in_flight]
    own_redis.start()
    reconnect_now(a)
    await a.pick()
    assert retired == [in_flight]
    state = RedisStore(own_redis.url, prefix=redis_prefix).load("spider")
    assert in_flight.id not in {s["id"] for s in state["sessions"]}
    await a.close()
    await b.close()


OPS = (
    "good",
    "good",
    "good",
    "bad",
    "release",
    "release",
    "cookie",
    "cookie",
    "ud",
    "retire",
    "suspect",
    "clear",
    "acquit",
)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("warm_up", [False, True])
@pytest.mark.parametrize("strategy", ["random", "round_robin", "use_until_failure"])
@in_asyncio_task
async def test_compacting_the_queue_leaves_redis_with_the_same_pool(
    redis_server, redis_prefix, strategy, warm_up, seed
):
    from scrapy_sessionpool.shared.queue import WriteQueue

    rng = random.Random(seed)
    settings = {
        "max_pool_size": 10,
        "max_usage_count": 12,
        "max_error_score": 3,
        "warm_up": warm_up,
        "reuse_strategy": strategy,
    }
    plain = shared(redis_server, redis_prefix, **settings)
    compact = SharedPool(url=redis_server.url, key="compact", settings=plain.settings, prefix=redis_prefix)
    client = RedisStore(redis_server.url, prefix=redis_prefix).client
    sessions = [RemoteSession(plain, id=f"session_{seed}_{n}") for n in range(4)]
    creates = [
        Op(s, "create", json.dumps({"created_at": 1.0, "usage": 0, "errors": "0", "proxy": "", "ua": "", "ud": ""}))
        for s in sessions
    ]
    in_flight = {s.id: rng.randrange(3) for s in sessions}  # hand-outs still unanswered when the queue starts
    for pool in (plain, compact):
        await pool.link.eval("APPLY", pool.connected.apply_args(creates))
        for session in sessions:
            client.hincrby(f"{pool.base}:s:{session.id}", "handed", in_flight[session.id])
            if warm_up and in_flight[session.id]:
                client.zrem(f"{pool.base}:ready", session.id)
    ops = []
    for _ in range(rng.randrange(20, 120)):
        session, kind = rng.choice(sessions), rng.choice(OPS)
        a = {
            "cookie": rng.choice(["f1", "f2"]),
            "ud": json.dumps({"n": rng.random()}),
            "retire": "manual",
            "suspect": json.dumps(
                {
                    "since": 1.0,
                    "until": rng.choice([2.0, time.time() + 600]),
                    "strikes": rng.randrange(1, 4),
                    "cond": rng.randrange(2),
                }
            ),
        }
        b = rng.choice(["", json.dumps({"value": str(rng.random())})]) if kind == "cookie" else ""
        if kind == "retire" and rng.random() < 0.7:
            kind = "good"
        ops.append(Op(session, kind, a.get(kind, ""), b))
    queue = WriteQueue()
    for op in ops:
        queue.append(op)
    queue.compact(merge_across=strategy == "random")
    assert len(queue) < len(ops)
    for pool, batch in ((plain, ops), (compact, list(queue))):
        await pool.link.eval("APPLY", pool.connected.apply_args(batch))

    def pool_in_redis(pool):
        def session(sid):
            fields = client.hgetall(f"{pool.base}:s:{sid}")
            return {k: v for k, v in fields.items() if k not in ("cv", "uv")}, client.hgetall(f"{pool.base}:c:{sid}")

        return (
            client.zrange(f"{pool.base}:live", 0, -1),
            client.zrange(f"{pool.base}:ready", 0, -1),
            client.hgetall(f"{pool.base}:meta"),
            client.hgetall(f"{pool.base}:proxies"),
            client.zrange(f"{pool.base}:asleep", 0, -1),
            client.smembers(f"{pool.base}:condemned"),
            [session(s.id) for s in sessions],
        )

    assert pool_in_redis(compact) == pool_in_redis(plain)  # the ready set in its pick order, too
    await plain.close()
    await compact.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("usage", "lots"),
        ("errors", "nan-ish"),
        ("created_at", "yesterday"),
        ("ud", "{not json"),
        ("ud", "[" * 10_000),
        ("proxy", "ftp://evil"),
        ("cv", "x"),
    ],
)
@in_asyncio_task
async def test_hostile_values_in_redis_never_reach_scrapy(redis_server, redis_prefix, field, value, caplog):
    a = shared(redis_server, redis_prefix, max_pool_size=1)
    made, _ = await a.pick()
    made.release()
    await a.flush()
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    store.client.hset(f"{a.base}:s:{made.id}", field, value)
    if field != "cv":  # what `scrapy sessionpool` reads
        with pytest.raises(StateError):
            Session.from_state(store.load("spider")["sessions"][0])
    b = shared(redis_server, redis_prefix, max_pool_size=1)  # a process that has not seen the session yet
    session, _ = await b.pick()
    assert session is None or session.id != made.id
    if session is None:
        assert "unusable data in Redis" in caplog.text
        await b.flush()
        fresh, _ = await b.pick()  # the broken session was retired; a new one takes its place
        assert fresh is not None and fresh.id != made.id
    await a.close()
    await b.close()


def test_the_lua_replies_use_the_python_tags_and_reasons():
    from scrapy_sessionpool.core import reasons
    from scrapy_sessionpool.shared import scripts as lua

    script = lua.COMMON + lua.ACQUIRE + lua.APPLY
    for tag in (lua.REPLY_OK, lua.REPLY_RETIRED, lua.REPLY_GONE, lua.REPLY_TALLIED):
        assert f"{{'{tag}'" in script, tag  # a reply table begins with the tag
    for reason in (reasons.ERROR_SCORE, reasons.MAX_USAGE_COUNT, reasons.POOL_FULL):
        assert f"{{'{lua.REPLY_RETIRED}', '{reason}'" in script, reason


def test_a_session_redis_retired_leaves_the_outage_pool_too():
    """A pick's reply can land after the outage began: the local pool must let that session go."""
    from scrapy_sessionpool.shared.queue import Op

    pool = SharedPool(
        url="redis://127.0.0.1:1/0",
        key="k",
        settings=PoolSettings(max_pool_size=1, warm_up=False),
        rng=random.Random(1),
    )
    gone = RemoteSession(pool, id="session_gone", options=pool.options)
    pool.mirrors[gone.id] = gone
    pool.went_offline(ConnectionError("down"))
    assert pool.outage is not None and [s.id for s in pool.outage.pool] == [gone.id]
    late = Batch("1", [Op(gone, "good")])
    pool.connected.applied(late, [["gone"]])  # the late reply: another process retired it
    assert gone.retired_reason == "gone" and not list(pool.outage.pool)
    fresh = pool.outage.pool.acquire().session
    assert fresh is not None and fresh is not gone and not pool.queue.take(10).ops[0].session.is_retired


@in_asyncio_task
async def test_the_pool_connects_as_scrapy_redis_does(tmp_path, redis_prefix, caplog):
    """REDIS_HOST / REDIS_PORT / REDIS_DB and REDIS_PARAMS (a password) reach the pool and the store."""
    from scrapy.settings import Settings

    from tests.support.redis_server import RedisServer

    server = RedisServer(tmp_path, password="hunter2", unix_socket=tmp_path / "redis.sock").start()
    try:
        cfg = PoolSettings.from_settings(
            Settings(
                {
                    "SESSIONPOOL_PERSIST_STATE_STORE": "redis",
                    "REDIS_HOST": "127.0.0.1",
                    "REDIS_PORT": server.port,
                    "REDIS_DB": 3,
                    "REDIS_PARAMS": {"password": "hunter2"},
                    "SESSIONPOOL_MAX_POOL_SIZE": 2,
                    "SESSIONPOOL_WARM_UP": False,
                }
            )
        )
        pool = SharedPool(url=cfg.redis_url, key="spider", settings=cfg, prefix=redis_prefix, params=cfg.redis_params)
        session, _ = await pool.pick()
        assert session is not None and pool.is_online
        session.mark_good()
        await pool.close()
        # the same pool through the unix socket, database 3 (a URL with its options in the query)
        store = RedisStore(f"unix://{tmp_path / 'redis.sock'}?db=3&password=hunter2", prefix=redis_prefix)
        assert [s["id"] for s in store.load("spider")["sessions"]] == [session.id]
        assert (
            RedisStore(
                f"unix://{tmp_path / 'redis.sock'}?db=0", prefix=redis_prefix, params={"password": "hunter2"}
            ).load("spider")
            is None
        )
        # and the crawl's own path: the store the settings open, the pool the manager builds
        from scrapy_sessionpool.manager import PoolManager
        from scrapy_sessionpool.stores import open_store

        built = PoolManager(cfg, store=open_store(cfg, Settings()), state_key="spider").pool()
        assert isinstance(built, SharedPool)
        options = built.link.client.connection_pool.connection_kwargs
        assert (options["password"], options["db"], options["port"]) == ("hunter2", 3, server.port)
        await built.close()
        assert "hunter2" not in caplog.text
    finally:
        server.stop()
