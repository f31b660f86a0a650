"""Block-matrix benchmark: the session pool against sites that block in every way the matrix knows.

Run: ``make bench-blocks`` (or ``python benchmarks/bench_blocks.py [--items N] [--cells SUBSTR ...]
[--modes pool,plain,crawlee] [--proxies 4] [--timeout S]``).

Each cell of ``tests.support.blocking.MATRIX`` (a block keyed on the session, the exit, a session
bound to its IP, or the site; signalled by 403, 429 or 503 with or without ``Retry-After``, a 200
captcha page, a 302 to a captcha page or a dropped connection; triggered by a hidden budget, a
rate, a bad reputation or a cap on new sessions) gets a fresh local site (``BlockSite``) and
``--proxies`` forwarding proxies on 127.0.0.1, and is crawled from its home page by:

* ``pool``: Scrapy with the add-on's defaults, the proxies, a ban pattern for the captcha page
  and a challenge pattern for the interstitial (and nothing else);
* ``plain``: the same spider with plain Scrapy (its cookie jar, its retries, no proxies);
* ``crawlee``: Crawlee for Python's ``ParselCrawler`` with its session pool and the same proxies,
  ``MemoryStorageClient``, the same patterns (a captcha page raises ``SessionError``); it runs in
  the virtualenv of ``--crawlee-python`` (``make bench-blocks`` makes ``.venv-crawlee``); an
  interstitial is fetched again with the same session (``Request.from_url(session_id=...)``), three
  times at most, as a Crawlee user would write it.

Each crawl runs in its own process and stops after ``--timeout`` seconds. The table gives per cell
and tool: items obtained (%), requests the site got per item obtained, sessions created, the
pool's blame counts (session/exit/site) and seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.blocking import BAN_TEXT, CHALLENGE_TEXT, MATRIX  # noqa: E402

MODES = ("pool", "plain", "crawlee")


# -- children: one crawl ------------------------------------------------------------


def run_scrapy(mode: str, site: str, proxies: list[str], timeout: float) -> dict[str, Any]:
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    from tests.support.blocksite import CatalogueSpider

    settings: dict[str, Any] = {
        "LOG_LEVEL": "ERROR",
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "CLOSESPIDER_TIMEOUT": timeout,
    }
    if mode == "pool":
        settings.update(
            {
                "ADDONS": {"scrapy_sessionpool.Addon": 300},
                "SESSIONPOOL_PROXIES": proxies,
                "SESSIONPOOL_BAN_PATTERNS": [BAN_TEXT],
                "SESSIONPOOL_CHALLENGE_PATTERNS": [CHALLENGE_TEXT],
                "SESSIONPOOL_PERSIST_STATE": False,
            }
        )
    marks: dict[str, Any] = {}

    def opened(spider: Any) -> None:
        marks["start"] = time.perf_counter()

    def closed(spider: Any, reason: str) -> None:
        marks["seconds"], marks["reason"] = time.perf_counter() - marks["start"], reason

    process = CrawlerProcess(settings)
    crawler = process.create_crawler(CatalogueSpider)
    crawler.signals.connect(opened, signal=signals.spider_opened)
    crawler.signals.connect(closed, signal=signals.spider_closed)

    def failed(failure: Any, response: Any, spider: Any) -> None:  # a block or challenge that got through
        marks.setdefault("spider_errors", []).append(str(failure.value)[:200])

    crawler.signals.connect(failed, signal=signals.spider_error)
    process.crawl(crawler, site=site)
    process.start()
    stats = crawler.stats.get_stats()
    return {
        "items": len(crawler.spider.items),
        "seconds": marks.get("seconds"),
        "reason": marks.get("reason"),
        "created": stats.get("sessionpool/created"),
        "blame": {b: stats.get(f"sessionpool/blame/{b}", 0) for b in ("session", "exit", "site")},
        "leaked": len(marks.get("spider_errors", [])),
    }


CRAWLEE_CHILD = r"""
import asyncio, json, re, sys, time
from crawlee import ConcurrencySettings, Request
from crawlee.crawlers import ParselCrawler, ParselCrawlingContext
from crawlee.errors import SessionError
from crawlee.proxy_configuration import ProxyConfiguration
from crawlee.storage_clients import MemoryStorageClient

site, proxies, timeout = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
ban, challenge = sys.argv[4], sys.argv[5]
items = set()

async def main():
    crawler = ParselCrawler(
        proxy_configuration=ProxyConfiguration(proxy_urls=proxies),
        use_session_pool=True,
        storage_client=MemoryStorageClient(),
        concurrency_settings=ConcurrencySettings(max_concurrency=16, desired_concurrency=16),
        max_request_retries=10,
        request_handler_timeout=__import__("datetime").timedelta(seconds=60),
    )

    @crawler.router.default_handler
    async def handler(context: ParselCrawlingContext) -> None:
        text = context.selector.get() or ""
        url = context.request.url
        if challenge in text:  # fetch it again with the same session, whose cookies now pass, 3 times at most
            tries = context.request.user_data.get("challenges", 0)
            if tries < 3:
                await context.add_requests([Request.from_url(url, session_id=context.session.id, always_enqueue=True,
                                                             user_data={"challenges": tries + 1})])
                return
            raise SessionError("challenge")
        if ban in text:
            raise SessionError("blocked")  # Crawlee retires the session and retries the request on another
        if "/item/" in url:
            if context.selector.css("h1.name::text").get():
                items.add(int(url.rsplit("/", 1)[1]))
            return
        await context.enqueue_links(selector="a.category, a.next, a.item")

    start = time.perf_counter()
    try:
        await asyncio.wait_for(crawler.run([site + "/"]), timeout)
        reason = "finished"
    except asyncio.TimeoutError:
        reason = "timeout"
    print(json.dumps({"items": len(items), "seconds": time.perf_counter() - start, "reason": reason,
                      "created": None, "blame": None, "leaked": 0}))

asyncio.run(main())
"""


# -- parent: sites, crawls, table -----------------------------------------------------


def crawl(
    mode: str, cell: str, items: int, proxies: int, timeout: float, crawlee_python: str | None, seed: int
) -> dict[str, Any]:
    from tests.support.blocksite import BlockSite
    from tests.support.proxy import ForwardingProxy

    site = BlockSite(cell, items=items, seed=seed).start()
    exits = [ForwardingProxy(f"proxy{i}").start() for i in range(proxies)]
    urls = [p.url for p in exits]
    try:
        if mode == "crawlee":
            if not crawlee_python:
                return {"mode": mode, "error": "no --crawlee-python"}
            cmd = [
                crawlee_python,
                "-c",
                CRAWLEE_CHILD,
                site.url,
                json.dumps(urls),
                str(timeout),
                BAN_TEXT,
                CHALLENGE_TEXT,
            ]
        else:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--run",
                mode,
                "--site",
                site.url,
                "--proxy-urls",
                json.dumps(urls),
                "--timeout",
                str(timeout),
            ]
        try:
            done = subprocess.run(
                cmd,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=timeout + 120,
                env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'example_project'}"},
            )
        except subprocess.TimeoutExpired:
            return {"mode": mode, "error": f"did not close within {timeout + 120:.0f} s"}
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            return {
                "mode": mode,
                "error": f"exit {done.returncode}: " + " | ".join(done.stderr.strip().splitlines()[-3:]),
            }
        result = json.loads(lines[-1])
        result.update(mode=mode, requests=site.model.counts["requests"], served=len(site.model.served), total=items)
        return result
    finally:
        for server in (site, *exits):
            server.stop()


def row(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"{result['mode']:>8}  error: {result['error'][:90]}"
    obtained = result["items"]
    per_item = result["requests"] / obtained if obtained else float("inf")
    blame = result.get("blame") or {}
    blames = f"{blame.get('session', 0)}/{blame.get('exit', 0)}/{blame.get('site', 0)}" if blame else "-"
    created = "-" if result.get("created") is None else str(result["created"])
    leaked = f"  {result['leaked']} blocks reached the spider" if result.get("leaked") else ""
    return (
        f"{result['mode']:>8}  {100 * obtained / result['total']:6.1f}%  {per_item:8.2f}  {created:>7}  "
        f"{blames:>9}  {result['seconds'] or 0:7.1f}  {result['reason']}{leaked}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--cells", nargs="*", default=[], help="only cells whose name contains one of these")
    parser.add_argument("--modes", default="pool,plain,crawlee")
    parser.add_argument("--proxies", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300.0, help="each crawl stops after this many seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crawlee-python", default=str(ROOT / ".venv-crawlee" / "bin" / "python"))
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    parser.add_argument("--run", choices=("pool", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--site", help=argparse.SUPPRESS)
    parser.add_argument("--proxy-urls", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_scrapy(args.run, args.site, json.loads(args.proxy_urls), args.timeout)))
        return

    modes = [m for m in args.modes.split(",") if m]
    if "crawlee" in modes and not Path(args.crawlee_python).exists():
        print(f"(no {args.crawlee_python}: Crawlee is left out; make bench-blocks installs it)")
        modes.remove("crawlee")
    cells = [c.name for c in MATRIX if not args.cells or any(part in c.name for part in args.cells)]
    print(
        f"{len(cells)} cells x {', '.join(modes)}; {args.items} items, {args.proxies} proxies, "
        f"stop after {args.timeout:.0f} s\n"
    )
    print(f"{'':8}  {'items':>7}  {'req/item':>8}  {'created':>7}  {'s/e/site':>9}  {'seconds':>7}")
    results = []
    for cell in cells:
        print(cell, flush=True)
        for mode in modes:
            result = crawl(mode, cell, args.items, args.proxies, args.timeout, args.crawlee_python, args.seed)
            result["cell"] = cell
            results.append(result)
            print(row(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    summary(results, modes)


def summary(results: list[dict[str, Any]], modes: list[str]) -> None:
    print("\nSummary (cells where the tool got >= 99% of items at <= 1.15 requests per item; worst cells):")
    for mode in modes:
        mine = [r for r in results if r["mode"] == mode and "error" not in r]
        if not mine:
            continue
        good = [r for r in mine if r["items"] >= 0.99 * r["total"] and r["requests"] <= 1.15 * max(r["items"], 1)]
        worst_items = min(mine, key=lambda r: r["items"])
        worst_req = max(mine, key=lambda r: r["requests"] / max(r["items"], 1))
        print(
            f"  {mode:>8}: {len(good)}/{len(mine)} cells; fewest items {worst_items['items']} "
            f"({worst_items['cell']}); most requests per item "
            f"{worst_req['requests'] / max(worst_req['items'], 1):.2f} ({worst_req['cell']}); "
            f"seconds in all {sum(r['seconds'] or 0 for r in mine):.0f}"
        )


if __name__ == "__main__":
    main()
