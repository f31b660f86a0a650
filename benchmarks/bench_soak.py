"""Soak benchmark: a million pool cycles with churn, and a long real crawl of a site that blocks sessions.

Run: ``python benchmarks/bench_soak.py [--cycles N] [--pages N] [--only core|crawl]``.

Core soak (``--cycles``, default 1,000,000): a ``SessionPool(max_pool_size=10_000,
seed=1)`` whose sessions never wear out by use (``max_usage_count=10**9``) is
filled, every session getting two cookies as it is created (so replacements
get them too). Then each cycle is ``get_session()`` followed by
``mark_good()``, except that 10% of cycles (``--retire-rate``, drawn from a
seeded generator) end in ``retire()`` instead: "10% of sessions retired along
the way" is read as one retirement in ten hand-outs, 100,000 retirements over
1M cycles, the pool turned over ten times, each retired session replaced by a
new one (with its own cookies) at the next ``get_session()``. At 10%, 25%, 50%,
75% and 100% of the cycles (100k ... 1M by default) the loop pauses for a
sample, taken after ``gc.collect()`` and outside the timed loop: the process
RSS (``/proc/self/statm``), ``sys.getallocatedblocks()`` (live Python
allocations), ``len(gc.get_objects())``, and the sizes of the pool's own
structures (live sessions, the expiry heap, the reuse strategy's list and
index, the per-proxy index). No tracemalloc: it would slow the loop several
times. The check: no leak, i.e. from the first sample (the pool turned over
once) to the last, allocated blocks grow by at most 5% (the expiry heap's stale
entries swing them by about 4%; anything kept per retired session would add
over 20%) and gc objects by at most 1%; RSS grows by at most 5% over the second
half (it rises by a few MiB in the first few hundred thousand cycles while
pymalloc's arenas and malloc's free lists settle, with the live allocations
flat: the figures at 100k and at the end are printed either way); and every
structure stays within its bound (the expiry heap is compacted past
``2 * live + 64`` entries; the strategy and the per-proxy index hold exactly
the live sessions). Memory is judged only with 10 pool turnovers or more (the
default: 1M cycles at 10%).

Crawl soak (``--pages``, default 50,000): the local test site
(``tests.support.site``, ``--budget 40 --block mixed``: a session cookie is
blocked after 40 requests, with a 403, a 429 without Retry-After or a 200
captcha page in turn) runs in its own process; one crawl of ``/items/0`` ..
``/items/N-1`` runs in a child process with the plugin enabled (middleware 650,
extension 500, ``SESSIONPOOL_BAN_PATTERNS = ["solve the captcha"]``, 50
sessions, the file store in a temporary directory saved every 3 s,
32 concurrent requests, retries as Scrapy's defaults, INFO log to a file, the
telnet console and Scrapy 2.19's remote control off). It passes when the
crawl finishes with reason "finished"; every item page is parsed exactly once
and is the real page; the log has no ERROR line and no Traceback;
``sessionpool/created == sessionpool/usable + sessionpool/retired``;
``sessionpool/persisted`` is within 1 of ``duration // 3 + 1`` (the periodic
saves plus the one at close) with no ``persist_failed``; and the saved state
file loads into a new pool with exactly ``usable`` sessions and the run's
retired count, each used one holding its own ``sid`` cookie (the site sets one
on a session's first request: a used session without one sent another's).
Progress (pages, sessions, the child's RSS and allocated blocks) is printed
every 10 s. ``--keep`` keeps the crawl's directory (log, saved state),
``--log-level DEBUG`` logs every request.

The exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import queue
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_crawl import start_site, stop_site  # noqa: E402

POOL_SIZE = 10_000
SAMPLE_AT = (0.1, 0.25, 0.5, 0.75, 1.0)
#: Allowed growth of live Python allocations from the first sample to the last one. The expiry heap's
#: stale entries (retired sessions, until the heap is compacted at 2 * live + 64) swing the blocks by about 4%;
#: leaking anything per retired session would add over 20% (gc objects: over 70%).
MAX_BLOCKS_GROWTH = 0.05
MAX_OBJECTS_GROWTH = 0.01
#: Allowed RSS growth over the second half (the allocators' free lists and arenas settle in the first half).
MAX_LATE_RSS_GROWTH = 0.05
#: Memory is judged only when the pool turns over at least this many times (the default 1M cycles: 10).
MIN_JUDGED_TURNOVERS = 10

SITE_BUDGET = 40
SITE_BLOCK = "mixed"
PERSIST_INTERVAL = 3
PROGRESS_EVERY = 10.0
SPIDER = "soak"
CRAWL_SETTINGS = {
    "SESSIONPOOL_ENABLED": True,
    "DOWNLOADER_MIDDLEWARES": {"scrapy_sessionpool.SessionPoolMiddleware": 650},
    "EXTENSIONS": {"scrapy_sessionpool.SessionPoolExtension": 500},
    "SESSIONPOOL_BAN_PATTERNS": ["solve the captcha"],
    "SESSIONPOOL_PERSIST_INTERVAL": PERSIST_INTERVAL,
    "SESSIONPOOL_LOG_INTERVAL": 30,
    "SESSIONPOOL_MAX_POOL_SIZE": 50,
    "CONCURRENT_REQUESTS": 32,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 32,
    "LOG_LEVEL": "INFO",
    "TELNETCONSOLE_ENABLED": False,
    "REMOTE_CONTROL_ENABLED": False,  # Scrapy 2.19's successor of the telnet console
    "ROBOTSTXT_OBEY": False,
}


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    return _rss_mib(os.getpid())


def _rss_mib(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- core soak -------------------------------------------------------------------


def core_soak(cycles: int, retire_rate: float) -> bool:
    from scrapy_sessionpool import SessionPool

    def create(pool: SessionPool):
        s = pool.make_session()
        s.set_cookie("sid", s.id, domain="shop.example", expires=4_000_000_000)
        s.set_cookie("pref", "eur", domain=".shop.example")
        return s

    pool = SessionPool(
        max_pool_size=POOL_SIZE, seed=1, session_options={"max_usage_count": 10**9}, create_session_function=create
    )
    created = [0]
    pool.add_listener("session_created", lambda s: created.__setitem__(0, created[0] + 1))
    start = time.perf_counter()
    for _ in range(POOL_SIZE):
        pool.get_session().mark_good()
    fill_s = time.perf_counter() - start

    print(
        f"== core soak: pool of {POOL_SIZE:,} (2 cookies per session, max_usage_count=10**9, seed=1), "
        f"{cycles:,} cycles of get_session() + mark_good(), {retire_rate:.0%} of them ending in retire() "
        f"instead (~{cycles * retire_rate:,.0f} retirements, the pool turned over "
        f"~{cycles * retire_rate / POOL_SIZE:.1f} times); filled in {fill_s:.2f} s",
        flush=True,
    )
    header = (
        f"{'cycles':>10} {'RSS MiB':>8} {'+MiB':>5} {'alloc blocks':>13} {'gc objects':>11} {'live':>6} "
        f"{'expiry heap':>11} {'strategy':>15} {'by proxy':>8} {'created':>8} {'retired':>8} {'cycles/s':>9}"
    )
    print(header)
    print(f"{'':>10} {'':>8} {'':>5} {'':>13} {'':>11} {'':>6} {'':>11} {'(items/index)':>15}")
    rows: list[dict[str, Any]] = []

    def sample(done: int, rate: float | None) -> dict[str, Any]:
        gc.collect()
        strategy = pool._ready
        row = {
            "cycles": done,
            "rss": rss_mib(),
            "blocks": sys.getallocatedblocks(),
            "objects": len(gc.get_objects()),
            "live": len(pool._live),
            "expiry": len(pool._expiry),
            "items": len(strategy._items),
            "index": len(getattr(strategy, "_index", strategy._items)),
            "by_proxy": sum(len(ids) for ids in pool._by_proxy.values()),
            "created": created[0],
            "retired": pool.retired_sessions_count,
        }
        grew = f"{row['rss'] - rows[-1]['rss']:+.1f}" if rows else ""
        print(
            f"{done:>10,} {row['rss']:>8.1f} {grew:>5} {row['blocks']:>13,} {row['objects']:>11,} {row['live']:>6,} "
            f"{row['expiry']:>11,} {row['items']:>7,}/{row['index']:<7,} {row['by_proxy']:>8,} "
            f"{row['created']:>8,} {row['retired']:>8,} {'' if rate is None else f'{rate:,.0f}':>9}",
            flush=True,
        )
        rows.append(row)
        return row

    sample(0, None)
    rng = random.Random(2)
    rand = rng.random
    get = pool.get_session
    done = 0
    loop_s = 0.0
    for point in sorted({max(1, round(cycles * f)) for f in SAMPLE_AT}):
        n = point - done
        t0 = time.perf_counter()
        for _ in range(n):
            session = get()
            if rand() < retire_rate:
                session.retire("soak")
            else:
                session.mark_good()
        elapsed = time.perf_counter() - t0
        loop_s += elapsed
        done = point
        sample(done, n / elapsed if elapsed else None)

    first, mid, last = rows[1], rows[SAMPLE_AT.index(0.5) + 1], rows[-1]

    def growth(key: str, a: dict[str, Any], b: dict[str, Any]) -> float:
        return b[key] / a[key] - 1

    rss_growth, late_rss_growth = growth("rss", first, last), growth("rss", mid, last)
    blocks_growth, objects_growth = growth("blocks", first, last), growth("objects", first, last)
    failures = []
    judged = cycles * retire_rate >= MIN_JUDGED_TURNOVERS * POOL_SIZE
    if judged and late_rss_growth > MAX_LATE_RSS_GROWTH:
        failures.append(
            f"RSS still grows in the second half: {late_rss_growth:+.1%} from {mid['cycles']:,} to "
            f"{last['cycles']:,} cycles (allowed {MAX_LATE_RSS_GROWTH:+.0%})"
        )
    if judged and blocks_growth > MAX_BLOCKS_GROWTH:
        failures.append(f"allocated blocks grew {blocks_growth:+.1%} (allowed {MAX_BLOCKS_GROWTH:+.0%})")
    if judged and objects_growth > MAX_OBJECTS_GROWTH:
        failures.append(f"gc objects grew {objects_growth:+.1%} (allowed {MAX_OBJECTS_GROWTH:+.0%})")
    for row in rows[1:]:
        at = f"at {row['cycles']:,} cycles"
        if not POOL_SIZE - 1 <= row["live"] <= POOL_SIZE:  # POOL_SIZE - 1 when the last cycle retired
            failures.append(f"{at}: {row['live']:,} live sessions, expected {POOL_SIZE:,}")
        if not row["live"] == row["items"] == row["index"] == row["by_proxy"]:
            failures.append(
                f"{at}: the strategy ({row['items']:,}/{row['index']:,}) or the per-proxy index "
                f"({row['by_proxy']:,}) does not match the {row['live']:,} live sessions"
            )
        if not row["live"] <= row["expiry"] <= 2 * row["live"] + 64:
            failures.append(f"{at}: expiry heap {row['expiry']:,} is out of [live, 2 * live + 64]")
        if row["created"] != row["live"] + row["retired"]:
            failures.append(f"{at}: created {row['created']:,} != live + retired")
    print()
    for row in (first, last):
        print(
            f"memory at {row['cycles']:>9,} cycles: {row['rss']:.1f} MiB RSS, {row['blocks']:,} allocated "
            f"blocks, {row['objects']:,} gc objects"
        )
    print(
        f"growth {first['cycles']:,} -> {last['cycles']:,}: RSS {rss_growth:+.1%} "
        f"({last['rss'] - first['rss']:+.1f} MiB), allocated blocks {blocks_growth:+.1%}, "
        f"gc objects {objects_growth:+.1%}"
    )
    print(
        f"growth {mid['cycles']:,} -> {last['cycles']:,}: RSS {late_rss_growth:+.1%} "
        f"({last['rss'] - mid['rss']:+.1f} MiB)"
    )
    print(
        f"throughput: {done / loop_s:,.0f} cycles/s ({loop_s / done * 1e6:.2f} us per cycle, "
        f"{loop_s:.1f} s for {done:,} cycles)"
    )
    if failures:
        for failure in failures:
            print(f"FAIL: {failure}")
        return False
    if not judged:
        print(
            f"OK: structures within their bounds; memory not judged: fewer than {MIN_JUDGED_TURNOVERS} pool "
            f"turnovers ({MIN_JUDGED_TURNOVERS * POOL_SIZE:,} retirements; the allocators settle over the first "
            "five)"
        )
        return True
    print(
        f"OK: no leak: live Python allocations flat from {first['cycles']:,} cycles on (allocated blocks "
        f"within {MAX_BLOCKS_GROWTH:+.0%}, gc objects within {MAX_OBJECTS_GROWTH:+.0%}), RSS flat in the second "
        f"half (within {MAX_LATE_RSS_GROWTH:+.0%}); expiry heap within 2 * live + 64; strategy and indexes "
        "match the live sessions; created = live + retired"
    )
    return True


# -- crawl soak: child -------------------------------------------------------------


def run_crawl(base: str, pages: int, workdir: str, log_level: str = "INFO") -> dict[str, Any]:
    """One crawl in this process; prints progress lines, returns the result (and the checks that failed)."""
    from collections import Counter

    import scrapy
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess
    from twisted.internet.task import LoopingCall

    from scrapy_sessionpool import SessionPool
    from scrapy_sessionpool.helpers import get_manager
    from scrapy_sessionpool.stores.file import FileStore

    item_re = re.compile(r'<p class="item">item-(\d+)</p>')

    class SoakSpider(scrapy.Spider):
        name = SPIDER

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.items: Counter[int] = Counter()
            self.wrong = 0

        async def start(self):
            for n in range(pages):
                yield scrapy.Request(f"{base}/items/{n}", cb_kwargs={"n": n})

        def parse(self, response, n):
            found = item_re.search(response.text)
            if response.status != 200 or found is None or int(found[1]) != n:
                self.wrong += 1
            self.items[n] += 1

    state_dir = Path(workdir) / "state"
    log_file = Path(workdir) / "crawl.log"
    settings = {
        **CRAWL_SETTINGS,
        "SESSIONPOOL_PERSIST_STATE_STORE": str(state_dir),
        "LOG_FILE": str(log_file),
        "LOG_LEVEL": log_level,
    }
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(SoakSpider)
    marks: dict[str, Any] = {}
    peak = [0.0]

    def progress() -> None:
        stats = crawler.stats.get_stats()
        summary = get_manager(crawler).summary()
        rss = rss_mib()
        peak[0] = max(peak[0], rss)
        print(
            json.dumps(
                {
                    "progress": {
                        "t": time.perf_counter() - marks["wall"],
                        "items": len(crawler.spider.items),
                        "responses": stats.get("response_received_count", 0),
                        "created": summary["created"],
                        "retired": summary["retired"],
                        "usable": summary["usable"],
                        "persisted": stats.get("sessionpool/persisted", 0),
                        "rss": rss,
                        "blocks": sys.getallocatedblocks(),
                        "threads": threading.active_count(),
                    }
                }
            ),
            flush=True,
        )

    tickers: list[LoopingCall] = []

    def opened(spider):
        marks["wall"] = time.perf_counter()
        marks["rss_start"] = rss_mib()
        ticker = LoopingCall(progress)  # built here: a LoopingCall made before the crawl installs the default reactor
        ticker.start(PROGRESS_EVERY, now=False)
        tickers.append(ticker)

    def closed(spider, reason):
        marks["wall"] = time.perf_counter() - marks["wall"]
        marks["reason"] = reason
        for ticker in tickers:
            if ticker.running:
                ticker.stop()

    crawler.signals.connect(opened, signal=signals.spider_opened)
    crawler.signals.connect(closed, signal=signals.spider_closed)
    process.crawl(crawler)
    process.start()

    spider = crawler.spider
    stats = crawler.stats.get_stats()
    wall = marks.get("wall", 0.0) if "reason" in marks else 0.0  # 0 when spider_closed never came
    created = stats.get("sessionpool/created", 0)
    retired = stats.get("sessionpool/retired", 0)
    usable = stats.get("sessionpool/usable")
    persisted = stats.get("sessionpool/persisted", 0)
    expected_saves = int(wall // PERSIST_INTERVAL) + 1
    errors = []
    if marks.get("reason") != "finished":
        errors.append(f"closed with reason {marks.get('reason')!r}, expected 'finished'")
    if len(spider.items) != pages:
        errors.append(f"{len(spider.items)} distinct items parsed, expected {pages}")
    twice = sum(1 for c in spider.items.values() if c > 1)
    if twice:
        errors.append(f"{twice} item(s) parsed more than once")
    if spider.wrong:
        errors.append(f"{spider.wrong} parsed page(s) were not the item page (a block let through?)")
    for key in (
        "log_count/ERROR",
        "log_count/CRITICAL",
        "spider_exceptions/count",
        "downloader/exception_count",
        "sessionpool/persist_failed",
        "sessionpool/rotations_exhausted",
        "sessionpool/state_rejected",
    ):
        if stats.get(key):
            errors.append(f"{key} = {stats[key]}")
    log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
    bad_lines = [ln for ln in log_text.splitlines() if "Traceback" in ln or re.search(r"\] (ERROR|CRITICAL):", ln)]
    if bad_lines:
        errors.append(f"{len(bad_lines)} ERROR/Traceback line(s) in the log, first: {bad_lines[0][:300]}")
    if usable is None:
        errors.append("no sessionpool/usable stat")
    elif created != usable + retired:
        errors.append(f"sessionpool/created {created} != usable {usable} + retired {retired}")
    if abs(persisted - expected_saves) > 1:
        errors.append(
            f"sessionpool/persisted {persisted}, expected {expected_saves} +- 1 "
            f"({wall:.1f} s // {PERSIST_INTERVAL} + 1)"
        )
    saved_sessions = saved_retired = no_sid = None
    try:
        state = FileStore(state_dir).load(SPIDER)
        if state is None:
            errors.append(f"no saved state in {state_dir}")
        else:
            saved_retired = state.get("retired_sessions_count")
            saved = SessionPool.from_state(state, max_pool_size=CRAWL_SETTINGS["SESSIONPOOL_MAX_POOL_SIZE"])
            saved_sessions = saved.usable_sessions_count
            if saved_sessions != usable or len(state["sessions"]) != usable:
                errors.append(
                    f"saved state has {len(state['sessions'])} session(s), {saved_sessions} usable "
                    f"after restore; sessionpool/usable is {usable}"
                )
            if saved_retired != retired:
                errors.append(f"saved retired_sessions_count {saved_retired} != sessionpool/retired {retired}")
            # the site sets a sid cookie on a session's first request: a used session without one sent
            # someone else's cookie
            no_sid = sum(1 for s in saved if s.usage_count and not any(c["name"] == "sid" for c in s.cookies))
            if no_sid:
                errors.append(f"{no_sid} used session(s) in the saved state hold no sid cookie")
    except Exception as exc:
        errors.append(f"saved state does not load: {type(exc).__name__}: {exc}")
    rss_end = rss_mib()
    return {
        "pages": pages,
        "items": len(spider.items),
        "wall": wall,
        "pages_per_s": len(spider.items) / wall if wall else 0.0,
        "reason": marks.get("reason"),
        "responses": stats.get("response_received_count", 0),
        "statuses": {
            k.rsplit("/", 1)[1]: v for k, v in stats.items() if k.startswith("downloader/response_status_count/")
        },
        "created": created,
        "retired": retired,
        "retired_by_reason": {k.split("/", 2)[2]: v for k, v in stats.items() if k.startswith("sessionpool/retired/")},
        "usable": usable,
        "rotations": stats.get("sessionpool/rotations/count", 0),
        "persisted": persisted,
        "expected_saves": expected_saves,
        "saved_sessions": saved_sessions,
        "saved_retired": saved_retired,
        "saved_without_sid": no_sid,
        "waits": stats.get("sessionpool/waits", 0),
        "retries": stats.get("retry/count", 0),
        "log_lines": log_text.count("\n"),
        "rss_start": marks.get("rss_start"),
        "rss_peak": max(peak[0], rss_end),
        "rss_end": rss_end,
        "errors": errors,
    }


# -- crawl soak: parent --------------------------------------------------------------


def crawl_soak(pages: int, timeout: float, keep: bool, log_level: str = "INFO") -> bool:
    import scrapy

    print(
        f"== crawl soak: {pages:,} pages, Scrapy {scrapy.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPU(s); site budget {SITE_BUDGET} requests per session, block {SITE_BLOCK}; "
        f"{CRAWL_SETTINGS['SESSIONPOOL_MAX_POOL_SIZE']} sessions, CONCURRENT_REQUESTS="
        f"{CRAWL_SETTINGS['CONCURRENT_REQUESTS']}, persisted every {PERSIST_INTERVAL} s to a file store",
        flush=True,
    )
    workdir = tempfile.mkdtemp(prefix="bench_soak-")
    site, base = start_site("--budget", str(SITE_BUDGET), "--block", SITE_BLOCK, probe="/status/200")
    result: dict[str, Any] | None = None
    try:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--run-crawl",
            "--base",
            base,
            "--pages",
            str(pages),
            "--workdir",
            workdir,
            "--log-level",
            log_level,
        ]
        child = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str | None] = queue.Queue()
        stderr: list[str] = []

        def pump() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                lines.put(line)
            lines.put(None)

        def drain() -> None:
            assert child.stderr is not None
            stderr.extend(child.stderr)

        for target in (pump, drain):
            threading.Thread(target=target, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                child.kill()
                child.wait()
                print(f"ERROR: the crawl did not finish in {timeout:.0f} s (--timeout); killed it")
                return False
            if line is None:
                break
            if not line.startswith("{"):
                continue
            data = json.loads(line)
            if "progress" in data:
                p = data["progress"]
                print(
                    f"  {p['t']:6.0f} s  {p['items']:>7,} / {pages:,} items ({p['items'] / p['t']:,.0f}/s)  "
                    f"{p['responses']:>7,} responses  sessions: {p['created']:,} created, {p['retired']:,} "
                    f"retired, {p['usable']} usable  {p['persisted']} saves  RSS {p['rss']:.0f} MiB, "
                    f"{p['blocks'] / 1e6:.2f}M blocks, {p['threads']} threads",
                    flush=True,
                )
            else:
                result = data
        child.wait()
        if child.returncode != 0 or result is None:
            tail = "".join(stderr[-15:]).strip()
            print(f"ERROR: the crawl child exited {child.returncode}:\n{tail}")
            return False
    finally:
        stop_site(site)
        if not keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)

    r = result
    statuses = ", ".join(f"{code}: {n:,}" for code, n in sorted(r["statuses"].items()))
    reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["retired_by_reason"].items()))
    print()
    print(f"finished            {r['reason']} in {r['wall']:.1f} s (spider_opened to spider_closed)")
    print(f"items               {r['items']:,} / {r['pages']:,} ({r['pages_per_s']:,.0f} pages/s)")
    print(
        f"responses           {sum(r['statuses'].values()):,} downloaded ({statuses}), "
        f"{r['responses']:,} reached the spider"
    )
    print(f"sessions            {r['created']:,} created = {r['usable']} usable + {r['retired']:,} retired ({reasons})")
    print(
        f"rotations           {r['rotations']:,} (blocked requests moved to a new session); "
        f"{r['waits']:,} waits for a session; {r['retries']:,} Scrapy retries"
    )
    print(
        f"persisted           {r['persisted']} saves (expected {r['expected_saves']} +- 1); the saved state "
        f"holds {r['saved_sessions']} usable session(s) ({r['saved_without_sid']} used without a sid cookie), "
        f"retired count {r['saved_retired']}"
    )
    print(
        f"crawler RSS         {r['rss_start']:.0f} MiB at start, {r['rss_peak']:.0f} MiB peak, "
        f"{r['rss_end']:.0f} MiB at the end; log {r['log_lines']:,} lines"
        + (f" in {workdir}/crawl.log" if keep else "")
    )
    if r["errors"]:
        for error in r["errors"]:
            print(f"FAIL: {error}")
        return False
    print(
        "OK: finished, every item once, no ERROR or Traceback in the log, created = usable + retired, "
        "saves on schedule, saved state loads"
    )
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=1_000_000, help="core soak cycles (default 1,000,000)")
    parser.add_argument(
        "--retire-rate", type=float, default=0.1, help="share of core cycles that end in retire() (default 0.1)"
    )
    parser.add_argument("--pages", type=int, default=50_000, help="crawl soak pages (default 50,000)")
    parser.add_argument("--only", choices=("core", "crawl"), help="run one part only")
    parser.add_argument(
        "--timeout", type=float, default=420.0, help="seconds the crawl may take before it is killed (default 420)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the crawl's directory (log, saved state)")
    parser.add_argument("--run-crawl", action="store_true", help=argparse.SUPPRESS)  # internal: the crawl child
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument(
        "--log-level", default="INFO", help="the crawl's LOG_LEVEL (default INFO; DEBUG with --keep to study a failure)"
    )
    args = parser.parse_args()

    if args.run_crawl:
        print(json.dumps(run_crawl(args.base, args.pages, args.workdir, args.log_level)), flush=True)
        return
    if args.cycles < 100 or args.pages < 1 or not 0 <= args.retire_rate < 1:
        raise SystemExit("--cycles must be >= 100, --pages >= 1, --retire-rate in [0, 1)")
    ok = True
    if args.only in (None, "core"):
        ok = core_soak(args.cycles, args.retire_rate) and ok
    if args.only is None:
        print()
    if args.only in (None, "crawl"):
        ok = crawl_soak(args.pages, args.timeout, args.keep, args.log_level) and ok
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
