"""The default pool size, measured on the guarded demo shop: the same catalogue crawl with
several values of SESSIONPOOL_MAX_POOL_SIZE, side by side.

Run: ``make bench-pool-size`` (or ``python benchmarks/bench_pool_size.py [--items 500] [--sizes 4,16,64,1000]``).
16 is the default (``CONCURRENT_REQUESTS``); 1000 is Crawlee's default pool.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"
sys.path.insert(0, str(EXAMPLE))

import run_demo  # noqa: E402
from demo.net import ForwardingProxy  # noqa: E402
from demo.shop import DemoShop  # noqa: E402


def measure(size: int, items: int, seed: int, state: Path) -> dict[str, object]:
    shop = DemoShop(items=items, seed=seed).start(0)
    proxies = [ForwardingProxy(f"proxy{i}").start(0) for i in range(run_demo.PROXY_COUNT)]
    try:
        (state / "proxies.txt").write_text("".join(f"{p.url}\n" for p in proxies))
        label = f"size-{size}"
        started = time.monotonic()
        process = run_demo.crawl(
            state,
            "catalogue",
            shop.url,
            {
                "SESSIONPOOL_PROXIES": state / "proxies.txt",
                "SESSIONPOOL_PERSIST_STATE": False,
                "SESSIONPOOL_MAX_POOL_SIZE": size,
            },
            label,
            quiet=True,
        )
        return run_demo.report(state, label, shop, run_demo.finish(state, process, label, started))
    finally:
        for server in (shop, *proxies):
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sizes", default="4,16,64,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        rows = {size: measure(size, args.items, args.seed, Path(directory)) for size in sizes}
    keys = [
        "items obtained",
        "requests per item",
        "sessions created",
        "sessions retired",
        "blocks absorbed",
        "exit cool-downs",
        "seconds",
    ]
    print(f"\nDemo shop, {args.items} items, 4 proxies; columns: SESSIONPOOL_MAX_POOL_SIZE (16 is the default)")
    print(" " * 20 + "".join(f"{size:>22}" for size in sizes))
    for key in keys:
        print(f"{key:<20}" + "".join(f"{rows[size][key]!s:>22}" for size in sizes))


if __name__ == "__main__":
    main()
