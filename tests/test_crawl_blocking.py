"""Real crawls against a site that blocks sessions: retire, rotate, give up cleanly."""

from __future__ import annotations

import pytest_twisted
import scrapy
from scrapy import signals
from scrapy.exceptions import IgnoreRequest

from scrapy_sessionpool import get_pools, get_session, retry_with_new_session
from tests.crawling import make_crawler, stats
from tests.support.site import GuardedSite


def _sid(session):
    return next((c["value"] for c in session.cookies if c["name"] == "sid"), None)


@pytest_twisted.inlineCallbacks
def test_banned_sessions_are_retired_innocent_ones_never_and_every_item_is_fetched():
    with GuardedSite(budget=5, block="mixed") as site:
        crawler = make_crawler(
            settings={
                "SESSIONPOOL_MAX_POOL_SIZE": 4,
                "SESSIONPOOL_SUSPECT_WAIT": 0.2,
                "SESSIONPOOL_BAN_PATTERNS": ["solve the captcha"],
            }
        )
        retired = {}

        def opened(spider):  # signals hold weak references: keep this one alive in the test's frame
            get_pools(crawler)[None].add_listener(
                "session_retired", lambda s: retired.__setitem__(s.id, (s.retired_reason, _sid(s)))
            )

        crawler.signals.connect(opened, signal=signals.spider_opened)
        yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(50)])
        responses = crawler.spider.responses
        assert sorted(int(r.url.rsplit("/", 1)[1]) for r in responses) == list(range(50))
        assert all(r.status == 200 and "captcha" not in r.text for r in responses)  # no block reaches a callback
        assert not crawler.spider.failures and site.served_items == set(range(50))
        blocked = site.blocked_sids
        for_blocks = {sid for reason, sid in retired.values() if reason.startswith(("status_", "ban_pattern"))}
        assert for_blocks and for_blocks <= blocked  # nobody innocent was retired
        kept = [s for s in get_pools(crawler)[None] if _sid(s) in blocked]
        assert all(s.is_suspect for s in kept)  # a banned session is never kept as if it were clean
        s = stats(crawler)
        assert {"blocks/status_403", "blocks/status_429", "blocks/ban_pattern"} <= set(s)
        assert s["blame/session"] == len(for_blocks) and s["rotations/count"] == s["blocks"]
        assert s["created"] == s["usable"] + s["retired"]
        assert "retry/count" not in crawler.stats.get_stats()  # rotations are not retries


@pytest_twisted.inlineCallbacks
def test_when_rotations_run_out_the_block_ends_as_ignore_request(site, caplog):
    crawler = make_crawler(settings={"SESSIONPOOL_MAX_SESSION_ROTATIONS": 2, "SESSIONPOOL_PROXY_BLOCK_THRESHOLD": 10})
    yield crawler.crawl(urls=[site.url("/status/403")])
    assert crawler.spider.responses == []
    (failure,) = crawler.spider.failures
    assert failure.check(IgnoreRequest)
    s = stats(crawler)
    assert (s["rotations/count"], s["rotations_exhausted"], s["blocks"]) == (2, 1, 3)
    assert s["blame/pending"] == 3 and "retired" not in s  # three first blocks: suspects, nobody blamed yet
    assert "blocked (status_403) on 3 session(s) in a row" in caplog.text


@pytest_twisted.inlineCallbacks
def test_server_errors_mark_the_session_bad_and_leave_retrying_to_scrapy(site):
    crawler = make_crawler(settings={"RETRY_ENABLED": True, "RETRY_TIMES": 2, "SESSIONPOOL_MAX_ERROR_SCORE": 10})
    yield crawler.crawl(urls=[site.url("/status/500")])
    s = stats(crawler)
    assert s["marked_bad"] == 3 and "retired" not in s
    assert crawler.stats.get_value("retry/count") == 2


@pytest_twisted.inlineCallbacks
def test_connection_errors_mark_the_session_bad(site):
    site.stop()  # nothing listens there any more
    crawler = make_crawler(settings={"SESSIONPOOL_MAX_ERROR_SCORE": 10})
    yield crawler.crawl(urls=[site.url("/items/1")])
    assert stats(crawler)["marked_bad"] == 1
    assert len(crawler.spider.failures) == 1


class HelperSpider(scrapy.Spider):
    """Logs in, keeps a token in the session's user_data, pins follow-ups, retries a soft block."""

    name = "helpers"

    def __init__(self, site, **kwargs):
        super().__init__(**kwargs)
        self.site = site
        self.seen = []

    async def start(self):
        yield scrapy.Request(self.site.url("/items/0"), callback=self.logged_in)

    def logged_in(self, response):
        session = get_session(response, self)
        session.user_data["token"] = "t-1"
        for n in (1, 2, 3):
            yield scrapy.Request(
                self.site.url(f"/items/{n}"), callback=self.page, meta={"sessionpool_session_id": session.id}
            )
        yield scrapy.Request(self.site.url("/items/9"), callback=self.soft_block)

    def page(self, response):
        self.seen.append((response.meta["sessionpool_session_id"], get_session(response, self).user_data["token"]))

    def soft_block(self, response):
        if response.meta.get("sessionpool_rotations"):
            self.rotated = (response.meta["sessionpool_session_id"], response.meta["sessionpool_rotations"])
            return
        self.first = response.meta["sessionpool_session_id"]
        get_session(response, self).retire("soft_block")
        yield retry_with_new_session(response, self)


@pytest_twisted.inlineCallbacks
def test_spider_helpers_reach_the_session_and_rotate(site):
    site.budget = None
    crawler = make_crawler(HelperSpider, settings={"SESSIONPOOL_MAX_POOL_SIZE": 2})
    yield crawler.crawl(site=site)
    spider = crawler.spider
    assert len(spider.seen) == 3 and len({sid for sid, _ in spider.seen}) == 1
    assert {token for _, token in spider.seen} == {"t-1"}
    new_id, rotations = spider.rotated
    assert new_id != spider.first and rotations == 1
    s = stats(crawler)
    assert s["retired/soft_block"] == 1 and s["rotations/reason_count/soft_block"] == 1


@pytest_twisted.inlineCallbacks
def test_a_pinned_session_that_is_gone_gets_a_fresh_one(site):
    crawler = make_crawler()
    yield crawler.crawl(urls=[(site.url("/items/1"), {"sessionpool_session_id": "session_from_an_old_job"})])
    (response,) = crawler.spider.responses
    assert response.status == 200 and response.meta["sessionpool_session_id"] != "session_from_an_old_job"
    assert stats(crawler)["pinned_missing"] == 1


@pytest_twisted.inlineCallbacks
def test_bad_meta_fails_that_request_with_a_clear_error(site):
    crawler = make_crawler()
    yield crawler.crawl(
        urls=[
            (site.url("/items/1"), {"sessionpool_pool": 3}),
            (site.url("/items/2"), {"sessionpool_enabled": "no"}),
            (site.url("/items/3"), {"sessionpool_session_id": ["x"]}),
            (site.url("/items/5"), {"sessionpool_pool": "../etc"}),
            (site.url("/status/403"), {"sessionpool_rotations": "many"}),
            site.url("/items/4"),
        ]
    )
    messages = sorted(str(f.value) for f in crawler.spider.failures)
    assert messages == [
        "Request meta 'sessionpool_enabled': expected True or False, got 'no'",
        "Request meta 'sessionpool_pool': expected a pool name of 1-64 characters [A-Za-z0-9_.-], got '../etc'",
        "Request meta 'sessionpool_pool': expected a pool name of 1-64 characters [A-Za-z0-9_.-], got 3",
        "Request meta 'sessionpool_rotations': expected a count (an integer >= 0), got 'many'",
        "Request meta 'sessionpool_session_id': expected a session id string, got ['x']",
    ]
    assert len(crawler.spider.responses) == 1
