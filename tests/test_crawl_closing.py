"""A crawl always closes promptly when asked, whatever its requests wait for: a paused site, a
cooling exit, a session; on CLOSESPIDER_TIMEOUT, on ``engine.close_spider`` and on SIGTERM/SIGINT
of a real process (with the file store and with a shared Redis pool); and the pool is saved."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from scrapy import signals
from scrapy.utils.defer import deferred_from_coro

from tests.crawling import make_crawler, stats
from tests.support.blocksite import BlockSite, CatalogueSpider
from tests.support.proxy import ForwardingProxy
from tests.test_crawl_blame import crawl_settings

ROOT = Path(__file__).resolve().parent.parent
#: Long enough that nothing it blocks could finish by itself within a test.
FOR_EVER = 600
#: What "promptly" allows: the middleware notices a closing crawl within its poll (0.25 s); the rest
#: is Scrapy closing its downloader and the extension's last save.
PROMPT = 10.0


def blocked_site(proxies: int) -> BlockSite:
    """A site that, once over its rate, answers every request with Retry-After: FOR_EVER."""
    if proxies:
        return BlockSite(
            "exit/ip_rate/429_retry_after",
            items=300,
            ip_rate=3.0,
            ban_secs=FOR_EVER,
            retry_after=FOR_EVER,
            challenge=False,
        )
    return BlockSite(
        "site/site_rate/503_retry_after",
        items=300,
        site_rate=3.0,
        ban_secs=FOR_EVER,
        retry_after=FOR_EVER,
        challenge=False,
    )


def closing_crawler(site: BlockSite, proxies: list[Any], **extra: Any):
    crawler = make_crawler(CatalogueSpider, crawl_settings(proxies, **extra), base=None)
    closed: dict[str, Any] = {}
    crawler.signals.connect(
        lambda spider, reason: closed.update(reason=reason, at=time.monotonic()),
        signal=signals.spider_closed,
        weak=False,
    )
    return crawler, closed


@pytest.mark.parametrize("proxies", [0, 2], ids=["direct", "proxies"])
@pytest_twisted.inlineCallbacks
def test_closespider_timeout_closes_a_crawl_whose_requests_wait(proxies, make_proxies):
    with blocked_site(proxies) as site:
        crawler, closed = closing_crawler(site, make_proxies(proxies), CLOSESPIDER_TIMEOUT=4)
        started = time.monotonic()
        yield crawler.crawl(site=site.url)
    s = stats(crawler)
    assert closed["reason"] == "closespider_timeout"
    assert closed["at"] - started < 4 + PROMPT
    assert s["waits"] >= 1 and s["waits/closed"] >= 1  # it was waiting, and the close ended the waits
    assert s["persisted"] >= 1  # the pool was saved at close
    assert len(crawler.spider.items) < 300


@pytest.mark.parametrize("proxies", [0, 1], ids=["direct", "proxy"])
@pytest_twisted.inlineCallbacks
def test_engine_close_spider_ends_the_waits_at_once(proxies, make_proxies, caplog):
    from twisted.internet import reactor

    with blocked_site(proxies) as site:
        crawler, closed = closing_crawler(site, make_proxies(proxies))
        asked: dict[str, Any] = {}

        def close() -> None:  # by now every request waits: the site answers 429 for ten minutes
            asked["at"] = time.monotonic()
            engine = crawler.engine
            if hasattr(engine, "close_spider_async"):  # Scrapy 2.14+
                deferred_from_coro(engine.close_spider_async(reason="asked"))
            else:
                engine.close_spider(crawler.spider, "asked")

        reactor.callLater(3, close)
        yield crawler.crawl(site=site.url)
    assert closed["reason"] == "asked" and closed["at"] - asked["at"] < PROMPT
    assert stats(crawler)["waits/closed"] >= 1
    assert not [r for r in caplog.records if r.levelname == "ERROR" and "tldextract" not in r.name]  # ended cleanly


def _run_until_waiting(
    tmp_path: Path, store: str, signum: int, extra: dict[str, Any], proxies: int = 1
) -> tuple[dict[str, Any], float]:
    """Start a crawler process against a blocked site, wait until its requests wait, send ``signum``."""
    with blocked_site(proxies) as site:
        proxy = ForwardingProxy("proxy0").start() if proxies else None
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "tests" / "process_waiting_crawl.py"),
                    site.url,
                    proxy.url if proxy else "",
                    store,
                    json.dumps(extra),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            line = proc.stdout.readline() if ready else "(nothing within 60 s)"  # "waiting" once a request waits
            if not ready:
                proc.kill()
            assert line.strip() == "waiting", (line, proc.stderr.read() if proc.poll() is not None else "")
            time.sleep(1)  # every request it makes from now on waits ten minutes
            sent = time.monotonic()
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=60)
            took = time.monotonic() - sent
        finally:
            if proxy:
                proxy.stop()
    assert proc.returncode == 0, err[-3000:]
    assert "Error downloading" not in err and "Unhandled error" not in err, err[-3000:]  # the waits ended cleanly
    return json.loads(out.strip().splitlines()[-1]), took


@pytest.mark.parametrize("proxies", [0, 1], ids=["direct", "proxy"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_closes_a_waiting_crawler_process_and_its_pool_is_saved(signum, proxies, tmp_path):
    result, took = _run_until_waiting(tmp_path, str(tmp_path / "pools"), signum, {}, proxies)
    assert took < PROMPT
    assert result["reason"] == "shutdown" and result["stats"].get("waits/closed", 0) >= 1, result
    saved = tmp_path / "pools" / "catalogue.json"
    assert saved.exists() and (saved.stat().st_mode & 0o777) == 0o600
    assert json.loads(saved.read_text())["sessions"]  # what it had learnt is kept for the next run


def test_sigterm_closes_a_worker_waiting_on_a_shared_redis_pool(tmp_path, redis_server, redis_prefix):
    result, took = _run_until_waiting(
        tmp_path, redis_server.url, signal.SIGTERM, {"SESSIONPOOL_REDIS_PREFIX": redis_prefix}
    )
    assert took < PROMPT
    assert result["reason"] == "shutdown" and result["stats"].get("waits/closed", 0) >= 1, result
