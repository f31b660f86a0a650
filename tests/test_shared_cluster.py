"""The shared pool and the Redis store on a real Redis Cluster (three primaries, no replicas; one test
on another cluster, whose primaries have a replica each).

Every key of a pool has the same hash tag, so a pool lives on the node that serves its slot: the
tests put pools on each node, flush the scripts of one node, stop the node of a pool mid-use, and
kill the primary of a pool so that its replica takes over.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from collections import Counter

import pytest
import pytest_twisted
import redis
from redis.asyncio.retry import Retry  # the pool's client is redis-py's asyncio one
from redis.backoff import NoBackoff
from scrapy.settings import Settings

from scrapy_sessionpool import SessionPool
from scrapy_sessionpool.settings import PoolSettings
from scrapy_sessionpool.shared import SharedPool
from scrapy_sessionpool.shared.schema import pool_base
from scrapy_sessionpool.stores import open_store
from scrapy_sessionpool.stores.redis import RedisStore
from tests.crawling import make_crawler, stats
from tests.support.shared_pools import in_asyncio_task, reconnect_now

TTL = 0.5
_prefixes = itertools.count()


@pytest.fixture
def prefix(redis_cluster):
    """A key prefix no other test uses (the slot of a pool depends on its key alone), on a cluster whose
    nodes all run (whatever the test before did)."""
    redis_cluster.heal()
    return f"cluster{os.getpid()}-{next(_prefixes)}"


def key_on(cluster, node):
    """A pool key whose slot ``node`` serves."""
    return next(
        key for key in (f"spider{n}" for n in itertools.count()) if cluster.node_of(pool_base("p", key)) == node
    )


def pool(cluster, prefix, key, *, params=None, **settings):
    cfg = PoolSettings(**{"max_pool_size": 3, "warm_up": False, **settings})
    return SharedPool(
        url=cluster.url, key=key, settings=cfg, prefix=prefix, rng=random.Random(1), params=params, cluster=True
    )


def store(cluster, prefix):
    return RedisStore(cluster.url, prefix=prefix, cluster=True)


async def use(pool, n, uses, *, cookie=False):
    """``n`` good answers of sessions of ``pool`` (counted in ``uses``), each setting a cookie if
    ``cookie``; then the writes are sent (or queued, if Redis is away)."""
    for _ in range(n):
        session = (await pool.pick()).session
        if cookie:
            session.set_cookie("n", str(sum(uses.values())), domain="shop.example")
        session.mark_good()
        uses[session.id] += 1
    await pool.flush()


def node_client(cluster, node):
    """A plain client of one node (keyed commands for other nodes' slots are refused with MOVED)."""
    return redis.Redis(host="127.0.0.1", port=cluster.ports[node], decode_responses=True)


@in_asyncio_task
async def test_each_pool_lives_on_the_node_that_serves_its_slot(redis_cluster, prefix):
    pools = [pool(redis_cluster, prefix, key_on(redis_cluster, node)) for node in range(3)]
    for node, shared in enumerate(pools):
        session = (await shared.pick()).session
        session.set_cookie("sid", f"on-{node}", domain="shop.example")
        session.mark_good()
        await shared.flush()
        owner = shared.link.client.get_node_from_key(f"{shared.base}:c:{session.id}")  # the client's lookup
        assert redis_cluster.ports.index(owner.port) == node == redis_cluster.node_of(f"{shared.base}:live")
    for node, shared in enumerate(pools):  # every key of a pool, those the scripts make too, on its node
        names = node_client(redis_cluster, node).keys(f"{prefix}:*")
        assert {name.split(":")[2] for name in names} >= {"live", "ready", "meta", "s", "c", "done"}
        assert all(name.startswith(f"{shared.base}:") for name in names)
    for shared in pools:
        await shared.close()


@in_asyncio_task
async def test_two_processes_share_sessions_and_cookies_on_a_node_other_than_the_first(redis_cluster, prefix):
    key = key_on(redis_cluster, 1)
    a, b = pool(redis_cluster, prefix, key, max_pool_size=1), pool(redis_cluster, prefix, key, max_pool_size=1)
    made = (await a.pick()).session
    made.set_cookie("sid", "from-a", domain="shop.example")
    made.mark_good()
    await a.flush()
    got = (await b.pick()).session
    assert got.id == made.id and got.usage_count == 1
    assert [c["value"] for c in got.cookies] == ["from-a"]
    got.set_cookie("sid", "from-b", domain="shop.example")
    got.mark_good()
    await b.flush()
    again = (await a.pick()).session
    assert again.id == made.id and again.usage_count == 2 and [c["value"] for c in again.cookies] == ["from-b"]
    await a.close()
    await b.close()


@in_asyncio_task
async def test_max_pool_size_holds_across_processes(redis_cluster, prefix):
    key = key_on(redis_cluster, 2)
    pools = [pool(redis_cluster, prefix, key) for _ in range(3)]
    ids = set()
    for _ in range(4):
        for shared in pools:
            session = (await shared.pick()).session
            ids.add(session.id)
            session.mark_good()
    assert len(ids) == 3 and pools[0].usable_sessions_count == 3
    assert store(redis_cluster, prefix).client.zcard(f"{pools[0].base}:live") == 3
    for shared in pools:
        await shared.close()


@in_asyncio_task
async def test_a_retirement_in_one_process_is_seen_before_the_next_pick_in_another(redis_cluster, prefix):
    key = key_on(redis_cluster, 1)
    a, b = pool(redis_cluster, prefix, key, max_pool_size=2), pool(redis_cluster, prefix, key, max_pool_size=2)
    first = (await a.pick()).session
    second = (await a.pick()).session
    first.retire("status_403")
    await a.flush()
    seen = set()
    for _ in range(10):
        session = (await b.pick()).session
        seen.add(session.id)
        session.mark_good()
    assert first.id not in seen and second.id in seen
    pinned = await b.pick(first.id)
    assert pinned.pinned_missing and pinned.session.id != first.id
    assert b.retired_sessions_count == 1
    await a.close()
    await b.close()


@in_asyncio_task
async def test_the_hand_outs_of_a_process_whose_heartbeat_lapsed_come_back(redis_cluster, prefix):
    key = key_on(redis_cluster, 2)
    cfg = {"max_pool_size": 2, "warm_up": True, "redis_lease_ttl": TTL}
    crashed, survivor = (pool(redis_cluster, prefix, key, **cfg) for _ in range(2))
    held = [(await crashed.pick()).session for _ in range(2)]  # new sessions: one request each until answered
    await survivor.start()
    assert (await survivor.pick()).session is None  # the pool is full and both are out
    await asyncio.sleep(TTL * 1.2)  # the crashed process never renews its heartbeat; the survivor's does
    got = (await survivor.pick()).session
    assert got is not None and got.id in {s.id for s in held}
    client = store(redis_cluster, prefix).client
    assert client.smembers(f"{crashed.base}:procs") == {survivor.process_id}
    await survivor.close()
    await crashed.close()


@in_asyncio_task
async def test_the_scripts_are_loaded_on_the_node_of_the_pool_alone_again_after_a_script_flush(redis_cluster, prefix):
    key = key_on(redis_cluster, 2)
    nodes = [node_client(redis_cluster, node) for node in range(3)]
    for client in nodes:
        client.script_flush()
    a = pool(redis_cluster, prefix, key, max_pool_size=1)
    (await a.pick()).session.mark_good()
    await a.flush()
    shas = list(a.link._shas.values())
    assert len(shas) == 2 and [client.script_exists(*shas) for client in nodes] == [[False] * 2] * 2 + [[True] * 2]
    nodes[2].script_flush()  # as after a restart or a failover
    redis_cluster.stop_node(0)  # a node the pool does not use: the scripts load without it
    try:
        session = (await a.pick()).session
        session.mark_good()
        await a.flush()
        assert a.is_online and session.usage_count == 2 and nodes[2].script_exists(*shas) == [True, True]
    finally:
        redis_cluster.start_node(0)
    await a.close()


@in_asyncio_task
async def test_a_script_gone_between_its_load_and_its_call_runs_by_eval(redis_cluster, prefix):
    key = key_on(redis_cluster, 1)
    a = pool(redis_cluster, prefix, key, max_pool_size=1)
    send = a.link.client.execute_command

    async def load_then_lose(*args, **kwargs):  # as when the slot moves to another node meanwhile
        reply = await send(*args, **kwargs)
        if args[0] == "SCRIPT LOAD":
            node_client(redis_cluster, 1).script_flush()
        return reply

    a.link.client.execute_command = load_then_lose
    for n in range(1, 3):
        session = (await a.pick()).session
        session.mark_good()
        await a.flush()
        assert a.is_online and session.usage_count == n
    a.link.client.execute_command = send
    await a.close()


@in_asyncio_task
async def test_the_store_writes_and_reads_snapshots_on_the_cluster(redis_cluster, prefix):
    key = key_on(redis_cluster, 1)
    settings = Settings(
        {
            "SESSIONPOOL_PERSIST_STATE_STORE": redis_cluster.url,
            "SESSIONPOOL_REDIS_CLUSTER": True,
            "SESSIONPOOL_REDIS_PREFIX": prefix,
        }
    )
    snapshots = open_store(PoolSettings.from_settings(settings), settings)
    assert isinstance(snapshots, RedisStore) and snapshots.cluster  # as ``scrapy sessionpool`` opens it
    local = SessionPool(
        max_pool_size=2,
        seed=1,
        create_session_function=lambda p: p.make_session(
            proxy_url="http://u:secret@p:1", user_agent="UA ☃", user_data={"k": [1], "name": "😀"}
        ),
    )
    session = local.get_session()
    session.set_cookie("sid", "v", domain="example.com", expires=4_000_000_000, secure=True)
    session.mark_bad()
    other = local.get_session()
    snapshots.save(key, {"version": 1, "retired_sessions_count": 7, "sessions": []})
    snapshots.save(key, local.get_state())  # replaces the pool
    assert snapshots.load(key) == local.get_state()
    base = pool_base(prefix, key)
    assert redis_cluster.node_of(f"{base}:meta") == 1
    assert snapshots.client.hgetall(f"{base}:proxies") == {"http://u:secret@p:1": "2"}
    shared = pool(redis_cluster, prefix, key, max_pool_size=2)  # a crawl goes on with the pool the file seeded
    got = (await shared.pick(session.id)).session
    assert got.id == session.id and got.error_score == 1 and [c["value"] for c in got.cookies] == ["v"]
    assert got.user_data == {"k": [1], "name": "😀"} and got.user_agent == "UA ☃"
    got.mark_good()
    await shared.close()
    assert snapshots.load(key)["sessions"][0]["usage_count"] == 2
    assert {s["id"] for s in snapshots.load(key)["sessions"]} == {session.id, other.id}
    assert snapshots.delete(key) and snapshots.load(key) is None


@in_asyncio_task
async def test_the_node_of_a_pool_stops_mid_use_and_the_pool_goes_on_locally_then_catches_up(redis_cluster, prefix):
    key = key_on(redis_cluster, 0)  # the node the URL names: a pool started meanwhile cannot even find the cluster
    # no retries: redis-py would otherwise retry through the restarted node's first seconds (see below)
    params = {"retry": Retry(NoBackoff(), 0)}
    a = pool(redis_cluster, prefix, key, max_pool_size=2, max_usage_count=1000, params=params)
    uses = Counter()
    await use(a, 2, uses)
    redis_cluster.stop_node(0)
    try:
        await use(a, 6, uses, cookie=True)
        assert not a.is_online and a.queue
        assert not await a.link.ping()  # the node of the pool, though the other nodes answer
        late = pool(redis_cluster, prefix, key, max_pool_size=2, max_usage_count=1000, params=params)
        await late.start()  # no node to learn the cluster from: an outage, not an error
        made = (await late.pick()).session
        made.mark_good()
        assert not late.is_online and made is not None
    finally:
        redis_cluster.start_node(0, wait=False)
    # a master that restarts answers CLUSTERDOWN for its first two seconds: still an outage
    reconnect_now(a)
    assert (await a.pick()).session is not None
    if redis_cluster.state(0) == "fail":  # the pick came within those seconds (it takes a few tenths)
        assert not a.is_online
    redis_cluster.wait_ok()
    reconnect_now(a)
    after = (await a.pick()).session  # the replay, then a pick on the node again (its scripts loaded anew)
    assert a.is_online and not a.queue and after.id in uses
    after.release()
    reconnect_now(late)
    await late.save()
    assert late.is_online and not late.queue
    client = store(redis_cluster, prefix).client
    usage = {sid: int(client.hget(f"{a.base}:s:{sid}", "usage")) for sid in client.zrange(f"{a.base}:live", 0, -1)}
    assert usage == dict(uses) and made.retired_reason == "pool_full"  # the late pool's came when the pool was full
    meta = client.hgetall(f"{a.base}:meta")
    assert int(meta["created"]) - int(meta["retired"]) == 2
    assert client.hget(f"{a.base}:c:{after.id}", "shop.example;/;n") is not None
    await a.close()
    await late.close()


@pytest_twisted.inlineCallbacks
def test_a_crawl_with_the_pool_on_a_redis_cluster(site, redis_cluster, prefix):
    key = key_on(redis_cluster, 2)
    site.budget = 4
    settings = {
        "SESSIONPOOL_PERSIST_STATE": True,
        "SESSIONPOOL_PERSIST_STATE_STORE": redis_cluster.url,
        "SESSIONPOOL_REDIS_CLUSTER": True,
        "SESSIONPOOL_REDIS_PREFIX": prefix,
        "SESSIONPOOL_PERSIST_STATE_KEY": key,
        "SESSIONPOOL_MAX_POOL_SIZE": 3,
        "SESSIONPOOL_SUSPECT_WAIT": 0.2,
    }
    crawler = make_crawler(settings=settings)
    yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(30)])
    assert sorted(int(r.url.rsplit("/", 1)[1]) for r in crawler.spider.responses) == list(range(30))
    s = stats(crawler)
    assert s["blame/session"] >= 2 and s["retired"] == s["blame/session"] + s.get("retired/max_usage_count", 0)
    snapshots = store(redis_cluster, prefix)
    state = snapshots.load(key)
    assert len(state["sessions"]) == s["created"] - s["retired"] and state["retired_sessions_count"] == s["retired"]
    assert all(sess["cookies"] for sess in state["sessions"])
    assert redis_cluster.node_of(f"{pool_base(prefix, key)}:live") == 2

    again = make_crawler(settings=settings)  # a second run resumes the same live pool
    site.budget = None
    yield again.crawl(urls=[site.url(f"/items/{i}") for i in range(6)])
    assert stats(again)["restored"] == len(state["sessions"]) and len(again.spider.responses) == 6


@in_asyncio_task
async def test_a_replica_promoted_after_its_primary_died_takes_the_pool_over(redis_cluster_with_replicas):
    cluster, prefix = redis_cluster_with_replicas, f"failover{os.getpid()}"
    primary = next(node.index for node in cluster.nodes() if node.slots and node.index != 0)
    key = key_on(cluster, primary)  # not on the node the URL names: the client learns the cluster from that one
    replica = cluster.replica_of(primary)
    params = {"retry": Retry(NoBackoff(), 0)}
    a = pool(cluster, prefix, key, max_pool_size=2, max_usage_count=1000, params=params)
    uses = Counter()
    await use(a, 4, uses)
    assert node_client(cluster, primary).wait(1, 5000) == 1  # the replica has every write so far
    cluster.stop_node(primary, kill=True)
    await use(a, 6, uses, cookie=True)  # meanwhile the pool goes on with the sessions it knows
    assert not a.is_online and a.queue
    cluster.wait_promoted(replica)
    assert cluster.node_of(f"{a.base}:live") == replica
    reconnect_now(a)
    after = (await a.pick()).session  # the replay and a pick, on the new primary (its scripts loaded there)
    assert a.is_online and not a.queue and after.id in uses
    after.release()
    client = node_client(cluster, replica)
    usage = {sid: int(client.hget(f"{a.base}:s:{sid}", "usage")) for sid in client.zrange(f"{a.base}:live", 0, -1)}
    assert usage == dict(uses)  # every use counted once: those before the failover, and those replayed
    assert client.hget(f"{a.base}:c:{after.id}", "shop.example;/;n") is not None
    await a.close()
