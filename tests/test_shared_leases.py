"""Leases, heartbeats and exactly-once writes of the shared Redis pool, against a real redis-server.

A hand-out is leased to its process for as long as the process renews its heartbeat; batches
of writes and picks whose replies were lost are applied once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.exceptions

from scrapy_sessionpool.settings import PoolSettings
from scrapy_sessionpool.shared import SharedPool
from scrapy_sessionpool.stores.redis import RedisStore
from tests.support.shared_pools import in_asyncio_task, reconnect_now

ROOT = Path(__file__).resolve().parent.parent
TTL = 0.5


def pool(server, prefix, **settings):
    cfg = PoolSettings(**{"max_pool_size": 2, "warm_up": True, "redis_lease_ttl": TTL, **settings})
    return SharedPool(url=server.url, key="spider", settings=cfg, prefix=prefix)


def redis_of(server, prefix):
    return RedisStore(server.url, prefix=prefix).client


def in_flight(client, base):
    """Hand-outs not answered yet, by session, as Redis counts them."""
    out = {}
    for sid in client.zrange(f"{base}:live", 0, -1):
        handed, usage = client.hmget(f"{base}:s:{sid}", "handed", "usage")
        out[sid] = int(handed) - int(usage)
    return out


@in_asyncio_task
async def test_the_hand_outs_of_a_process_whose_heartbeat_lapsed_come_back(redis_server, redis_prefix, caplog):
    crashed, survivor = pool(redis_server, redis_prefix), pool(redis_server, redis_prefix)
    stats = []
    survivor.stat = lambda key, count=1, **kw: stats.append((key, count))
    held = [(await crashed.pick()).session for _ in range(2)]  # new sessions: one request each until answered
    await survivor.start()
    assert (await survivor.pick()).session is None  # the pool is full and both are out
    await asyncio.sleep(TTL * 1.2)  # the crashed process never renews its heartbeat; the survivor's does
    got = (await survivor.pick()).session
    assert got is not None and got.id in {s.id for s in held}
    client = redis_of(redis_server, redis_prefix)
    assert crashed.process_id not in client.smembers(f"{crashed.base}:procs")
    assert not client.exists(f"{crashed.base}:lease:{crashed.process_id}")
    assert ("redis/leases_reaped", 2) in stats and "1 process(es) stopped renewing their heartbeat" in caplog.text
    # the process was only frozen: its late answers count, and no count goes below what is in flight
    for session in held:
        session.mark_good()
    await crashed.flush()
    assert all(n >= 0 for n in in_flight(client, crashed.base).values())
    assert in_flight(client, crashed.base)[got.id] == 1  # the survivor's hand-out
    await survivor.close()
    await crashed.close()


@in_asyncio_task
async def test_a_live_process_keeps_its_leases_and_a_closed_one_gives_them_back_at_once(redis_server, redis_prefix):
    holder, other = pool(redis_server, redis_prefix), pool(redis_server, redis_prefix)
    await holder.start()
    await other.start()
    held = [(await holder.pick()).session for _ in range(2)]
    await asyncio.sleep(TTL * 3)  # three TTLs: the holder's heartbeat keeps its leases
    await other.heartbeat.beat()
    assert (await other.pick()).session is None
    await holder.close()  # without answering: its hand-outs come back with it
    got = (await other.pick()).session
    assert got is not None and got.id in {s.id for s in held}
    client = redis_of(redis_server, redis_prefix)
    assert client.smembers(f"{holder.base}:procs") == {other.process_id}
    assert not client.exists(f"{holder.base}:hb:{holder.process_id}", f"{holder.base}:done:{holder.process_id}")
    await other.close()


def start_holder(redis_server, prefix, held, ttl):
    script = ROOT / "tests" / "process_lease_holder.py"
    worker = subprocess.Popen(
        [sys.executable, str(script), redis_server.url, prefix, str(held), str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    line = worker.stdout.readline()
    assert line.startswith("held "), line
    return worker, json.loads(line[5:])


async def wait_for_a_session(survivor, limit):
    """Seconds until the survivor is handed a session (None if not within ``limit``)."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        if (await survivor.pick()).session is not None:
            return time.monotonic() - began
        await asyncio.sleep(0.02)
    return None


@in_asyncio_task
async def test_a_worker_killed_with_sigkill_holds_its_sessions_one_lease_ttl_at_most(redis_server, redis_prefix):
    ttl = 1.0
    worker, held = start_holder(redis_server, redis_prefix, 3, ttl)
    survivor = pool(redis_server, redis_prefix, max_pool_size=3, redis_lease_ttl=ttl)
    await survivor.start()  # its heartbeat runs on the loop from now on
    try:
        assert await wait_for_a_session(survivor, 2 * ttl) is None  # alive: its leases hold
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        stall = await wait_for_a_session(survivor, 10 * ttl)
        # the lease lapses one TTL after the last renewal, the next renewal gives it back
        assert stall is not None and stall <= ttl * 1.1 + 0.5, stall
        assert set(in_flight(redis_of(redis_server, redis_prefix), survivor.base)) == set(held)
    finally:
        worker.kill()
        await survivor.close()


@in_asyncio_task
async def test_a_frozen_worker_loses_its_leases_and_its_late_answers_count(redis_server, redis_prefix):
    ttl = 1.0
    worker, held = start_holder(redis_server, redis_prefix, 2, ttl)
    survivor = pool(redis_server, redis_prefix, redis_lease_ttl=ttl)
    await survivor.start()
    client = redis_of(redis_server, redis_prefix)
    try:
        worker.send_signal(signal.SIGSTOP)
        assert await wait_for_a_session(survivor, 10 * ttl) is not None
        worker.send_signal(signal.SIGCONT)
        worker.send_signal(signal.SIGUSR1)
        assert worker.stdout.readline() == "answered\n"
        assert worker.wait(timeout=10) == 0
        counts = {sid: client.hmget(f"{survivor.base}:s:{sid}", "usage", "handed") for sid in held}
        assert all(int(usage) >= 1 and int(handed) >= int(usage) for usage, handed in counts.values()), counts
        # only the survivor's hand-outs are out: the one it got, and those it took ahead
        assert sum(in_flight(client, survivor.base).values()) == 1 + len(survivor.hand)
    finally:
        worker.kill()
        await survivor.close()


def lose_one_reply(shared, script_name):
    """The next ``script_name`` call runs in Redis, but its reply is lost on the way back."""
    send = shared.link.eval

    async def run_then_fail(script, args):
        reply = await send(script, args)
        if script == script_name:
            shared.link.eval = send
            raise redis.exceptions.ConnectionError("reply lost")
        return reply

    shared.link.eval = run_then_fail


@pytest.mark.parametrize("script", ["APPLY", "ACQUIRE"])
@in_asyncio_task
async def test_a_batch_whose_reply_was_lost_is_applied_once(redis_server, redis_prefix, script):
    a = pool(redis_server, redis_prefix, warm_up=False, max_pool_size=1)
    session = (await a.pick()).session
    for _ in range(3):
        session.mark_bad() if _ == 0 else session.mark_good()
        if _ < 2:
            session = (await a.pick(session.id)).session
    session.set_cookie("sid", "v1", domain="shop.example")
    lose_one_reply(a, script)
    if script == "APPLY":
        await a.flush()
    else:
        await a.pick(session.id)
    assert not a.is_online and len(a.queue) >= 1
    reconnect_now(a)
    await a.pick(session.id)  # the replay sends the same batch again, then picks
    await a.flush()
    client = redis_of(redis_server, redis_prefix)
    usage, errors = client.hmget(f"{a.base}:s:{session.id}", "usage", "errors")
    assert (int(usage), float(errors)) == (3, 0.0)  # once: 1 bad, 2 good; twice would be 6 and 0.0 too, so:
    assert client.hget(f"{a.base}:s:{session.id}", "cv") == "1"  # one cookie write, applied once
    await a.close()


@in_asyncio_task
async def test_a_pick_whose_reply_was_lost_is_given_back(redis_server, redis_prefix):
    a, b = pool(redis_server, redis_prefix, max_pool_size=1), pool(redis_server, redis_prefix, max_pool_size=1)
    lose_one_reply(a, "ACQUIRE")
    # Redis made a session and handed it out, but the reply was lost: the process makes one of its own
    local = (await a.pick()).session
    assert local is not None and not a.is_online
    client = redis_of(redis_server, redis_prefix)
    (sid,) = client.zrange(f"{a.base}:live", 0, -1)
    assert in_flight(client, a.base) == {sid: 1}
    assert (await b.pick()).session is None  # a new session serves one request: it is out
    reconnect_now(a)
    await a.save()  # back online: the next call (the replay) gives the lost hand-out back
    assert in_flight(client, a.base) == {sid: 0}
    assert not client.hgetall(f"{a.base}:lease:{a.process_id}")
    assert local.retired_reason == "pool_full"  # its own session came too late for a pool of one
    got = (await b.pick()).session
    assert got is not None and got.id == sid
    await a.close()
    await b.close()


@in_asyncio_task
async def test_sessions_made_during_an_outage_never_push_the_pool_over_its_size(own_redis, redis_prefix):
    cfg = {"warm_up": False, "max_pool_size": 2}
    away, other = pool(own_redis, redis_prefix, **cfg), pool(own_redis, redis_prefix, **cfg)
    retired = []
    away.on_retired = retired.append
    own_redis.stop()
    made = [(await away.pick()).session for _ in range(2)]  # made locally while Redis is away
    for session in made:
        session.mark_good()
    own_redis.start()
    full = [(await other.pick()).session for _ in range(2)]  # meanwhile another process fills the pool
    assert all(full)
    reconnect_now(away)
    await away.pick()
    await away.flush()
    client = redis_of(own_redis, redis_prefix)
    assert client.zcard(f"{away.base}:live") == 2
    assert sorted(s.id for s in retired) == sorted(s.id for s in made)
    assert {s.retired_reason for s in made} == {"pool_full"}
    meta = client.hgetall(f"{away.base}:meta")
    assert int(meta["created"]) - int(meta["retired"]) == 2
    await away.close()
    await other.close()
