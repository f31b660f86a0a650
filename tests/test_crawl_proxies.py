"""Real crawls through real local proxies: proxy slots, exit cool-downs, redaction, User-Agents."""

from __future__ import annotations

import json
from collections import Counter

import pytest_twisted
import scrapy

from scrapy_sessionpool import get_pools
from tests.crawling import ListSpider, make_crawler, stats
from tests.support.site import GuardedSite


def sessions_by_id(crawler):
    return {s.id: s for pool in get_pools(crawler).values() for s in pool}


@pytest_twisted.inlineCallbacks
def test_each_session_always_leaves_through_its_own_proxy(site, make_proxies):
    site.budget = None
    proxies = make_proxies(3)
    by_url = {p.url: p.name for p in proxies}
    crawler = make_crawler(settings={"SESSIONPOOL_MAX_POOL_SIZE": 6, "SESSIONPOOL_PROXIES": [p.url for p in proxies]})
    yield crawler.crawl(urls=[site.url(f"/echo?{i}") for i in range(60)])
    responses = crawler.spider.responses
    assert len(responses) == 60
    sessions = sessions_by_id(crawler)
    for response in responses:
        session = sessions[response.meta["sessionpool_session_id"]]
        assert json.loads(response.text)["proxy"] == by_url[session.proxy_url]
    # each new session took the proxy with the fewest live sessions
    assert Counter(s.proxy_url for s in sessions.values()) == {p.url: 2 for p in proxies}
    assert sum(len(p.log) for p in proxies) == 60
    assert all(
        r.meta["download_slot"].endswith(
            f"@127.0.0.1:{sessions[r.meta['sessionpool_session_id']].proxy_url.rsplit(':', 1)[1]}"
        )
        for r in responses
    )


@pytest_twisted.inlineCallbacks
def test_a_request_with_its_own_proxy_keeps_it(site, make_proxies):
    mine, pooled = make_proxies(2)
    crawler = make_crawler(settings={"SESSIONPOOL_PROXIES": [pooled.url]})
    yield crawler.crawl(urls=[(site.url("/echo"), {"proxy": mine.url})])
    (response,) = crawler.spider.responses
    assert json.loads(response.text)["proxy"] == mine.name and not pooled.log


@pytest_twisted.inlineCallbacks
def test_proxy_passwords_never_reach_logs_or_stats(site, make_proxies, caplog):
    caplog.set_level("DEBUG")
    proxies = make_proxies(2, username="scraper", password="pw-Sekr1t")
    crawler = make_crawler(
        settings={"SESSIONPOOL_PROXIES": [p.url for p in proxies], "SESSIONPOOL_MAX_POOL_SIZE": 2, "LOG_LEVEL": "DEBUG"}
    )
    site.budget = 3
    yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(12)])
    assert len(crawler.spider.responses) == 12 and site.blocked_sids  # blocks, and the log lines they make
    assert all(p.log for p in proxies)
    assert "pw-Sekr1t" not in caplog.text
    assert "pw-Sekr1t" not in repr(crawler.stats.get_stats())


@pytest_twisted.inlineCallbacks
def test_a_rate_limited_exit_cools_down_and_its_sessions_are_kept(make_proxies):
    with GuardedSite(budget=None, ip_limit=3, ip_window=0.5, retry_after=1) as site:
        proxies = make_proxies(2)
        crawler = make_crawler(
            settings={
                "SESSIONPOOL_PROXIES": [p.url for p in proxies],
                "SESSIONPOOL_MAX_POOL_SIZE": 4,
                "CONCURRENT_REQUESTS": 4,
            }
        )
        yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(12)])
        assert len(crawler.spider.responses) == 12
        assert all(r.status == 200 for r in crawler.spider.responses)
        s = stats(crawler)
        assert s["blame/exit"] + s.get("blame/site", 0) >= 1 and s["blocks/status_503"] >= 1
        verdicts = {k: v for k, v in s.items() if k.startswith(("retired", "blame", "blocks", "created"))}
        # the sessions were not to blame, and a newcomer the limit met is not read as refused for being new
        assert "blame/session" not in s and "retired" not in s, str(verdicts)
        assert s["created"] <= 8, str(verdicts)  # fresh sessions stand in while suspects sit out: twice the pool
        assert sum(site.rate_limited.values()) >= 1


@pytest_twisted.inlineCallbacks
def test_each_session_keeps_one_user_agent(site):
    site.budget = None
    agents = ["UA-A/1", "UA-B/1", "UA-C/1"]
    crawler = make_crawler(settings={"SESSIONPOOL_USER_AGENTS": agents, "SESSIONPOOL_MAX_POOL_SIZE": 3})
    yield crawler.crawl(urls=[site.url(f"/echo?{i}") for i in range(30)])
    sessions = sessions_by_id(crawler)
    seen = Counter()
    for response in crawler.spider.responses:
        agent = json.loads(response.text)["user_agent"]
        assert agent == sessions[response.meta["sessionpool_session_id"]].user_agent
        seen[agent] += 1
    assert set(seen) <= set(agents)


class AgentSpider(ListSpider):
    custom_settings = {"USER_AGENT": "SpiderAgent/1"}

    async def start(self):
        yield scrapy.Request(self.urls[0], dont_filter=True)
        yield scrapy.Request(self.urls[1], dont_filter=True, headers={"User-Agent": "Mine/1"})


@pytest_twisted.inlineCallbacks
def test_session_agents_replace_the_spiders_default_but_not_a_requests_own(site):
    crawler = make_crawler(AgentSpider, settings={"SESSIONPOOL_USER_AGENTS": ["UA-A/1"]})
    yield crawler.crawl(urls=[site.url("/echo?1"), site.url("/echo?2")])
    agents = sorted(json.loads(r.text)["user_agent"] for r in crawler.spider.responses)
    assert agents == ["Mine/1", "UA-A/1"]
