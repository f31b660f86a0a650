"""The end-to-end demo: the guarded shop and its proxies, a crawl with the session pool, and the
same crawl without it, side by side. Run it twice: the second run resumes the saved pool.

    python run_demo.py [--items 500] [--no-compare] [--no-accounts] [--fresh] [--state DIR]

Then the ``account`` spider signs in to the shop's member area: each session of its pool logs in
with an account of its own (``init_session``) before it fetches a page.

Everything runs on 127.0.0.1 and stops when the demo ends. State lives in ``.demo/`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROXY_COUNT = 4

sys.path.insert(0, str(HERE))

from demo.net import ForwardingProxy  # noqa: E402
from demo.shop import DemoShop  # noqa: E402


def start_servers(state: Path, items: int, seed: int, **shop_options: Any) -> tuple[DemoShop, list[ForwardingProxy]]:
    """The shop and its proxies, on the ports of the last run when they are free (saved sessions keep
    their proxy URLs, so the second run needs the same ones)."""
    ports_file = state / "ports.json"
    try:
        ports = json.loads(ports_file.read_text())
    except (OSError, ValueError):
        ports = {}
    shop = _start(lambda: DemoShop(items=items, seed=seed, **shop_options), ports.get("shop", 0))
    proxies = [
        _start(lambda i=i: ForwardingProxy(f"proxy{i}"), port)
        for i, port in enumerate((ports.get("proxies") or [0] * PROXY_COUNT)[:PROXY_COUNT])
    ]
    ports_file.write_text(json.dumps({"shop": shop.port, "proxies": [p.port for p in proxies]}))
    return shop, proxies


def _start(make: Any, port: int) -> Any:
    try:
        return make().start(port)
    except OSError:  # taken since the last run: any free port will do
        return make().start(0)


def crawl(
    state: Path,
    name: str,
    site: str,
    settings: dict[str, Any],
    label: str,
    quiet: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``scrapy crawl`` in its own process (its output shown as it comes, or kept in a log file),
    with ``env`` added to its environment."""
    stats_file = state / f"stats-{label}.json"
    stats_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        name,
        "-a",
        f"site={site}",
        "-O",
        str(state / f"items-{label}.jsonl"),
        "-s",
        "EXTENSIONS=" + json.dumps({"demo.statsfile.StatsFile": 0}),
        "-s",
        f"STATSFILE={stats_file}",
    ]
    for key, value in settings.items():
        command += ["-s", f"{key}={value}"]
    output = open(state / f"{label}.log", "wb") if quiet else None  # noqa: SIM115 - the crawl process writes it
    print(f"\n=== {label}: scrapy crawl {name}" + (f" (log: {output.name})" if output else "") + " ===", flush=True)
    return subprocess.Popen(
        command, cwd=HERE, stdout=output, stderr=output, env={**os.environ, **(env or {}), "PYTHONPATH": str(HERE)}
    )


def finish(state: Path, process: subprocess.Popen[bytes], label: str, started: float) -> dict[str, Any]:
    if process.wait() != 0:
        sys.exit(f"The {label} crawl failed (exit code {process.returncode})")
    stats = json.loads((state / f"stats-{label}.json").read_text())
    stats["elapsed"] = time.monotonic() - started
    return stats


def report(state: Path, label: str, shop: DemoShop, stats: dict[str, Any]) -> dict[str, Any]:
    served = shop.summary()
    with open(state / f"items-{label}.jsonl", encoding="utf-8") as f:
        items = sum(1 for _ in f)
    blocks = sum(served["blocks"].values()) + served["rate_limited"] + served["exit_blocked"]
    return {
        "items obtained": f"{items} / {served['items']} ({100 * items / served['items']:.1f}%)",
        "requests to the shop": served["requests"],
        "requests per item": f"{served['requests'] / max(items, 1):.2f}",
        "sessions created": stats.get("sessionpool/created", "-"),
        "sessions restored": stats.get("sessionpool/restored", "-"),
        "sessions retired": stats.get("sessionpool/retired", "-"),
        "blocks absorbed": blocks,
        "exit cool-downs": stats.get("sessionpool/proxy_blocks", "-"),
        "seconds": f"{stats['elapsed']:.0f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=500, help="catalogue size (default 500)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-compare", action="store_true", help="skip the crawl without the pool")
    parser.add_argument("--fresh", action="store_true", help="forget the saved pool first")
    parser.add_argument("--no-accounts", action="store_true", help="skip the signed-in crawl")
    parser.add_argument("--state", type=Path, default=HERE / ".demo", help="where the demo keeps its files")
    args = parser.parse_args()

    state = args.state.resolve()
    pool_dir = state / "sessionpool"
    state.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        shutil.rmtree(pool_dir, ignore_errors=True)
    resuming = (pool_dir / "catalogue.json").exists()
    shop, proxies = start_servers(state, args.items, args.seed)
    servers: list[Any] = [shop, *proxies]
    try:
        (state / "proxies.txt").write_text("".join(f"{p.url}\n" for p in proxies))
        print(f"Demo shop at {shop.url} ({args.items} items), proxies: {', '.join(p.url for p in proxies)}")
        started = time.monotonic()
        if not args.no_compare:  # the same crawl without the pool, at the same time, against its own shop
            plain_shop = DemoShop(items=args.items, seed=args.seed).start(0)
            servers.append(plain_shop)
            plain = crawl(state, "catalogue", plain_shop.url, {"SESSIONPOOL_ENABLED": False}, "without-pool", True)
        pooled = finish(
            state,
            crawl(
                state,
                "catalogue",
                shop.url,
                {
                    "SESSIONPOOL_PROXIES": state / "proxies.txt",
                    "SESSIONPOOL_PERSIST_STATE_STORE": pool_dir,
                },
                "with-pool",
            ),
            "with-pool",
            started,
        )
        rows = {"with the session pool": report(state, "with-pool", shop, pooled)}
        if not args.no_compare:
            print("\n(waiting for the crawl without the pool to finish)", flush=True)
            rows["plain Scrapy"] = report(
                state, "without-pool", plain_shop, finish(state, plain, "without-pool", started)
            )
    finally:
        for server in servers:
            server.stop()

    print("\n=== Summary ===")
    labels = list(rows)
    width = max(len(k) for k in next(iter(rows.values())))
    print(" " * width + "".join(f"  {label:>22}" for label in labels))
    for key in rows[labels[0]]:
        print(f"{key:<{width}}" + "".join(f"  {rows[label][key]!s:>22}" for label in labels))
    saved = pool_dir / "catalogue.json"
    print(f"\nThe pool was saved to {saved}.")
    if resuming:
        print(
            f"This run resumed the pool saved by the previous one ({pooled.get('sessionpool/restored', 0)} "
            "sessions restored, with their cookies and proxies)."
        )
    else:
        print("Run the demo again: the next run resumes this pool instead of starting new sessions.")
    if not args.no_accounts:
        signed_in(state, args.items, args.seed)


ACCOUNTS = {f"customer{i}": f"demo-password-{i}" for i in range(6)}


def signed_in(state: Path, items: int, seed: int) -> None:
    """The ``account`` spider on a shop with a member area: six accounts, four sessions at most."""
    accounts_file = state / "accounts.jsonl"
    accounts_file.write_text("".join(json.dumps({"username": u, "password": p}) + "\n" for u, p in ACCOUNTS.items()))
    shop = DemoShop(items=items, seed=seed, accounts=ACCOUNTS).start(0)
    proxies = [ForwardingProxy(f"proxy{i}").start() for i in range(PROXY_COUNT)]
    try:
        (state / "proxies-accounts.txt").write_text("".join(f"{p.url}\n" for p in proxies))
        started = time.monotonic()
        settings = {
            "SESSIONPOOL_PROXIES": state / "proxies-accounts.txt",
            "SESSIONPOOL_ACCOUNTS": accounts_file,
            "SESSIONPOOL_PERSIST_STATE": False,
        }
        stats = finish(state, crawl(state, "account", shop.url, settings, "signed-in", True), "signed-in", started)
        served = shop.summary()
    finally:
        for server in (shop, *proxies):
            server.stop()
    with open(state / "items-signed-in.jsonl", encoding="utf-8") as f:
        products = [json.loads(line) for line in f]
    print("\n=== Signed in: scrapy crawl account (a category, each session logged in with its own account) ===")
    rows = {
        "items with member prices": sum(1 for p in products if p.get("member_price")),
        "accounts": len(ACCOUNTS),
        "logins": served["logins"],
        "sessions retired (blocked)": stats.get("sessionpool/retired", 0),
        "pages asked before a login": served["requests_before_login"],
        "sessions logged out by another login": served["kicked"],
        "seconds": f"{stats['elapsed']:.0f}",
    }
    width = max(map(len, rows))
    for key, value in rows.items():
        print(f"{key:<{width}}  {value!s:>8}")


if __name__ == "__main__":
    main()
