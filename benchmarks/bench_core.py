"""Core pool benchmark: cycle cost, state size and time, memory per session.

Run: ``make bench-core`` (or ``python benchmarks/bench_core.py [--cycles N]``).
Each pool is filled to its size first; every session carries two cookies.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc

from scrapy_sessionpool import SessionPool

SIZES = (100, 1_000, 10_000, 100_000)


def filled_pool(size: int, create_session_function=None, **options) -> SessionPool:
    """A pool of ``size`` sessions, each used once and holding two cookies."""
    pool = SessionPool(
        max_pool_size=size, seed=1, session_options=options or None, create_session_function=create_session_function
    )
    for _ in range(size):
        s = pool.get_session()
        s.set_cookie("sid", s.id, domain="shop.example", expires=4_000_000_000)
        s.set_cookie("pref", "eur", domain=".shop.example")
        s.mark_good()
    return pool


def cycle_us(pool: SessionPool, cycles: int) -> float:
    get = pool.get_session
    start = time.perf_counter()
    for _ in range(cycles):
        get().mark_good()
    return (time.perf_counter() - start) / cycles * 1e6


def memory_per_session(size: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    pool = filled_pool(size)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del pool
    return (after - before) / size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=200_000)
    args = parser.parse_args()
    print(f"{'sessions':>9} {'cycle us':>9} {'cycle us':>10} {'state ms':>9} {'state KiB':>10} {'B/session':>10}")
    print(f"{'':>9} {'(steady)':>9} {'(churn)':>10} {'(+json)':>9} {'':>10} {'(2 cookies)':>10}")
    for size in SIZES:
        steady = cycle_us(filled_pool(size, max_usage_count=10**9), args.cycles)
        churn = cycle_us(filled_pool(size), args.cycles)  # defaults: retire after 50 uses
        pool = filled_pool(size)
        start = time.perf_counter()
        blob = json.dumps(pool.get_state(), separators=(",", ":"))
        state_ms = (time.perf_counter() - start) * 1e3
        mem = memory_per_session(size)
        print(f"{size:>9,} {steady:>9.2f} {churn:>10.2f} {state_ms:>9.1f} {len(blob) / 1024:>10.0f} {mem:>10.0f}")


if __name__ == "__main__":
    main()
