"""Several scrapy-redis workers crawl the demo shop together: one queue, one dupefilter, one
session pool, all in one Redis. Prints what each worker did.

    python run_workers.py [--workers 2] [--items 500] [--redis redis://127.0.0.1:6379/0]

Without ``--redis`` it starts a redis-server of its own on a free port (``redis-server`` must be
installed). The workers are ``scrapy crawl catalogue_worker`` processes; the same command on
other hosts, with the same ``REDIS_URL``, would join the crawl.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run_demo import crawl, start_servers  # noqa: E402


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """A throw-away redis-server on a free port of 127.0.0.1."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: pass --redis URL, or apt-get install redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        server = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", directory, "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait(timeout=10)


def run(
    workers: int,
    items: int,
    redis_url: str,
    state: Path,
    seed: int,
    shop_options: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    one_proxy: bool = False,
) -> dict[str, dict[str, Any]]:
    """Crawl the demo shop (made with ``shop_options``) with ``workers`` processes; a row per worker
    and one for all of them (``busy_secs``: the shop's first request to its last). ``one_proxy``: every
    request through the first proxy, the plain Scrapy way (``http_proxy`` in the workers' environment,
    which Scrapy's ``HttpProxyMiddleware`` reads)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for pattern in ("catalogue_worker:*", "sessionpool:{catalogue_worker}*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    shop, proxies = start_servers(state, items, seed, **(shop_options or {}))
    try:
        (state / "proxies.txt").write_text("".join(f"{p.url}\n" for p in proxies))
        settings = {
            "REDIS_URL": redis_url,
            "SESSIONPOOL_PROXIES": state / "proxies.txt",
            "LOG_LEVEL": "WARNING",
            **(settings or {}),
        }
        env = {"http_proxy": proxies[0].url, "no_proxy": ""} if one_proxy else None
        started = time.monotonic()
        processes = {
            f"worker-{n}": crawl(state, "catalogue_worker", shop.url, settings, f"worker-{n}", quiet=True, env=env)
            for n in range(1, workers + 1)
        }
        deadline = time.monotonic() + (60 if settings.get("SESSIONPOOL_ENABLED", True) else 3)
        while client.scard("sessionpool:{catalogue_worker}:procs") < workers:  # each pool's first heartbeat
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes.values()):
                break  # (a worker that failed is reported below; without the pool: a few seconds to start)
            time.sleep(0.05)
        client.rpush("catalogue_worker:start_urls", f"{shop.url}/")  # every worker is up: the crawl begins
        rows = {}
        for label, process in processes.items():
            if process.wait() != 0:
                sys.exit(f"{label} failed (exit code {process.returncode}); see {state / (label + '.log')}")
            stats = json.loads((state / f"stats-{label}.json").read_text())
            with open(state / f"items-{label}.jsonl", encoding="utf-8") as f:
                numbers = [json.loads(line)["number"] for line in f]
            rows[label] = {
                "items": len(numbers),
                "requests": stats.get("downloader/request_count", 0),
                "sessions created": stats.get("sessionpool/created", 0),
                "sessions retired": stats.get("sessionpool/retired", 0),
                "numbers": numbers,
            }
        elapsed = time.monotonic() - started
        served = shop.summary()
    finally:
        shop.stop()
        for proxy in proxies:
            proxy.stop()
    everything = [n for row in rows.values() for n in row.pop("numbers")]
    twice = len(everything) - len(set(everything))
    rows["all workers"] = {
        "items": f"{len(set(everything))} / {served['items']}" + (f" ({twice} twice!)" if twice else ""),
        "requests": sum(row["requests"] for row in rows.values()),
        "sessions created": sum(row["sessions created"] for row in rows.values()),
        "sessions retired": sum(row["sessions retired"] for row in rows.values()),
        "seconds": f"{elapsed:.1f}",
        "busy_secs": served["busy_secs"],
        "unique_items": len(set(everything)),
    }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis", help="a Redis URL (default: start a redis-server of its own)")
    parser.add_argument("--state", type=Path, default=HERE / ".demo-workers", help="where the demo keeps its files")
    args = parser.parse_args()
    state = args.state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(args.redis) if args.redis else local_redis() as redis_url:
        print(f"{args.workers} workers, one queue and one session pool in Redis at {redis_url}", flush=True)
        rows = run(args.workers, args.items, redis_url, state, args.seed)
    for row in rows.values():
        row.pop("busy_secs", None)
        row.pop("unique_items", None)
    labels = list(rows)
    keys = list(rows["all workers"])
    width = max(map(len, keys))
    print("\n" + " " * width + "".join(f"  {label:>14}" for label in labels))
    for key in keys:
        print(f"{key:<{width}}" + "".join(f"  {rows[label].get(key, '')!s:>14}" for label in labels))


if __name__ == "__main__":
    main()
