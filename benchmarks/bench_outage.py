"""What a shared pool queues while Redis is away: the write queue compacted (as it runs) against the
same queue never compacted (the baseline), for the same requests, then the replay when Redis is back.

Each scenario: a process picks a session, Redis is stopped, the process goes on with its local
fallback pool for N requests (each answer sets a cookie, some change the user data), then Redis is
started again and the queue is replayed. Prints queued writes, the queue's memory and the replay
time for both, and checks that Redis ends with the same counts either way.

Run: ``python benchmarks/bench_outage.py`` (needs ``redis-server``; ``make bench-outage``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scrapy_sessionpool.shared.outage import COMPACT_AT  # noqa: E402 - after the path

SCENARIOS = (  # name, requests, SESSIONPOOL_MAX_USAGE_COUNT
    ("sessions used up (default limits)", 20_000, 50),
    ("two long-lived sessions", 30_000, 1_000_000),
)


async def outage(server, requests: int, max_usage: int, compact: bool, prefix: str) -> dict:
    from scrapy_sessionpool.settings import PoolSettings
    from scrapy_sessionpool.shared import SharedPool
    from scrapy_sessionpool.shared import outage as outage_module
    from scrapy_sessionpool.stores.redis import RedisStore

    outage_module.COMPACT_AT = COMPACT_AT if compact else 10**12
    settings = PoolSettings(max_pool_size=2, warm_up=False, max_usage_count=max_usage)
    pool = SharedPool(url=server.url, key="outage", settings=settings, prefix=prefix, rng=random.Random(1))
    retired = []
    pool.on_retired = retired.append
    first, _ = await pool.pick()
    first.mark_good()
    await pool.flush()
    server.stop()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(requests):
        session, _ = await pool.pick()
        session.set_cookie("token", str(n), domain="shop.example")
        if n % 10 == 0:
            session.user_data["page"] = n
        session.mark_good()
    queued, memory = len(pool.queue), tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    server.start()
    pool.retry_now()
    started = time.perf_counter()
    await pool.pick()
    await pool.flush()
    replay = time.perf_counter() - started
    meta = RedisStore(server.url, prefix=prefix).client.hgetall(f"{pool.base}:meta")
    await pool.close()
    return {
        "queued": queued,
        "memory": memory,
        "replay": replay,
        "retired": len(retired),
        "redis": (int(meta.get("created", 0)), int(meta.get("retired", 0))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    logging.disable(logging.WARNING)  # the outage warnings, once per run
    from tests.support.redis_server import RedisServer

    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory)).start()
        try:
            print(f"{'scenario':52} {'queue':>10} {'writes':>8} {'memory':>10} {'replay':>8}  Redis created/retired")
            for index, (name, requests, max_usage) in enumerate(SCENARIOS):
                for compact in (False, True):
                    result = asyncio.run(outage(server, requests, max_usage, compact, f"bench{index}{compact}"))
                    label = "compacted" if compact else "baseline"
                    created, retired = result["redis"]
                    print(
                        f"{name + f', {requests:,} requests':52} {label:>10} {result['queued']:>8,} "
                        f"{result['memory'] / 2**20:>8.1f} MiB {result['replay']:>6.2f} s  {created}/{retired}"
                        f" (this process counted {result['retired']} retired)"
                    )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
