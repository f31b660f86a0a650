"""Workers benchmark: the demo shop crawled by one scrapy-redis worker and by two, side by side.

Run: ``make bench-workers`` (or ``python benchmarks/bench_workers.py [--items 8000] [--demo-items 400]
[--latency-items 3000] [--rounds 2] [--shops unthrottled,direct,direct-plain,latency,latency-plain,demo]``;
about 25 minutes on this machine).

Each round crawls the catalogue with 1 worker and with 2, in turns (``example_project/run_workers.py``:
``scrapy crawl catalogue_worker`` processes sharing scrapy-redis's queue and dupefilter and the
session pool in one redis-server this benchmark starts). Throughput is unique items per second
of the shop's busy time (its first request to its last, so process start-up and scrapy-redis's
idle wait before closing are left out). The shops:

- ``unthrottled``: no rate limits, no politeness delay, no slow pages: the crawl is bound by the
  machine's CPU (the shop, its proxies, Redis and the workers share it);
- ``direct``: ``unthrottled`` without the four forwarding proxies (the workers reach the shop
  themselves) and without session budgets;
- ``direct-plain``: ``direct`` without the session pool (plain Scrapy and scrapy-redis): the baseline;
- ``latency``, ``latency-plain``: ``direct`` and ``direct-plain`` with a remote shop's response time
  (every page takes 0.2 s): a worker is bound by its 16 concurrent requests, the queue in Redis backs
  up, and a second worker has work whenever it asks (the case for adding workers);
- ``proxied-plain``: ``direct-plain`` with every request through one of the proxies (``http_proxy``):
  what the shop and the proxies (Python threads in this process, a new connection to the shop for
  every request) let through, with no pool: the baseline of ``unthrottled``;
- ``demo``: the shop and the settings of ``make demo`` (per-exit rate limits, ``DOWNLOAD_DELAY``):
  bound by politeness, and a second worker doubles the load on each exit.

Each round also prints the CPU seconds of this process (the shop and its proxies: Python threads,
so one core at most) and of the workers, to tell what capped the figure. An idle scrapy-redis
worker looks for work every 5 s: the second worker joins a crawl up to 5 s late.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "example_project"))

from run_workers import local_redis, run  # noqa: E402

#: Seconds the ``latency`` shops take to answer each page.
LATENCY = 0.2

SHOPS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "unthrottled": (
        {"rate_limit": None, "exit_block_after": None, "slow": 0.0, "flaky": 0.0, "flagged": 0.0},
        {"DOWNLOAD_DELAY": 0, "CONCURRENT_REQUESTS_PER_DOMAIN": 16, "LOGSTATS_INTERVAL": 60},
    ),
    "demo": ({}, {}),
}
# without the proxies (the workers reach the shop themselves) and without session budgets, so that
# plain Scrapy gets every item too
_DIRECT = {**SHOPS["unthrottled"][0], "budget": (10**9, 10**9)}
SHOPS["direct"] = (_DIRECT, SHOPS["unthrottled"][1])
SHOPS["direct-plain"] = (_DIRECT, {**SHOPS["unthrottled"][1], "SESSIONPOOL_ENABLED": False})
SHOPS["proxied-plain"] = SHOPS["direct-plain"]
#: the shops whose every request goes through the first proxy, the plain Scrapy way
ONE_PROXY = {"proxied-plain"}
# ``direct`` with a remote shop's response time: a worker is bound by its CONCURRENT_REQUESTS, not by CPU
_LATENCY = {**_DIRECT, "latency": LATENCY, "per_page": 100}  # listings that keep the queue full
_CONCURRENT = {"CONCURRENT_REQUESTS": 16, "CONCURRENT_REQUESTS_PER_DOMAIN": 16}
SHOPS["latency"] = (_LATENCY, {**SHOPS["unthrottled"][1], **_CONCURRENT})
SHOPS["latency-plain"] = (_LATENCY, {**SHOPS["latency"][1], "SESSIONPOOL_ENABLED": False})


def _children_cpu() -> float:
    """CPU seconds of the worker processes that ended so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=8000, help="catalogue size of the unthrottled shops")
    parser.add_argument("--demo-items", type=int, default=400, help="catalogue size of the demo shop")
    parser.add_argument("--latency-items", type=int, default=3000, help="catalogue size of the latency shops")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shops", default=",".join(SHOPS), help=f"some of {','.join(SHOPS)}")
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; {args.rounds} rounds")
    results: dict[tuple[str, int], list[float]] = {}
    with local_redis() as redis_url, tempfile.TemporaryDirectory() as directory:
        for round_ in range(args.rounds):
            for shop in args.shops.split(","):
                shop_options, settings = SHOPS[shop]
                if shop.startswith(("direct", "latency")) or shop in ONE_PROXY:
                    no_proxies = Path(directory) / "no-proxies.txt"
                    no_proxies.write_text("# none\n")
                    settings = {**settings, "SESSIONPOOL_PROXIES": no_proxies}
                for workers in (1, 2) if round_ % 2 == 0 else (2, 1):
                    state = Path(directory) / f"{shop}-{workers}-{round_}"
                    state.mkdir()
                    served_cpu, workers_cpu = time.process_time(), _children_cpu()
                    items = (
                        args.demo_items
                        if shop == "demo"
                        else args.latency_items
                        if shop.startswith("latency")
                        else args.items
                    )
                    rows = run(workers, items, redis_url, state, 1, shop_options, settings, shop in ONE_PROXY)
                    served_cpu, workers_cpu = time.process_time() - served_cpu, _children_cpu() - workers_cpu
                    total = rows["all workers"]
                    rate = total["unique_items"] / max(total["busy_secs"], 1e-9)
                    results.setdefault((shop, workers), []).append(rate)
                    shares = " ".join(f"{row['items']}" for label, row in rows.items() if label != "all workers")
                    print(
                        f"round {round_ + 1} {shop:<12} {workers} worker(s): {total['unique_items']} items in "
                        f"{total['busy_secs']:.1f} s = {rate:.0f} items/s (per worker: {shares}); CPU s: "
                        f"shop and proxies {served_cpu:.1f}, workers {workers_cpu:.1f}",
                        flush=True,
                    )
    print(f"\n{'shop':<12} {'1 worker':>10} {'2 workers':>10} {'ratio':>7}   (items/s, medians)")
    for shop in args.shops.split(","):
        one, two = statistics.median(results[shop, 1]), statistics.median(results[shop, 2])
        ratios = [b / a for a, b in zip(results[shop, 1], results[shop, 2], strict=True)]
        print(
            f"{shop:<12} {one:>10.0f} {two:>10.0f} {two / one:>7.2f}   "
            f"(per round {', '.join(f'{r:.2f}' for r in ratios)})"
        )


if __name__ == "__main__":
    main()
