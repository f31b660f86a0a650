"""Enabling: settings, the add-on, custom_settings per spider, and errors for bad settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted

from scrapy_sessionpool.settings import SettingsError
from tests.crawling import make_crawler, stats

ROOT = Path(__file__).resolve().parent.parent


def test_two_spiders_in_one_crawler_process_get_their_own_pools_and_settings(site, tmp_path):
    site.budget = None
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "process_two_spiders.py"), site.url("")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    alpha, beta = result["alpha"], result["beta"]
    assert (alpha["pool_size"], alpha["agents"], alpha["live"], alpha["max_usage"]) == (2, ["alpha-agent"], 2, 50)
    assert (beta["pool_size"], beta["agents"], beta["max_usage"]) == (5, ["beta-agent"], 7)
    assert alpha["pool"] != beta["pool"]


@pytest_twisted.inlineCallbacks
def test_the_add_on_enables_everything(site, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default file store writes under ./.scrapy
    crawler = make_crawler(
        settings={"ADDONS": {"scrapy_sessionpool.Addon": 300}, "TELNETCONSOLE_ENABLED": False}, base=None
    )
    yield crawler.crawl(urls=[site.url("/items/1")])
    assert len(crawler.spider.responses) == 1
    s = stats(crawler)
    assert s["created"] == 1 and s["marked_good"] == 1 and s["persisted"] == 1
    assert (tmp_path / ".scrapy" / "sessionpool" / "list.json").exists()


@pytest_twisted.inlineCallbacks
def test_disabled_components_step_aside(site):
    crawler = make_crawler(settings={"SESSIONPOOL_ENABLED": False, "CONCURRENT_REQUESTS": 1})
    yield crawler.crawl(urls=[site.url("/items/1"), site.url("/echo")])
    assert len(crawler.spider.responses) == 2
    assert stats(crawler) == {}
    echo = next(r for r in crawler.spider.responses if "echo" in r.url)
    assert "sid=" in json.loads(echo.text)["cookie"]  # Scrapy's own cookie jar at work


def test_a_bad_setting_stops_the_crawl_at_start_with_a_clear_line():
    with pytest.raises(
        SettingsError, match=r"^SESSIONPOOL_MAX_POOL_SIZE: expected an integer from 1 to 10,000,000, got -1$"
    ):
        make_crawler(settings={"SESSIONPOOL_MAX_POOL_SIZE": -1})  # builds the components, as a crawl does


def test_scrapy_crawl_with_a_bad_setting_exits_with_the_message(tmp_path):
    spider = tmp_path / "one.py"
    spider.write_text("import scrapy\nclass One(scrapy.Spider):\n    name = 'one'\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "runspider",
            str(spider),
            "-s",
            'ADDONS={"scrapy_sessionpool.Addon": 300}',
            "-s",
            "SESSIONPOOL_REUSE_STRATEGY=lru",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    # (Scrapy 2.13 exits 0 here, newer versions 1: the message is what we own)
    assert (
        "SESSIONPOOL_REUSE_STRATEGY: expected one of 'random', 'round_robin', 'use_until_failure', got 'lru'"
        in result.stderr
    )
