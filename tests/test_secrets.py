"""Credentials stay secret: no cookie value or proxy password in logs, stats, state-file modes or command output."""

from __future__ import annotations

import logging
import os
import stat

import pytest_twisted

from tests.crawling import make_crawler

COOKIE_SECRET = "cv-Sekr1t-value"
PROXY_SECRET = "pw-Sekr1t-proxy"


@pytest_twisted.inlineCallbacks
def test_no_secret_in_logs_stats_or_saved_file_mode(site, make_proxies, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    site.budget = 2  # blocks and rotations log too
    proxies = make_proxies(2, username="scraper", password=PROXY_SECRET)
    urls = [site.url(f"/cookies/set?name=token&value={COOKIE_SECRET}")] + [site.url(f"/items/{i}") for i in range(8)]
    crawler = make_crawler(
        settings={
            "LOG_LEVEL": "DEBUG",
            "SESSIONPOOL_PROXIES": [p.url for p in proxies],
            "SESSIONPOOL_MAX_POOL_SIZE": 2,
            "SESSIONPOOL_PERSIST_STATE": True,
            "SESSIONPOOL_PERSIST_STATE_STORE": str(tmp_path),
            "SESSIONPOOL_LOG_INTERVAL": 0.05,
            "DOWNLOAD_DELAY": 0.05,
        }
    )
    yield crawler.crawl(urls=urls)
    # the secret was in play: a session kept the cookie and sent it back (so logs had every chance to show it)
    assert any(COOKIE_SECRET in (hit.cookie or "") for hit in site.requests)
    text = caplog.text + repr(crawler.stats.get_stats())
    assert COOKIE_SECRET not in text.replace(f"value={COOKIE_SECRET}", "")  # only the URL we asked for shows it
    assert PROXY_SECRET not in text
    assert "scraper:***@" in caplog.text  # proxies are named, redacted
    saved = tmp_path / "list.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
