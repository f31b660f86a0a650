"""The browser demo: the guarded shop behind a JavaScript challenge, and its proxies; the ``browser``
spider with the session pool (each session passes the challenge once in its own browser context, then
goes on over HTTP), and the same crawl with plain Scrapy, side by side.

    python run_browser.py [--items 200] [--state DIR]

Needs scrapy-playwright and Chromium (``apt-get install chromium``). Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from demo.net import ForwardingProxy  # noqa: E402
from demo.shop import DemoShop  # noqa: E402
from run_demo import PROXY_COUNT, crawl, finish  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200, help="catalogue size (default 200)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--state", type=Path, default=HERE / ".demo-browser", help="where the demo keeps its files")
    args = parser.parse_args()
    state = args.state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    shop = DemoShop(items=args.items, seed=args.seed, challenge=True).start(0)
    plain_shop = DemoShop(items=args.items, seed=args.seed, challenge=True).start(0)
    proxies = [ForwardingProxy(f"proxy{i}").start() for i in range(PROXY_COUNT)]
    servers: list[Any] = [shop, plain_shop, *proxies]
    try:
        (state / "proxies.txt").write_text("".join(f"{p.url}\n" for p in proxies))
        print(f"Demo shop behind a JavaScript challenge at {shop.url} ({args.items} items)")
        started = time.monotonic()
        plain = crawl(state, "catalogue", plain_shop.url, {"SESSIONPOOL_ENABLED": False}, "plain", True)
        settings = {"SESSIONPOOL_PROXIES": state / "proxies.txt", "SESSIONPOOL_PERSIST_STATE": False}
        pooled = finish(state, crawl(state, "browser", shop.url, settings, "browser", True), "browser", started)
        plain_stats = finish(state, plain, "plain", started)
        rows = {
            "with the pool and its browsers": _row(state, "browser", shop, pooled),
            "plain Scrapy": _row(state, "plain", plain_shop, plain_stats),
        }
    finally:
        for server in servers:
            server.stop()
    print("\n=== Summary ===")
    width = max(len(k) for k in next(iter(rows.values())))
    print(" " * width + "".join(f"  {label:>30}" for label in rows))
    for key in next(iter(rows.values())):
        print(f"{key:<{width}}" + "".join(f"  {row[key]!s:>30}" for row in rows.values()))


def _row(state: Path, label: str, shop: DemoShop, stats: dict[str, Any]) -> dict[str, Any]:
    served = shop.summary()
    with open(state / f"items-{label}.jsonl", encoding="utf-8") as f:
        items = sum(1 for _ in f)
    return {
        "items obtained": f"{items} / {served['items']}",
        "challenge pages served": served["challenges"],
        "browser renders": stats.get("sessionpool/browser/renders", 0),
        "sessions created": stats.get("sessionpool/created", "-"),
        "seconds": f"{stats['elapsed']:.0f}",
    }


if __name__ == "__main__":
    main()
