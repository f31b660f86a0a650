"""Full crawls with browser sessions: real headless Chromium through scrapy-playwright, a local site behind a
JavaScript challenge, local proxies. A session passes the challenge once in its own browser context, then
crawls over plain HTTP with the cookie it earned, through the same exit and with the same User-Agent."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from importlib.util import find_spec

import pytest
import pytest_twisted
import scrapy

from tests.crawling import make_crawler, stats
from tests.support.challenge_site import ChallengeSite

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _missing() -> str | None:
    if find_spec("scrapy_playwright") is None:
        return "scrapy-playwright is not installed (pip install 'scrapy-sessionpool[browser]')"
    if CHROMIUM is None:
        return "Chromium is not installed (apt-get install chromium)"
    return None


if (reason := _missing()) is not None:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"browser tests cannot run in CI: {reason}")
    pytest.skip(f"browser tests skipped: {reason}", allow_module_level=True)

BROWSER = {
    "DOWNLOAD_HANDLERS": {
        "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
        "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
    },
    "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": CHROMIUM, "headless": True},
    "SESSIONPOOL_CHALLENGE_PATTERNS": [r"Just a moment\.\.\."],
    "SESSIONPOOL_BROWSER_ESCALATION": True,
    "SESSIONPOOL_MAX_CHALLENGE_REFETCHES": 1,
}


class ItemsSpider(scrapy.Spider):
    name = "items"

    def __init__(self, urls, meta=None, **kwargs):
        super().__init__(**kwargs)
        self.urls, self.meta = urls, meta or {}
        self.items: dict[str, scrapy.http.Response] = {}

    async def start(self):
        for url in self.urls:
            yield scrapy.Request(url, meta=dict(self.meta), dont_filter=True)

    def parse(self, response):
        name = response.css("h1.name::text").get()
        if name:
            self.items[name] = response


def chromium_processes() -> int:
    found = subprocess.run(["pgrep", "-c", "-f", CHROMIUM], capture_output=True, text=True, check=False)
    return int(found.stdout.strip() or 0)


@pytest_twisted.inlineCallbacks
def test_a_session_passes_the_challenge_once_in_its_browser_then_crawls_over_http(make_proxies):
    proxies = make_proxies(2)
    before = chromium_processes()
    with ChallengeSite(items=30, subresource_cookie=True) as site:
        settings = {
            **BROWSER,
            "SESSIONPOOL_PROXIES": [p.url for p in proxies],
            "SESSIONPOOL_MAX_POOL_SIZE": 2,
            "CONCURRENT_REQUESTS": 4,
        }
        crawler = make_crawler(ItemsSpider, settings)
        yield crawler.crawl(urls=[site.url(f"/items/{n}") for n in range(30)])
        got = stats(crawler)
        spider = crawler.spider
        assert sorted(spider.items) == sorted(f"Item {n}" for n in range(30)), got
        renders = got["browser/renders"]
        assert renders == got["browser/escalations"] == got["browser/challenges_passed"], got
        assert renders <= got["created"] == 2, got  # one render per session life
        assert 1 <= got["browser/handed_back"] <= renders  # back on HTTP (the last may have had no more to do)
        rendered = [r for r in spider.items.values() if "playwright" in r.flags]
        assert len(rendered) == renders  # every other item came over plain HTTP
        # the cookies the browser earned went out over HTTP with the same exit and User-Agent
        pages = [hit for hit in site.hits if hit.event in ("page", "solved")]
        assert {hit.exit for hit in pages} <= {p.name for p in proxies}
        assert not [hit for hit in site.hits if hit.event == "mismatch"]
        for hit in pages:
            assert "visitor=" in (hit.cookie or "") and "challenge=" in (hit.cookie or "")
    deadline = time.monotonic() + 10
    while chromium_processes() > before and time.monotonic() < deadline:  # no browser left behind
        time.sleep(0.1)
    assert chromium_processes() <= before


@pytest_twisted.inlineCallbacks
def test_plain_scrapy_gets_nothing_past_the_challenge():
    with ChallengeSite(items=5) as site:
        crawler = make_crawler(ItemsSpider, {"SESSIONPOOL_ENABLED": False})
        yield crawler.crawl(urls=[site.url(f"/items/{n}") for n in range(5)])
        assert crawler.spider.items == {}
        assert site.pages_served() == set()


def _cookies(crawler):
    from scrapy_sessionpool import get_pool

    return {s.id: {c.name: c for c in s.cookie_jar} for s in get_pool(crawler)}


@pytest_twisted.inlineCallbacks
def test_the_cookies_the_browser_earned_keep_their_attributes_in_the_jar(make_proxies):
    with ChallengeSite(items=6, subresource_cookie=True, clearance_secs=600) as site:
        settings = {**BROWSER, "SESSIONPOOL_PROXIES": [make_proxies(1)[0].url], "SESSIONPOOL_MAX_POOL_SIZE": 1}
        crawler = make_crawler(ItemsSpider, settings)
        yield crawler.crawl(urls=[site.url(f"/items/{n}") for n in range(6)])
        assert len(crawler.spider.items) == 6
        (jar,) = _cookies(crawler).values()
    clearance, visitor = jar["challenge"], jar["visitor"]
    assert (clearance.domain, clearance.path, clearance.domain_specified) == ("127.0.0.1", "/", False)  # host-only
    assert time.time() + 500 < clearance.expires <= time.time() + 600  # max-age, from the script
    assert clearance._rest.get("SameSite") == "Lax" and "HttpOnly" not in clearance._rest
    assert visitor.expires is None and visitor._rest.get("SameSite") == "Strict" and "HttpOnly" in visitor._rest
    assert not visitor.secure


@pytest_twisted.inlineCallbacks
def test_past_playwright_max_contexts_the_least_recently_used_closes_and_is_made_again_from_the_jar(make_proxies):
    """Every request in the browser, two sessions, one context at a time: contexts close and are made
    again with the session's cookies, so no session solves the challenge twice."""
    proxies = make_proxies(2)
    with ChallengeSite(items=10, subresource_cookie=True) as site:
        settings = {
            **BROWSER,
            "SESSIONPOOL_PROXIES": [p.url for p in proxies],
            "SESSIONPOOL_MAX_POOL_SIZE": 2,
            "SESSIONPOOL_WARM_UP": False,
            "PLAYWRIGHT_MAX_CONTEXTS": 1,
            "CONCURRENT_REQUESTS": 1,  # the sessions take turns: each turn closes a context and makes one again
        }
        crawler = make_crawler(ItemsSpider, settings)
        yield crawler.crawl(urls=[site.url(f"/items/{n}") for n in range(10)], meta={"playwright": True})
        got = stats(crawler)
        assert len(crawler.spider.items) == 10, got
        assert got["browser/contexts_closed/lru"] >= 1
        assert crawler.stats.get_value("playwright/context_count") > 2  # made again
        assert len(site.solves()) == got["created"] == 2  # the cookies came back with each new context
        assert not [hit for hit in site.hits if hit.event == "mismatch"]  # no session's cookie in another's


@pytest_twisted.inlineCallbacks
def test_a_session_that_retires_closes_its_context(make_proxies):
    with ChallengeSite(items=12) as site:
        settings = {
            **BROWSER,
            "SESSIONPOOL_PROXIES": [make_proxies(1)[0].url],
            "SESSIONPOOL_MAX_POOL_SIZE": 1,
            "SESSIONPOOL_MAX_USAGE_COUNT": 4,
            "CONCURRENT_REQUESTS": 1,
        }
        crawler = make_crawler(ItemsSpider, settings)
        yield crawler.crawl(urls=[site.url(f"/items/{n}") for n in range(12)], meta={"playwright": True})
        got = stats(crawler)
        assert len(crawler.spider.items) == 12, got
        assert got["retired/max_usage_count"] >= 2
        assert got["browser/contexts_closed"] >= got["retired/max_usage_count"]
        assert crawler.stats.get_value("playwright/context_count") == got["created"]  # one context per session


@pytest_twisted.inlineCallbacks
def test_a_clearance_that_expires_is_earned_again_in_the_browser(make_proxies):
    with ChallengeSite(items=20, clearance_secs=1.0) as site:
        settings = {
            **BROWSER,
            "SESSIONPOOL_PROXIES": [make_proxies(1)[0].url],
            "SESSIONPOOL_MAX_POOL_SIZE": 1,
            "CONCURRENT_REQUESTS": 1,
            "DOWNLOAD_DELAY": 0.15,
        }
        crawler = make_crawler(ItemsSpider, settings)
        started = time.monotonic()
        yield crawler.crawl(urls=[site.url(f"/items/{n}") for n in range(20)])
        seconds = time.monotonic() - started
        got = stats(crawler)
        assert len(crawler.spider.items) == 20, got
        assert 2 <= got["browser/renders"] <= 1 + seconds / 1.0 + 1  # one per session life, one per expiry
        assert got["created"] == 1


@pytest_twisted.inlineCallbacks
def test_a_server_error_right_after_the_challenge_keeps_its_status_and_is_retried(make_proxies):
    """The challenge's reload gets a 500 (often before scrapy-playwright reads the page, which then
    reports the challenge's 200 with the error's body): the answer is a 500, retried, not an item page."""
    failing = frozenset(range(6))
    with ChallengeSite(items=6, rounds=10, fail_once=failing) as site:
        settings = {
            **BROWSER,
            "SESSIONPOOL_PROXIES": [p.url for p in make_proxies(2)],
            "SESSIONPOOL_MAX_POOL_SIZE": 6,
            "RETRY_ENABLED": True,
            "RETRY_TIMES": 3,
        }
        crawler = make_crawler(ItemsSpider, settings)
        errors: list[str] = []
        crawler.signals.connect(
            lambda failure, response, spider: errors.append(str(failure.value)), signal=scrapy.signals.spider_error
        )
        yield crawler.crawl(urls=[site.url(f"/items/{n}") for n in range(6)])
        got = stats(crawler)
        assert sorted(crawler.spider.items) == [f"Item {n}" for n in range(6)], got
        errored = [hit for hit in site.hits if hit.event == "error"]
        assert len(errored) == 6 and not errors
        retried = crawler.stats.get_value("retry/reason_count/500 Internal Server Error", 0)
        assert retried == 6, crawler.stats.get_stats()
