"""Crawl benchmark: Scrapy throughput without the session pool, with it in memory, and with it in Redis.

Run: ``make bench-crawl`` (or ``python benchmarks/bench_crawl.py [--pages N] [--repeat R] [--profile MODE]``).
The local test site (``tests.support.site``, ``--budget none`` so nothing is
blocked) runs in its own process; each crawl of ``/items/0`` .. ``/items/N-1``
runs in a fresh Python process (a Twisted reactor cannot restart) in a
temporary directory, the modes taking turns (off,on,redis / on,redis,off /
redis,off,on ...) so that all share the machine's noise. "off" is plain Scrapy
with its CookiesMiddleware; "on" enables the middleware and the extension with
100 sessions, each getting its own ``sid`` cookie from the site, in memory
(``SESSIONPOOL_PERSIST_STATE = False``); "redis" is "on" with the pool in
Redis (``SESSIONPOOL_PERSIST_STATE_STORE`` = a redis-server this benchmark
starts on a free port, a fresh ``SESSIONPOOL_REDIS_PREFIX`` per crawl so that
no two crawls share a pool); "prev" is "on" with the package as it was at
``--previous REF`` (a git commit, ``git archive``d into the temporary
directory), the baseline that a change to the request path must not fall
below, and "prev-redis" is "redis" with that package. Throughput is pages
per second of wall time from spider_opened to spider_closed; with Redis, the
redis-server's CPU and the Lua scripts it ran (picks and batches of writes)
are counted a page.
"""

from __future__ import annotations

import argparse
import itertools
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODES = ("off", "on", "redis", "prev", "prev-redis")
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
        "SESSIONPOOL_PERSIST_STATE": False,  # the in-memory pool: the baseline of "redis"
    },
}
MODE_SETTINGS["redis"] = {**MODE_SETTINGS["on"], "SESSIONPOOL_PERSIST_STATE": True}  # + the store URL and prefix
MODE_SETTINGS["prev"] = MODE_SETTINGS["on"]  # with the previous code
MODE_SETTINGS["prev-redis"] = MODE_SETTINGS["redis"]
CHILD_TIMEOUT = 300.0
#: Throughput ratios printed, with their aims: the pool in memory against plain Scrapy, Redis against memory.
RATIOS = {("on", "off"): 0.95, ("redis", "on"): 0.9, ("on", "prev"): 1.0, ("redis", "prev-redis"): 1.0}
_RUNS = itertools.count(1)


# -- child: one crawl ------------------------------------------------------------


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_crawl(
    mode: str,
    base: str,
    pages: int,
    site_pid: int | None,
    profile: str | None,
    redis_url: str | None = None,
    redis_prefix: str | None = None,
) -> dict:
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

    settings = {**COMMON_SETTINGS, **MODE_SETTINGS[mode]}
    if mode.endswith("redis"):
        if not redis_url or not redis_prefix:
            raise SystemExit("mode redis needs --redis-url and --redis-prefix")
        settings.update(SESSIONPOOL_PERSIST_STATE_STORE=redis_url, SESSIONPOOL_REDIS_PREFIX=redis_prefix)
    process = CrawlerProcess(settings)
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
        "waits": stats.get("sessionpool/waits", 0),
        "package": str(Path(sys.modules["scrapy_sessionpool"].__file__).parent)
        if "scrapy_sessionpool" in sys.modules
        else None,
        "errors": errors,
    }


# -- parent: site, alternating crawls, table -------------------------------------


def start_site(*options: str, probe: str = "/items/0") -> tuple[subprocess.Popen, str]:
    """The local test site in its own process (``--budget none`` unless ``options`` say otherwise)."""
    site = subprocess.Popen(
        [sys.executable, "-m", "tests.support.site", "--port", "0", *(options or ("--budget", "none"))],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    base = (site.stdout.readline() if site.stdout else "").strip()
    if not base.startswith("http://"):
        stop_site(site)
        raise SystemExit(f"the test site did not start (printed {base!r})")
    with urllib.request.urlopen(f"{base}{probe}", timeout=10) as reply:  # warm up, and check it answers
        reply.read()
    return site, base


def stop_site(site: subprocess.Popen) -> None:
    site.terminate()
    try:
        site.wait(10)
    except subprocess.TimeoutExpired:
        site.kill()
        site.wait()


def start_redis(directory: Path) -> tuple[Any, str]:
    """A redis-server on a free port (``tests.support.redis_server``), fsyncing its append-only file every second
    (Redis's default with the append-only file on; the tests' server fsyncs at every write)."""
    import redis

    from tests.support.redis_server import RedisServer

    server = RedisServer(directory).start()
    try:
        client = redis.Redis.from_url(server.url)
        client.config_set("appendfsync", "everysec")
        version = client.info("server")["redis_version"]
        client.close()
    except Exception:
        server.stop()
        raise
    return server, version


def crawl(
    mode: str, base: str, pages: int, site_pid: int, workdir: str, profile: str | None = None, redis: Any = None
) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--run",
        mode,
        "--base",
        base,
        "--pages",
        str(pages),
        "--site-pid",
        str(site_pid),
    ]
    if profile:
        cmd += ["--profile-out", profile]
    redis_cpu = None
    if mode.startswith("prev"):
        cmd += ["--code", str(Path(workdir) / "prev")]
    if mode.endswith("redis"):
        if redis is None:
            return {"mode": mode, "errors": ["no redis-server"]}
        prefix = f"bench-{os.getpid()}-{next(_RUNS)}"  # a fresh pool for every crawl
        cmd += ["--redis-url", redis.url, "--redis-prefix", prefix]
        redis_cpu = _cpu_seconds(redis.process.pid)
        scripts = _scripts_run(redis.url)
    try:
        done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"mode": mode, "errors": [f"crawl did not finish in {CHILD_TIMEOUT:.0f} s"]}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        return {"mode": mode, "errors": [f"child exited {done.returncode}:\n{tail}"]}
    result = json.loads(lines[-1])
    if redis_cpu is not None:  # over the child's whole life; Redis is idle before and after its crawl
        after = _cpu_seconds(redis.process.pid)
        result["redis_cpu_s"] = None if after is None else after - redis_cpu
        result["redis_scripts"] = _scripts_run(redis.url) - scripts
    if done.stderr.strip():
        result["stderr"] = "\n".join(done.stderr.strip().splitlines()[-10:])
    return result


def _where(filename: str) -> str:
    path = Path(filename)
    parts = path.parts
    for package in ("scrapy_sessionpool", "redis", "scrapy", "twisted", "asyncio"):
        if package in parts[:-1]:
            i = len(parts) - 1 - parts[::-1].index(package)
            return "/".join(parts[i:])
    return path.name


def print_profile(path: str, mode: str, top: int) -> None:
    import pstats

    stats = pstats.Stats(path)
    total = stats.total_tt  # type: ignore[attr-defined]
    ours, redis_py, own = [], [], []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        name = f"{_where(filename)}:{line}({func})" if filename != "~" else func
        row = (cumtime, tottime, ncalls, name)
        parts = Path(filename).parts
        if "scrapy_sessionpool" in parts:
            ours.append(row)
        elif "redis" in parts[:-1]:
            redis_py.append(row)
        own.append((tottime, cumtime, ncalls, name))
    groups = [("scrapy_sessionpool functions by cumulative time", ours)]
    if mode == "redis":
        groups.append(("redis-py functions by cumulative time", redis_py))
    print(f"\nprofile of the '{mode}' crawl ({total:.2f} s CPU in all)")
    for title, rows in groups:
        rows.sort(reverse=True)
        print(f"\n{title}:")
        print(f"{'function':<64} {'cum %':>6} {'own %':>6} {'calls':>8}")
        for cumtime, tottime, ncalls, name in rows[:top]:
            print(f"{name[:64]:<64} {cumtime / total * 100:>6.1f} {tottime / total * 100:>6.1f} {ncalls:>8}")
    own.sort(reverse=True)
    print("\nall functions by own time:")
    print(f"{'function':<64} {'own %':>6} {'cum %':>6} {'calls':>8}")
    for tottime, cumtime, ncalls, name in own[:top]:
        print(f"{name[:64]:<64} {tottime / total * 100:>6.1f} {cumtime / total * 100:>6.1f} {ncalls:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each a crawl in every mode")
    parser.add_argument(
        "--modes",
        default="off,on,redis,prev",
        help=f"comma-separated modes to run, of {','.join(MODES)} (default: all but prev-redis)",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="on",
        choices=MODES[1:],
        metavar="MODE",
        help="also profile one crawl (cProfile) of MODE: on (the default) or redis",
    )
    parser.add_argument(
        "--previous",
        metavar="REF",
        default="",
        help="a git commit whose package the 'prev' mode runs (without it, no 'prev' mode)",
    )
    parser.add_argument("--run", choices=MODES, help=argparse.SUPPRESS)  # internal: one crawl in this process
    parser.add_argument("--code", help=argparse.SUPPRESS)  # internal: import scrapy_sessionpool from here
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--site-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--redis-prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run:
        if args.code:
            sys.path.insert(0, args.code)
        print(
            json.dumps(
                run_crawl(
                    args.run, args.base, args.pages, args.site_pid, args.profile_out, args.redis_url, args.redis_prefix
                )
            ),
            flush=True,
        )
        return

    import scrapy

    wanted = {m.strip() for m in args.modes.split(",") if m.strip()}
    if not args.previous:
        wanted -= {"prev", "prev-redis"}
    modes = tuple(m for m in MODES if m in wanted)
    if not modes or wanted - set(MODES):
        raise SystemExit(f"--modes: expected some of {', '.join(MODES)}, got {args.modes!r}")
    with tempfile.TemporaryDirectory(prefix="bench_crawl-") as workdir:
        if "prev" in modes or "prev-redis" in modes:
            previous = Path(workdir) / "prev"
            previous.mkdir()
            from benchmarks.previous import extract

            extract(args.previous, previous)
            print(f"prev: scrapy_sessionpool at {args.previous}", flush=True)
        server, redis_version = None, None
        if "redis" in modes or "prev-redis" in modes or args.profile == "redis":
            (Path(workdir) / "redis").mkdir()
            server, redis_version = start_redis(Path(workdir) / "redis")
        print(
            f"Scrapy {scrapy.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPU(s), "
            f"{args.pages} pages per crawl, {args.repeat} round(s) of {','.join(modes)}, "
            f"CONCURRENT_REQUESTS={COMMON_SETTINGS['CONCURRENT_REQUESTS']}"
            + (
                f"\nredis-server {redis_version} at {server.url} (appendonly yes, appendfsync everysec)"
                if server
                else ""
            ),
            flush=True,
        )
        try:
            site, base = start_site()
            try:
                results, failed, round_ratios = run_rounds(modes, base, site.pid, workdir, args, server)
                if args.profile:
                    profile = str(Path(tempfile.gettempdir()) / f"bench_crawl_{args.profile}.prof")
                    result = crawl(args.profile, base, args.pages, site.pid, workdir, profile=profile, redis=server)
                    if result.get("errors"):
                        print(f"profiled crawl: ERROR {'; '.join(result['errors'])}")
                    else:
                        print(
                            f"profiled '{args.profile}' crawl: {result['pages_per_s']:.0f} pages/s under "
                            f"cProfile; stats in {profile}"
                        )
                        print_profile(profile, args.profile, 15)
            finally:
                stop_site(site)
        finally:
            if server is not None:
                server.stop()

    if not args.repeat:
        return
    print()
    print(
        f"{'mode':<10} {'runs':>4} {'median p/s':>11} {'min p/s':>8} {'max p/s':>8} {'Scrapy CPU':>10} "
        f"{'ms/page':>7} {'site CPU':>9} {'Redis ms/page':>13} {'scripts/page':>12} "
        f"{'cookie sent':>12} {'distinct Cookie':>16} {'waits':>6}"
    )
    medians: dict[str, float] = {}
    cpu_ms: dict[str, float] = {}
    for mode in modes:
        runs = results[mode]
        if not runs:
            print(f"{mode:<10} {0:>4}  (no successful run)")
            continue
        rates = [r["pages_per_s"] for r in runs]
        medians[mode] = statistics.median(rates)
        cookie = statistics.median(r["with_cookie"] / r["pages"] for r in runs)
        distinct = max(r["distinct_cookies"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        site_cpus = [r["site_cpu"] for r in runs if r["site_cpu"] is not None]
        site_cpu = statistics.median(site_cpus) if site_cpus else None
        cpu_ms[mode] = statistics.median(_cpu_ms(r) for r in runs)
        redis_ms = statistics.median(_redis_ms(r) for r in runs) if mode.endswith("redis") else None
        scripts = statistics.median(r["redis_scripts"] / r["pages"] for r in runs) if mode.endswith("redis") else None
        waits = "" if mode == "off" else f"{statistics.median(r.get('waits', 0) for r in runs):.0f}"
        print(
            f"{mode:<10} {len(runs):>4} {medians[mode]:>11.0f} {min(rates):>8.0f} {max(rates):>8.0f} "
            f"{cpu:>10.0%} {cpu_ms[mode]:>7.2f} {_pct(site_cpu):>9} "
            f"{'' if redis_ms is None else f'{redis_ms:.2f}':>13} "
            f"{'' if scripts is None else f'{scripts:.2f}':>12} {cookie:>12.1%} {distinct:>16} "
            f"{waits:>6}"
        )
    print()
    for (a, b), aim in RATIOS.items():
        if a in medians and b in medians:
            per_round = " ".join(f"{r:.3f}" for r in round_ratios[a, b])
            print(
                f"ratio {a}/{b} (medians): {medians[a] / medians[b]:.3f}   (aim: >= {aim})"
                + (
                    f"   per round: {per_round} (median {statistics.median(round_ratios[a, b]):.3f})"
                    if round_ratios[a, b]
                    else ""
                )
            )
    for a, b in RATIOS:
        if a in cpu_ms and b in cpu_ms:
            print(
                f"Scrapy CPU per page {a}/{b}: {cpu_ms[a] / cpu_ms[b]:.3f}   (less sensitive to other load "
                "on the machine than wall time)"
            )
    if failed:
        print(f"\n{len(failed)} crawl(s) failed; see the ERROR lines above")
        sys.exit(1)


def run_rounds(
    modes: tuple[str, ...], base: str, site_pid: int, workdir: str, args: argparse.Namespace, redis: Any
) -> tuple[dict[str, list[dict]], list[dict], dict[tuple[str, str], list[float]]]:
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    failed = []
    round_ratios: dict[tuple[str, str], list[float]] = {pair: [] for pair in RATIOS}
    for i in range(args.repeat):
        rates = {}
        order = modes[i % len(modes) :] + modes[: i % len(modes)]  # off,on,redis / on,redis,off / ...
        for mode in order:
            result = crawl(mode, base, args.pages, site_pid, workdir, redis=redis)
            elsewhere = not str(result.get("package")).startswith(workdir)
            if mode.startswith("prev") and not result.get("errors") and elsewhere:
                result["errors"] = [f"the '{mode}' crawl ran the package in {result.get('package')}"]
            if result.get("errors"):
                failed.append(result)
                print(f"  {mode:>10}: ERROR {'; '.join(result['errors'])}", flush=True)
            else:
                results[mode].append(result)
                rates[mode] = result["pages_per_s"]
                print(
                    f"  {mode:>10}: {result['pages_per_s']:7.0f} pages/s  ({result['wall']:.2f} s, "
                    f"Scrapy CPU {result['cpu']:.0%} = {_cpu_ms(result):.2f} ms/page, "
                    f"site CPU {_pct(result['site_cpu'])}"
                    + (
                        f", redis-server CPU {_redis_ms(result):.2f} ms/page, "
                        f"{result['redis_scripts'] / result['pages']:.2f} scripts/page"
                        if mode.endswith("redis")
                        else ""
                    )
                    + (f", {result['waits']} waits for a session" if mode != "off" else "")
                    + ")",
                    flush=True,
                )
        for a, b in RATIOS:
            if a in rates and b in rates:
                round_ratios[a, b].append(rates[a] / rates[b])
    return results, failed, round_ratios


def _cpu_ms(result: dict) -> float:
    """Scrapy process CPU milliseconds per page."""
    return result["cpu"] * result["wall"] / result["pages"] * 1e3


def _scripts_run(url: str) -> int:
    """Lua scripts redis-server has run so far: the pool's calls (picks and batches of writes)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("eval", "evalsha"))


def _redis_ms(result: dict) -> float:
    value = result.get("redis_cpu_s")
    return float("nan") if value is None else value / result["pages"] * 1e3


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    main()
