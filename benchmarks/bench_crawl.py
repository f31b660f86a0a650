"""Crawl benchmark: Scrapy throughput with the session pool middleware on and off.

Run: ``make bench-crawl`` (or ``python benchmarks/bench_crawl.py [--pages N] [--repeat R]``).
The local test site (``tests.support.site``, ``--budget none`` so nothing is
blocked) runs in its own process; each crawl of ``/items/0`` .. ``/items/N-1``
runs in a fresh Python process (a Twisted reactor cannot restart), "off" and
"on" alternating so that both share the machine's noise. "off" is plain Scrapy
with its CookiesMiddleware; "on" enables the middleware and the extension with
100 sessions, each getting its own ``sid`` cookie from the site. Throughput is
pages per second of wall time from spider_opened to spider_closed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "example_project"))  # the demo's local servers, which tests.support reuses

MODES = ("off", "on")
COMMON_SETTINGS = {
    "CONCURRENT_REQUESTS": 32,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 32,
    "LOG_LEVEL": "WARNING",
    "TELNETCONSOLE_ENABLED": False,
    "ROBOTSTXT_OBEY": False,
    "RETRY_ENABLED": False,
}
MODE_SETTINGS = {
    "off": {"SESSIONPOOL_ENABLED": False},
    "on": {
        "SESSIONPOOL_ENABLED": True,
        "DOWNLOADER_MIDDLEWARES": {"scrapy_sessionpool.SessionPoolMiddleware": 650},
        "EXTENSIONS": {"scrapy_sessionpool.SessionPoolExtension": 500},
        "SESSIONPOOL_MAX_POOL_SIZE": 100,
        "SESSIONPOOL_MAX_USAGE_COUNT": 1000,
    },
}
CHILD_TIMEOUT = 300.0


# -- child: one crawl ------------------------------------------------------------


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_crawl(mode: str, base: str, pages: int, site_pid: int | None, profile: str | None) -> dict:
    import scrapy
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    class BenchSpider(scrapy.Spider):
        name = "bench"

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.count = 0
            self.with_cookie = 0
            self.cookies: set[bytes] = set()

        async def start(self):
            url = f"{base}/items/"
            for n in range(pages):
                yield scrapy.Request(f"{url}{n}", dont_filter=True)

        def parse(self, response):
            self.count += 1
            cookie = response.request.headers.get(b"Cookie")
            if cookie:
                self.with_cookie += 1
                self.cookies.add(cookie)

    marks: dict[str, float] = {}

    def opened(spider):
        marks["wall"] = time.perf_counter()
        marks["cpu"] = time.process_time()
        marks["site_cpu"] = _cpu_seconds(site_pid) if site_pid else None

    def closed(spider, reason):
        marks["wall"] = time.perf_counter() - marks["wall"]
        marks["cpu"] = time.process_time() - marks["cpu"]
        site_cpu = _cpu_seconds(site_pid) if site_pid else None
        marks["site_cpu"] = None if site_cpu is None or marks["site_cpu"] is None else site_cpu - marks["site_cpu"]
        marks["reason"] = reason

    process = CrawlerProcess({**COMMON_SETTINGS, **MODE_SETTINGS[mode]})
    crawler = process.create_crawler(BenchSpider)
    crawler.signals.connect(opened, signal=signals.spider_opened)
    crawler.signals.connect(closed, signal=signals.spider_closed)
    process.crawl(crawler)
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(process.start)
        profiler.dump_stats(profile)
    else:
        process.start()

    spider = crawler.spider
    stats = crawler.stats.get_stats()
    wall = marks.get("wall", 0.0)
    errors = []
    if spider.count != pages:
        errors.append(f"{spider.count} responses parsed, expected {pages}")
    if stats.get("response_received_count", 0) != pages:
        errors.append(f"response_received_count {stats.get('response_received_count', 0)}, expected {pages}")
    if stats.get("downloader/response_status_count/200", 0) != pages:
        errors.append(f"{stats.get('downloader/response_status_count/200', 0)} answers were 200")
    for key in ("log_count/ERROR", "downloader/exception_count", "spider_exceptions/count"):
        if stats.get(key):
            errors.append(f"{key}={stats[key]}")
    if marks.get("reason") != "finished":
        errors.append(f"closed: {marks.get('reason')}")
    return {
        "mode": mode,
        "pages": spider.count,
        "wall": wall,
        "pages_per_s": spider.count / wall if wall else 0.0,
        "cpu": marks.get("cpu", 0.0) / wall if wall else 0.0,
        "site_cpu": None if marks.get("site_cpu") is None or not wall else marks["site_cpu"] / wall,
        "with_cookie": spider.with_cookie,
        "distinct_cookies": len(spider.cookies),
        "sessions_created": stats.get("sessionpool/created", 0),
        "sessions_retired": stats.get("sessionpool/retired", 0),
        "errors": errors,
    }


# -- parent: site, alternating crawls, table -------------------------------------


def start_site() -> tuple[subprocess.Popen, str]:
    site = subprocess.Popen(
        [sys.executable, "-m", "tests.support.site", "--port", "0", "--budget", "none"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    base = (site.stdout.readline() if site.stdout else "").strip()
    if not base.startswith("http://"):
        site.terminate()
        site.wait(5)
        raise SystemExit(f"the test site did not start (printed {base!r})")
    with urllib.request.urlopen(f"{base}/items/0", timeout=10) as reply:  # warm up, and check it answers
        reply.read()
    return site, base


def stop_site(site: subprocess.Popen) -> None:
    site.terminate()
    try:
        site.wait(10)
    except subprocess.TimeoutExpired:
        site.kill()
        site.wait()


def crawl(mode: str, base: str, pages: int, site_pid: int, profile: str | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--run", mode, "--base", base, "--pages", str(pages),
           "--site-pid", str(site_pid)]
    if profile:
        cmd += ["--profile-out", profile]
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"mode": mode, "errors": [f"crawl did not finish in {CHILD_TIMEOUT:.0f} s"]}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        return {"mode": mode, "errors": [f"child exited {done.returncode}:\n{tail}"]}
    result = json.loads(lines[-1])
    if done.stderr.strip():
        result["stderr"] = "\n".join(done.stderr.strip().splitlines()[-10:])
    return result


def print_profile(path: str, top: int) -> None:
    import pstats

    stats = pstats.Stats(path)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "scrapy_sessionpool" in filename:
            rows.append((cumtime, tottime, ncalls, f"{Path(filename).name}:{func}"))
    rows.sort(reverse=True)
    print(f"\nprofile of the 'on' crawl ({total:.2f} s CPU in all); scrapy_sessionpool functions by cumulative time:")
    print(f"{'function':<48} {'cum %':>6} {'own %':>6} {'calls':>8}")
    for cumtime, tottime, ncalls, name in rows[:top]:
        print(f"{name:<48} {cumtime / total * 100:>6.1f} {tottime / total * 100:>6.1f} {ncalls:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="on/off pairs")
    parser.add_argument("--profile", action="store_true", help="also profile one 'on' crawl (cProfile)")
    parser.add_argument("--run", choices=MODES, help=argparse.SUPPRESS)  # internal: one crawl in this process
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--site-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run:
        print(json.dumps(run_crawl(args.run, args.base, args.pages, args.site_pid, args.profile_out)), flush=True)
        return

    import scrapy

    print(f"Scrapy {scrapy.__version__}, Python {platform.python_version()}, {args.pages} pages per crawl, "
          f"{args.repeat} on/off pairs, CONCURRENT_REQUESTS={COMMON_SETTINGS['CONCURRENT_REQUESTS']}")
    site, base = start_site()
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    failed = []
    pair_ratios: list[float] = []
    try:
        for i in range(args.repeat):
            pair = {}
            for mode in MODES if i % 2 == 0 else MODES[::-1]:  # off,on / on,off / ...
                result = crawl(mode, base, args.pages, site.pid)
                if result.get("errors"):
                    failed.append(result)
                    print(f"  {mode:>3}: ERROR {'; '.join(result['errors'])}", flush=True)
                else:
                    results[mode].append(result)
                    pair[mode] = result["pages_per_s"]
                    print(f"  {mode:>3}: {result['pages_per_s']:7.0f} pages/s  ({result['wall']:.2f} s, "
                          f"Scrapy CPU {result['cpu']:.0%}, site CPU {_pct(result['site_cpu'])})", flush=True)
            if len(pair) == 2:
                pair_ratios.append(pair["on"] / pair["off"])
        if args.profile:
            profile = str(Path(tempfile.gettempdir()) / "bench_crawl_on.prof")
            result = crawl("on", base, args.pages, site.pid, profile=profile)
            if result.get("errors"):
                print(f"profiled crawl: ERROR {'; '.join(result['errors'])}")
            else:
                print(f"profiled 'on' crawl: {result['pages_per_s']:.0f} pages/s under cProfile; stats in {profile}")
                print_profile(profile, 15)
    finally:
        stop_site(site)

    print()
    print(f"{'mode':<5} {'runs':>4} {'median p/s':>11} {'min p/s':>8} {'max p/s':>8} {'Scrapy CPU':>10} "
          f"{'site CPU':>9} {'cookie sent':>12} {'distinct Cookie':>16}")
    medians = {}
    for mode in MODES:
        runs = results[mode]
        if not runs:
            print(f"{mode:<5} {0:>4}  (no successful run)")
            continue
        rates = [r["pages_per_s"] for r in runs]
        medians[mode] = statistics.median(rates)
        cookie = statistics.median(r["with_cookie"] / r["pages"] for r in runs)
        distinct = max(r["distinct_cookies"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        site_cpus = [r["site_cpu"] for r in runs if r["site_cpu"] is not None]
        site_cpu = statistics.median(site_cpus) if site_cpus else None
        print(f"{mode:<5} {len(runs):>4} {medians[mode]:>11.0f} {min(rates):>8.0f} {max(rates):>8.0f} "
              f"{cpu:>10.0%} {_pct(site_cpu):>9} {cookie:>12.1%} {distinct:>16}")
    if len(medians) == 2:
        print(f"\nratio on/off (medians): {medians['on'] / medians['off']:.3f}   (aim: >= 0.95)")
    if pair_ratios:
        shown = " ".join(f"{r:.3f}" for r in pair_ratios)
        print(f"ratio on/off per pair:  {shown}   (median {statistics.median(pair_ratios):.3f})")
    if failed:
        print(f"\n{len(failed)} crawl(s) failed; see the ERROR lines above")
        sys.exit(1)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    main()
