"""Store benchmark: save and load time, and size, of a pool's state in the file store and in Redis.

Run: ``make bench-store`` (or ``python benchmarks/bench_store.py [--sizes 1000,10000] [--repeat R]``).
Each pool is filled to its size first: every session has two cookies, a proxy
(one of 20) and a user agent (one of 5), and one in ten has small user data.

File store, as a periodic save of the extension does it: ``pool.snapshot()``
on the reactor thread (the only part that stalls the crawl), then, in a
thread, the build of the state dict, JSON encoding, and the atomic write
(temporary file, fsync, rename, fsync of the directory). Load is
``FileStore.load`` (read + parse) and ``SessionPool.restore`` into a fresh pool.

Redis store: ``RedisStore.save`` (one transaction; shown on its own and with the snapshot and build) and
``RedisStore.load`` + restore, against a redis-server this benchmark starts on a
free port. ``RedisStore.save`` is the one-off seeding path (``scrapy
sessionpool``, a file state moved into Redis); a crawl with the Redis store never
saves whole snapshots: its pool lives in Redis and each write goes there as it
happens (``make bench-crawl`` measures that).

Small sizes are repeated (``--repeat`` times at 1,000 sessions, half as often
at 10,000, once at 100,000) and the median is shown.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_core  # noqa: E402
from scrapy_sessionpool import SessionPool  # noqa: E402
from scrapy_sessionpool.stores import FileStore  # noqa: E402

SIZES = (1_000, 10_000, 100_000)
PROXIES = [f"http://user:pass@proxy{n}.example:8000" for n in range(20)]
AGENTS = [f"Mozilla/5.0 (X11; Linux x86_64) BenchBrowser/{n}.0" for n in range(5)]
KEY = "bench"


def filled_pool(size: int) -> SessionPool:
    def make(pool: SessionPool) -> Any:
        n = len(pool._live)
        return pool.make_session(
            proxy_url=PROXIES[n % len(PROXIES)],
            user_agent=AGENTS[n % len(AGENTS)],
            user_data={"login": f"user{n}", "tries": 1} if n % 10 == 0 else None,
        )

    return bench_core.filled_pool(size, make, max_usage_count=10**9)


def fresh_pool(size: int) -> SessionPool:
    return SessionPool(max_pool_size=size, seed=1, session_options={"max_usage_count": 10**9})


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    return (time.perf_counter() - start) * 1e3, result


def repeats_for(size: int, repeat: int) -> int:
    return max(1, repeat if size <= 1_000 else (repeat + 1) // 2 if size <= 10_000 else 1)


def median_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


# -- file store ------------------------------------------------------------------


def bench_file(pool: SessionPool, size: int, store: FileStore) -> dict[str, float]:
    import json

    gc.collect()
    snap_ms, build = timed(pool.snapshot)  # the reactor thread's share
    build_ms, state = timed(build)
    json_ms, data = timed(lambda: json.dumps(state, separators=(",", ":"), allow_nan=False).encode())
    write_ms, _ = timed(lambda: store.save_bytes(KEY, data))
    state = data = None  # freed before the load is timed
    nbytes = store.path(KEY).stat().st_size
    gc.collect()
    parse_ms, loaded = timed(lambda: store.load(KEY))
    target = fresh_pool(size)
    restore_ms, restored = timed(lambda: target.restore(loaded))
    assert restored == size, (restored, size)
    # the whole save as the extension does it: FileStore.save(key, snapshot()()), for the total
    total_ms, _ = timed(lambda: store.save(KEY, pool.snapshot()()))
    return {
        "snap": snap_ms,
        "build": build_ms,
        "json": json_ms,
        "write": write_ms,
        "save": total_ms,
        "bytes": nbytes,
        "parse": parse_ms,
        "restore": restore_ms,
        "load": parse_ms + restore_ms,
    }


# -- Redis store -----------------------------------------------------------------


def bench_redis(pool: SessionPool, size: int, store: Any) -> dict[str, float]:
    client = store.client
    store.delete(KEY)  # not timed: the save below seeds an empty key
    gc.collect()
    before = int(client.info("memory")["used_memory"])
    build_ms, state = timed(pool.snapshot())
    save_ms, _ = timed(lambda: store.save(KEY, state))
    used = int(client.info("memory")["used_memory"]) - before
    state = None
    gc.collect()
    fetch_ms, loaded = timed(lambda: store.load(KEY))
    target = fresh_pool(size)
    restore_ms, restored = timed(lambda: target.restore(loaded))
    assert restored == size, (restored, size)
    return {
        "save": build_ms + save_ms,
        "store_save": save_ms,
        "bytes": used,
        "fetch": fetch_ms,
        "restore": restore_ms,
        "load": fetch_ms + restore_ms,
    }


def start_redis(directory: Path) -> Any:
    from tests.support.redis_server import RedisServer

    server = RedisServer(directory).start()
    try:
        import redis

        client = redis.Redis.from_url(server.url)
        client.config_set("appendfsync", "everysec")  # Redis's default with the append-only file on
        client.close()
    except Exception:
        server.stop()
        raise
    return server


# -- main ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated pool sizes")
    parser.add_argument("--repeat", type=int, default=5, help="runs at 1,000 sessions (half at 10,000, one above)")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis store")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_store-") as tmp:
        tmp_path = Path(tmp)
        store = FileStore(tmp_path / "files")
        server = None
        redis_store = None
        if not args.no_redis:
            import shutil

            if shutil.which("redis-server") is None:
                print("redis-server not found: skipping the Redis store")
            else:
                (tmp_path / "redis").mkdir()
                server = start_redis(tmp_path / "redis")
                from scrapy_sessionpool.stores.redis import RedisStore

                redis_store = RedisStore(server.url, prefix="bench")
        try:
            print(
                f"Python {platform.python_version()}, {os.cpu_count()} CPU(s); files in {tmp}"
                + (f"; redis-server {server.url} (appendonly yes, appendfsync everysec)" if server else "")
            )
            file_rows: dict[int, dict[str, float]] = {}
            redis_rows: dict[int, dict[str, float]] = {}
            for size in sizes:
                fill_ms, pool = timed(lambda size=size: filled_pool(size))
                n = repeats_for(size, args.repeat)
                file_rows[size] = median_rows([bench_file(pool, size, store) for _ in range(n)])
                if redis_store is not None:
                    redis_rows[size] = median_rows([bench_redis(pool, size, redis_store) for _ in range(n)])
                    redis_store.delete(KEY)
                print(f"  {size:,} sessions: filled in {fill_ms / 1e3:.1f} s, {n} run(s)", flush=True)
                del pool
                gc.collect()
        finally:
            if server is not None:
                if redis_store is not None and redis_store._client is not None:
                    redis_store._client.close()
                server.stop()

    print("\nFile store (median ms; 'reactor' is the part of a periodic save that runs on the reactor thread)")
    print(
        f"{'sessions':>9} {'reactor':>8} {'build':>7} {'JSON':>7} {'write+':>7} {'save':>8} "
        f"{'file':>8} {'bytes/':>7} {'read+':>8} {'restore':>8} {'load':>8}"
    )
    print(
        f"{'':>9} {'(snap.)':>8} {'':>7} {'':>7} {'fsync':>7} {'total':>8} "
        f"{'KiB':>8} {'session':>7} {'parse':>8} {'':>8} {'total':>8}"
    )
    for size, r in file_rows.items():
        print(
            f"{size:>9,} {r['snap']:>8.1f} {r['build']:>7.1f} {r['json']:>7.1f} {r['write']:>7.1f} "
            f"{r['save']:>8.1f} {r['bytes'] / 1024:>8,.0f} {r['bytes'] / size:>7.0f} {r['parse']:>8.1f} "
            f"{r['restore']:>8.1f} {r['load']:>8.1f}"
        )
    if redis_rows:
        print(
            "\nRedis store (median ms). RedisStore.save is the one-off seeding path; a crawl never saves"
            "\nwhole snapshots to Redis: its pool lives there and each change is written as it happens."
        )
        print(
            f"{'sessions':>9} {'save':>8} {'of which':>10} {'Redis':>8} {'bytes/':>7} {'fetch':>8} "
            f"{'restore':>8} {'load':>8}"
        )
        print(f"{'':>9} {'total':>8} {'Store.save':>10} {'MiB':>8} {'session':>7} {'(load)':>8} {'':>8} {'total':>8}")
        for size, r in redis_rows.items():
            print(
                f"{size:>9,} {r['save']:>8.1f} {r['store_save']:>10.1f} {r['bytes'] / 2**20:>8.1f} "
                f"{r['bytes'] / size:>7.0f} {r['fetch']:>8.1f} {r['restore']:>8.1f} {r['load']:>8.1f}"
            )
    if 10_000 in file_rows:
        snap = file_rows[10_000]["snap"]
        print(f"\nReactor time of a periodic save at 10,000 sessions: {snap:.1f} ms (aim: well under 100 ms)")
    print(f"(benchmark ran {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
