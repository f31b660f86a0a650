"""Real crawls: each session keeps its own cookies, and no cookie crosses to another jar."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest_twisted
import scrapy

from scrapy_sessionpool import get_pools
from tests.crawling import make_crawler, stats


def sent_sid(request) -> str | None:
    cookie = (request.headers.get("Cookie") or b"").decode()
    for part in cookie.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "sid":
            return value
    return None


@pytest_twisted.inlineCallbacks
def test_each_session_sends_only_its_own_cookie(site):
    site.budget = None
    crawler = make_crawler(settings={"SESSIONPOOL_MAX_POOL_SIZE": 3})
    yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(60)])
    responses = crawler.spider.responses
    assert len(responses) == 60
    sids_by_session = defaultdict(set)
    for response in responses:
        sid = sent_sid(response.request)
        if sid is not None:
            sids_by_session[response.meta["sessionpool_session_id"]].add(sid)
    assert len(sids_by_session) == 3
    assert all(len(sids) == 1 for sids in sids_by_session.values())
    all_sids = [sid for sids in sids_by_session.values() for sid in sids]
    assert len(set(all_sids)) == 3  # no two sessions share a cookie
    # warm-up: each session made one first visit, so the site opened exactly one sid per session
    assert len(site.issued_sids) == 3
    assert stats(crawler)["created"] == 3


class JarSpider(scrapy.Spider):
    """Sets a cookie outside the pool and one in a session, then looks at what each side sends."""

    name = "jars"

    def __init__(self, site, **kwargs):
        super().__init__(**kwargs)
        self.site = site
        self.echo = {}

    async def start(self):
        yield scrapy.Request(
            self.site.url("/cookies/set?name=global&value=g"),
            meta={"sessionpool_enabled": False},
            callback=self.set_session_cookie,
        )

    def set_session_cookie(self, response):
        yield scrapy.Request(self.site.url("/cookies/set?name=sess&value=s"), callback=self.look)

    def look(self, response):
        session_id = response.meta["sessionpool_session_id"]
        yield scrapy.Request(
            self.site.url("/echo?global"),
            meta={"sessionpool_enabled": False},
            callback=self.record,
            cb_kwargs={"side": "global"},
        )
        yield scrapy.Request(
            self.site.url("/echo?session"),
            meta={"sessionpool_session_id": session_id},
            callback=self.record,
            cb_kwargs={"side": "session"},
        )
        yield scrapy.Request(
            self.site.url("/echo?other"),
            meta={"sessionpool_pool": "other"},
            callback=self.record,
            cb_kwargs={"side": "other"},
        )
        yield scrapy.Request(
            self.site.url("/echo?merged"),
            meta={"sessionpool_session_id": session_id},
            cookies={"extra": "x"},
            callback=self.record,
            cb_kwargs={"side": "merged"},
        )

    def record(self, response, side):
        self.echo[side] = json.loads(response.text)["cookie"] or ""


@pytest_twisted.inlineCallbacks
def test_no_cookie_crosses_between_the_global_jar_and_sessions(site):
    crawler = make_crawler(JarSpider)
    yield crawler.crawl(site=site)
    echo = crawler.spider.echo
    assert echo["global"] == "global=g"
    assert "sess=s" in echo["session"] and "global" not in echo["session"]
    assert echo["other"] == ""  # a session of another pool has none of them
    assert "sess=s" in echo["merged"] and "extra=x" in echo["merged"] and "global" not in echo["merged"]


@pytest_twisted.inlineCallbacks
def test_cookies_set_by_a_redirect_open_private_pages(site):
    crawler = make_crawler()
    yield crawler.crawl(urls=[site.url("/redirect?to=/private/7")])
    (response,) = crawler.spider.responses
    assert response.status == 200 and "private-7" in response.text
    assert response.meta["sessionpool_session_id"]


class ScopeSpider(JarSpider):
    name = "scope"

    async def start(self):
        yield scrapy.Request(self.site.url("/cookies/set?name=scoped&value=1&path=/private"), callback=self.more)

    def more(self, response):
        sid = response.meta["sessionpool_session_id"]
        pinned = {"sessionpool_session_id": sid}
        yield scrapy.Request(
            self.site.url("/cookies/set?name=sec&value=1&secure=1"), meta=pinned, callback=self.then_echo
        )

    def then_echo(self, response):
        yield scrapy.Request(
            self.site.url("/echo"),
            meta={"sessionpool_session_id": response.meta["sessionpool_session_id"]},
            callback=self.record,
            cb_kwargs={"side": "echo"},
        )


@pytest_twisted.inlineCallbacks
def test_cookie_path_and_secure_flag_are_respected(site):
    crawler = make_crawler(ScopeSpider)
    yield crawler.crawl(site=site)
    echo = crawler.spider.echo["echo"]
    assert "scoped" not in echo  # Path=/private
    assert "sec" not in echo  # Secure, and this is plain HTTP
    (session,) = list(get_pools(crawler)[None])
    assert {c["name"] for c in session.cookies} == {"scoped", "sec"}


@pytest_twisted.inlineCallbacks
def test_bypassed_requests_use_scrapys_own_cookies(site):
    crawler = make_crawler()
    meta = {"sessionpool_enabled": False}
    yield crawler.crawl(urls=[(site.url("/items/1"), meta)])
    (response,) = crawler.spider.responses
    assert "sessionpool_session_id" not in response.meta
    assert "created" not in stats(crawler)


class KeySpider(scrapy.Spider):
    """Scrapy's documented multi-jar pattern: a ``cookiejar`` key per start URL, passed on to follow-ups."""

    name = "keys"

    def __init__(self, site, keys: int = 4, pages: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.site, self.keys, self.pages = site, keys, pages
        self.seen: list[tuple[int, str | None, str]] = []

    async def start(self):
        for key in range(self.keys):
            yield scrapy.Request(self.site.url(f"/items/{key * 100}"), meta={"cookiejar": key})

    def parse(self, response):
        key = response.meta["cookiejar"]
        self.seen.append((key, sent_sid(response.request), response.meta["sessionpool_session_id"]))
        page = len([s for s in self.seen if s[0] == key])
        if page < self.pages:
            yield scrapy.Request(self.site.url(f"/items/{key * 100 + page}"), meta={"cookiejar": key})


@pytest_twisted.inlineCallbacks
def test_each_cookiejar_key_keeps_one_identity_through_a_crawl(site):
    site.budget = None
    crawler = make_crawler(KeySpider, settings={"SESSIONPOOL_MAX_POOL_SIZE": 6})
    yield crawler.crawl(site=site)
    seen = crawler.spider.seen
    assert len(seen) == 4 * 5
    sessions = defaultdict(set)
    sids = defaultdict(set)
    for key, sid, session_id in seen:
        sessions[key].add(session_id)
        if sid is not None:
            sids[key].add(sid)
    assert all(len(s) == 1 for s in sessions.values()) and len(set().union(*sessions.values())) == 4
    assert all(len(s) == 1 for s in sids.values()) and len(set().union(*sids.values())) == 4
    assert len(site.issued_sids) == 4  # one site session per key, none shared
