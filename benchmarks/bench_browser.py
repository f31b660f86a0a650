"""Browser benchmark: a site behind a JavaScript challenge, crawled three ways, side by side.

Run: ``make bench-browser`` (or ``python benchmarks/bench_browser.py [--items 200] [--proxies 4]``).

The site (``tests.support.challenge_site.ChallengeSite``, on 127.0.0.1) answers every page with a
challenge whose script computes a token, stores it as a cookie bound to the exit and User-Agent, and
reloads; ``--proxies`` local forwarding proxies stand for exits. Each crawl (in its own process) fetches
``/items/0`` .. ``/items/N-1``:

* ``plain``: plain Scrapy through the proxies (round robin): nothing gets past the challenge;
* ``render``: every request rendered by scrapy-playwright in headless Chromium (Debian's ``chromium``),
  its default context, through one proxy (a browser launched with it);
* ``pool``: the session pool with ``SESSIONPOOL_BROWSER_ESCALATION``: a session passes the challenge
  once in its own browser context, then goes on over plain HTTP with the cookie it earned.

Printed: items obtained, browser renders (pages Chromium opened), challenges the site saw solved, and
items per second (wall time of the crawl), with the pool's speed-up over ``render``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODES = ("plain", "render", "pool")
CHALLENGE = r"Just a moment\.\.\."


def child(mode: str, site: str, proxies: list[str], items: int, chromium: str) -> dict[str, Any]:
    import scrapy
    from scrapy.crawler import CrawlerProcess

    settings: dict[str, Any] = {
        "LOG_LEVEL": "ERROR",
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "RETRY_ENABLED": False,
        "CONCURRENT_REQUESTS": 8,
        "CLOSESPIDER_TIMEOUT": 300,
    }
    browser = {
        "DOWNLOAD_HANDLERS": {
            "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
            "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
        },
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": chromium, "headless": True},
    }
    meta: dict[str, Any] = {}
    if mode == "render":
        settings.update(browser)
        settings["PLAYWRIGHT_LAUNCH_OPTIONS"] = {
            **browser["PLAYWRIGHT_LAUNCH_OPTIONS"],
            "proxy": {"server": proxies[0]},
        }
        meta = {"playwright": True}
    elif mode == "pool":
        settings.update(browser)
        settings.update(
            {
                "ADDONS": {"scrapy_sessionpool.Addon": 300},
                "SESSIONPOOL_PROXIES": proxies,
                "SESSIONPOOL_MAX_POOL_SIZE": len(proxies),
                "SESSIONPOOL_PERSIST_STATE": False,
                "SESSIONPOOL_CHALLENGE_PATTERNS": [CHALLENGE],
                "SESSIONPOOL_BROWSER_ESCALATION": True,
                "SESSIONPOOL_MAX_CHALLENGE_REFETCHES": 0,
            }
        )
    marks: dict[str, Any] = {"items": 0}

    class Items(scrapy.Spider):
        name = "items"

        async def start(self):
            for n in range(items):
                request_meta = dict(meta)
                if mode == "plain":
                    request_meta["proxy"] = proxies[n % len(proxies)]
                yield scrapy.Request(f"{site}/items/{n}", meta=request_meta, dont_filter=True)

        def parse(self, response):
            if response.css("h1.name"):
                marks["items"] += 1

    from scrapy import signals

    process = CrawlerProcess(settings)
    crawler = process.create_crawler(Items)

    def opened(spider: Any) -> None:
        marks["start"] = time.perf_counter()

    def closed(spider: Any, reason: str) -> None:
        marks["seconds"] = time.perf_counter() - marks["start"]

    crawler.signals.connect(opened, signal=signals.spider_opened)
    crawler.signals.connect(closed, signal=signals.spider_closed)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats()
    return {
        "items": marks["items"],
        "seconds": marks["seconds"],
        "pages": stats.get("playwright/page_count", 0),
        "escalations": stats.get("sessionpool/browser/escalations", 0),
        "sessions": stats.get("sessionpool/created", 0),
        "pool": {k.removeprefix("sessionpool/"): v for k, v in stats.items() if k.startswith("sessionpool/")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--proxies", type=int, default=4)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--site", help=argparse.SUPPRESS)
    parser.add_argument("--proxy-urls", help=argparse.SUPPRESS)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--verbose", action="store_true", help="print the pool's stats")
    args = parser.parse_args()
    if args.run:
        print(json.dumps(child(args.run, args.site, args.proxy_urls.split(","), args.items, args.chromium)))
        return

    from tests.support.challenge_site import ChallengeSite
    from tests.support.proxy import ForwardingProxy

    rows = []
    for mode in args.modes.split(","):
        site = ChallengeSite(items=args.items, clearance_secs=600).start()
        proxies = [ForwardingProxy(f"proxy{i}").start() for i in range(args.proxies)]
        try:
            command = [sys.executable, __file__, "--run", mode, "--site", site.url("").rstrip("/")]
            command += ["--proxy-urls", ",".join(p.url for p in proxies), "--items", str(args.items)]
            command += ["--chromium", args.chromium]
            out = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
            if out.returncode != 0:
                print(f"{mode}: ERROR\n{out.stderr[-2000:]}")
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result.update(mode=mode, solved=len(site.solves()))
            rows.append(result)
        finally:
            site.stop()
            for proxy in proxies:
                proxy.stop()
    print(f"\n{args.items} items behind a JavaScript challenge, {args.proxies} proxies (exits)")
    print(f"{'mode':<8} {'items':>10} {'renders':>8} {'solved':>7} {'sessions':>9} {'items/s':>8} {'seconds':>8}")
    rate = {}
    for row in rows:
        rate[row["mode"]] = row["items"] / row["seconds"] if row["seconds"] else 0.0
        print(
            f"{row['mode']:<8} {row['items']:>5}/{args.items:<4} {row['pages']:>8} {row['solved']:>7} "
            f"{row['sessions'] or '-':>9} {rate[row['mode']]:>8.1f} {row['seconds']:>8.1f}"
        )
    if args.verbose:
        for row in rows:
            if row["pool"]:
                print(row["mode"], json.dumps(row["pool"], sort_keys=True))
    if rate.get("render") and "pool" in rate:
        print(f"\npool / render items per second: {rate['pool'] / rate['render']:.1f}x   (aim: >= 5x)")


if __name__ == "__main__":
    main()
