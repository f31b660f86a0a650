"""Request-path benchmark: microseconds per request through the session middleware, no network.

Run: ``make bench-middleware`` (or ``python benchmarks/bench_middleware.py [--previous REF] [--requests N]``).
Each request goes through ``process_request`` and its answer through ``process_response``, as
Scrapy's engine calls them, with a pool of 100 sessions. "scrapy" is Scrapy's own
``CookiesMiddleware`` alone (the cookie work a plain crawl does); "on" is the session middleware
of this tree; "prev" the one at ``--previous REF`` (``git archive``d to a temporary directory).
Two answers: one ``Set-Cookie`` on the first visit of each session only, and one on every answer.
Each figure is the median of ``--runs`` runs, each in a fresh process, the modes taking turns.
A crawl's wall-time throughput on this machine swings by tens of percent from run to run
(``bench-crawl``); this measures the same code path without the reactor and the site.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("scrapy", "on", "prev")
ANSWERS = {"first": "Set-Cookie on each session's first answer", "every": "Set-Cookie on every answer"}


def run(mode: str, answers: str, requests: int) -> float:
    """Microseconds per request in this process."""
    import inspect

    from scrapy import Request
    from scrapy.downloadermiddlewares.cookies import CookiesMiddleware
    from scrapy.http import Response
    from scrapy.utils.test import get_crawler

    crawler = get_crawler(
        settings_dict={
            "SESSIONPOOL_ENABLED": mode != "scrapy",
            "SESSIONPOOL_WARM_UP": False,
            "SESSIONPOOL_MAX_POOL_SIZE": 100,
            "SESSIONPOOL_MAX_USAGE_COUNT": 10**9,
            "SESSIONPOOL_PERSIST_STATE": False,
            "LOG_LEVEL": "WARNING",
        }
    )
    crawler.spider = crawler._create_spider("bench")
    if mode == "scrapy":
        middleware = CookiesMiddleware.from_crawler(crawler)
        spider = inspect.signature(CookiesMiddleware.process_request).parameters["spider"]
        extra = (crawler.spider,) if spider.default is inspect.Parameter.empty else ()
    else:
        from scrapy_sessionpool.middleware import SessionPoolMiddleware

        middleware = SessionPoolMiddleware(crawler)
        extra = ()
    seen: set[str] = set()

    def one(i: int) -> None:
        request = Request(f"http://127.0.0.1:8000/items/{i}")
        assert middleware.process_request(request, *extra) is None
        owner = request.meta.get("sessionpool_session_id", "global")
        headers = {}
        if answers == "every" or owner not in seen:
            seen.add(owner)
            headers["Set-Cookie"] = f"sid=s{i}; Path=/"
        middleware.process_response(request, Response(request.url, headers=headers, request=request), *extra)

    for i in range(min(2000, requests)):
        one(i)
    start = time.perf_counter()
    for i in range(requests):
        one(i)
    return (time.perf_counter() - start) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--previous", metavar="REF", default="", help="a git commit for the 'prev' mode")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--run", nargs=2, help=argparse.SUPPRESS)  # internal: MODE ANSWERS
    parser.add_argument("--code", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        sys.path.insert(0, args.code or str(ROOT))
        import logging

        logging.disable(logging.WARNING)  # tldextract's complaint about the offline public suffix list
        print(json.dumps(run(args.run[0], args.run[1], args.requests)))
        return

    import scrapy

    modes = MODES if args.previous else MODES[:2]
    results: dict[tuple[str, str], list[float]] = {(m, a): [] for m in modes for a in ANSWERS}
    with tempfile.TemporaryDirectory(prefix="bench_middleware-") as workdir:
        if args.previous:
            sys.path.insert(0, str(ROOT))
            from benchmarks.previous import extract

            extract(args.previous, Path(workdir))
        print(
            f"Scrapy {scrapy.__version__}, {args.requests} requests per run, {args.runs} runs per figure"
            + (f", prev = {args.previous}" if args.previous else ""),
            flush=True,
        )
        for n in range(args.runs):
            for mode in modes[n % len(modes) :] + modes[: n % len(modes)]:
                for answers in ANSWERS:
                    cmd = [sys.executable, __file__, "--run", mode, answers, "--requests", str(args.requests)]
                    if mode == "prev":
                        cmd += ["--code", workdir]
                    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, check=False)
                    if done.returncode:
                        raise SystemExit(f"{mode}/{answers} failed:\n{done.stderr[-2000:]}")
                    results[mode, answers].append(json.loads(done.stdout.splitlines()[-1]))
    print(f"\n{'answers':<44} " + " ".join(f"{m + ' µs':>10}" for m in modes) + ("   on/prev" if args.previous else ""))
    for answers, label in ANSWERS.items():
        medians = {m: statistics.median(results[m, answers]) for m in modes}
        print(
            f"{label:<44} "
            + " ".join(f"{medians[m]:>10.1f}" for m in modes)
            + (f"   {medians['on'] / medians['prev']:>7.3f}" if args.previous else "")
        )


if __name__ == "__main__":
    main()
