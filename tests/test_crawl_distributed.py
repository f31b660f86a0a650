"""Distributed crawls: real scrapy-redis worker processes sharing one redis-server for their queue,
their dupefilter and the session pool.

The site (``tests.support.worker_shop``) records which worker sent each request with which
session, and when.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scrapy_sessionpool.stores.redis import RedisStore
from tests.support.worker_shop import WorkerShop

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "process_scrapy_redis_worker.py"
POOL = "sessionpool:{workers}"  # the pool's keys in Redis: the default prefix, the spider's name


def start_worker(site, redis, name, out, **settings):
    return subprocess.Popen(
        [sys.executable, str(WORKER), site.url(), redis.url, name, str(out), json.dumps(settings)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def finish(worker, timeout=120):
    out, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, err[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("stats ")]
    return json.loads(lines[-1][6:])


def items(path):
    if not path.exists():
        return []
    return [json.loads(line)["n"] for line in path.read_text().splitlines() if line.strip()]


def seed(redis, site):
    client = RedisStore(redis.url).client
    client.rpush("workers:start_urls", *(site.url(f"/list/{k}") for k in range(site.pages)))
    return client


def most_sessions_at_once(hits):
    """The most sessions in use at one moment, each from its first request to its last."""
    spans = {}
    for hit in hits:
        first, last = spans.get(hit.sid, (hit.at, hit.at))
        spans[hit.sid] = (min(first, hit.at), max(last, hit.at))
    events = sorted([(first, 1) for first, _ in spans.values()] + [(last, -1) for _, last in spans.values()])
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_two_workers_share_the_queue_and_the_pool(own_redis, tmp_path):
    # pages slow enough that one worker alone would take longer than the 5 s an idle worker waits
    # before it looks for work again (about 8 s), so that both take part whichever looks first
    with WorkerShop(items=200, per_page=10, delay=0.15) as site:
        outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
        workers = [
            start_worker(site, own_redis, name, out, SESSIONPOOL_MAX_USAGE_COUNT=8)
            for name, out in zip("ab", outs, strict=True)
        ]
        client = RedisStore(own_redis.url).client
        deadline = time.monotonic() + 60
        while client.scard(f"{POOL}:procs") < 2:  # both pools are up: the crawl begins
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "a worker never started"
            time.sleep(0.02)
        seed(own_redis, site)
        stats = [finish(worker) for worker in workers]
        hits = site.hits
    got = [items(out) for out in outs]
    assert sorted(got[0] + got[1]) == list(range(1, 201))  # every item, once
    assert all(len(share) >= 20 for share in got), [len(share) for share in got]  # both took part
    by_worker = {name: {hit.sid for hit in hits if hit.worker == name} for name in "ab"}
    assert by_worker["a"] & by_worker["b"]  # sessions made by one worker served the other
    assert most_sessions_at_once(hits) <= 4  # SESSIONPOOL_MAX_POOL_SIZE holds across the workers
    issued = {hit.sid for hit in hits if hit.issued}
    assert sum(s.get("sessionpool/created", 0) for s in stats) == len(issued) > 4
    meta = client.hgetall(f"{POOL}:meta")
    assert int(meta["created"]) == len(issued) and client.zcard(f"{POOL}:live") <= 4
    assert not client.smembers(f"{POOL}:procs")  # both left, giving their hand-outs back


def held_by_one_process(client):
    procs = client.smembers(f"{POOL}:procs")
    if len(procs) != 1:
        return 0
    (proc,) = procs
    return sum(int(n) for n in client.hvals(f"{POOL}:lease:{proc}"))


def test_a_worker_killed_while_its_sessions_are_out_stalls_the_other_one_lease_ttl(own_redis, tmp_path):
    ttl = 2.0
    with WorkerShop(items=80, per_page=10, first_visit_delay=3.0) as site:
        client = seed(own_redis, site)
        a = start_worker(site, own_redis, "a", tmp_path / "a.jsonl", SESSIONPOOL_REDIS_LEASE_TTL=ttl)
        deadline = time.monotonic() + 60
        while held_by_one_process(client) < 4:  # every session out with a, on its first (slow) request
            assert time.monotonic() < deadline and a.poll() is None, "worker a never took the whole pool"
            time.sleep(0.02)
        b = start_worker(site, own_redis, "b", tmp_path / "b.jsonl", SESSIONPOOL_REDIS_LEASE_TTL=ttl)
        while len(client.smembers(f"{POOL}:procs")) < 2:  # b is up: its first heartbeat
            assert time.monotonic() < deadline and b.poll() is None, "worker b never started"
            time.sleep(0.02)
        time.sleep(1.0)  # b waits: the pool is full and every session is out with a
        a.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        a.wait(timeout=10)
        finish(b)
        hits = site.hits
    first_b = min(hit.at for hit in hits if hit.worker == "b")
    assert first_b > killed  # nothing for b while a was alive and held every session
    stall = first_b - killed
    assert stall <= ttl * 1.1 + 1.0, stall  # one lease TTL (plus a renewal and b's wait between asks)
    got = items(tmp_path / "a.jsonl") + items(tmp_path / "b.jsonl")
    assert len(got) == len(set(got))
    # scrapy-redis forgets what a dead worker took from the queue: only the pages of a's listings are missing
    lost = {n for hit in hits if hit.worker == "a" for n in site.items_on(int(hit.path.rsplit("/", 1)[1]))}
    assert set(range(1, 81)) - set(got) <= lost
    assert len(got) >= 80 - 4 * site.per_page
