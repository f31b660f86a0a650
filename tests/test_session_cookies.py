"""Session cookies through Scrapy's own cookie code: the settings Scrapy honours, the checks it
makes, ``meta["cookiejar"]`` keys, and the two differences kept on purpose, each shown against
Scrapy's own CookiesMiddleware.

The middleware is called as Scrapy's engine calls it, without the network.
"""

from __future__ import annotations

import inspect
import logging

import pytest
from scrapy import Request
from scrapy.downloadermiddlewares.cookies import CookiesMiddleware
from scrapy.http import Response
from scrapy.utils.misc import build_from_crawler

from scrapy_sessionpool import get_pool, retry_with_new_session
from scrapy_sessionpool.core.exceptions import MetaError
from scrapy_sessionpool.middleware import SessionPoolMiddleware
from tests.crawling import ListSpider, make_crawler


class Rig:
    """A crawler's session middleware, fed requests and answers by hand."""

    def __init__(self, **settings):
        self.crawler = make_crawler(ListSpider, settings={"SESSIONPOOL_WARM_UP": False, **settings})
        self.crawler.spider = self.crawler._create_spider(urls=[])
        self.mw = SessionPoolMiddleware(self.crawler)

    def send(self, url: str, **kwargs) -> Request:
        request = Request(url, **kwargs)
        result = self.mw.process_request(request)
        if inspect.iscoroutine(result):
            result.close()
            raise AssertionError(f"{request} waits for a session")
        assert result is None
        return request

    def answer(self, request: Request, *set_cookies: str, status: int = 200):
        response = Response(request.url, status=status, headers={"Set-Cookie": list(set_cookies)}, request=request)
        return self.mw.process_response(request, response)

    def visit(self, url: str, *set_cookies: str, **kwargs) -> Request:
        request = self.send(url, **kwargs)
        self.answer(request, *set_cookies)
        return request

    def session_of(self, request: Request):
        return get_pool(self.crawler).find(request.meta["sessionpool_session_id"])


def cookie(request: Request) -> bytes | None:
    return request.headers.get(b"Cookie")


def scrapy_jar_sends(visits: list[tuple[str, str | None]], url: str, headers=None) -> bytes | None:
    """What Scrapy's own CookiesMiddleware (one default jar) sends to ``url`` after ``visits``."""
    crawler = make_crawler(ListSpider)
    crawler.spider = crawler._create_spider(urls=[])
    mw = build_from_crawler(CookiesMiddleware, crawler)
    call = (
        (lambda f, *a: f(*a, crawler.spider))
        if "spider" in inspect.signature(mw.process_request).parameters
        and inspect.signature(mw.process_request).parameters["spider"].default is inspect.Parameter.empty
        else (lambda f, *a: f(*a))
    )
    for visit_url, set_cookie in visits:
        request = Request(visit_url)
        call(mw.process_request, request)
        call(mw.process_response, request, Response(visit_url, headers={"Set-Cookie": set_cookie or []}))
    request = Request(url, headers=headers)
    call(mw.process_request, request)
    return cookie(request)


# -- what Scrapy's settings and checks decide ----------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"COOKIES_ENABLED": False},
        {"DOWNLOADER_MIDDLEWARES": {"scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None}},
    ],
    ids=["COOKIES_ENABLED=False", "CookiesMiddleware disabled"],
)
def test_no_cookies_when_scrapy_would_handle_none(settings):
    rig = Rig(**settings)
    first = rig.visit("http://shop.test/", "sid=1; Path=/", cookies={"given": "yes"})
    again = rig.send("http://shop.test/")
    assert cookie(first) is None and cookie(again) is None
    assert rig.session_of(again).cookies == []
    assert again.meta["dont_merge_cookies"] is True  # any other cookie middleware keeps its jar out too


class CountingCookies(CookiesMiddleware):
    calls = 0

    def process_request(self, *args):
        CountingCookies.calls += 1
        return super().process_request(*args)


def test_a_cookies_middleware_subclass_in_its_place_is_the_one_used():
    CountingCookies.calls = 0
    rig = Rig(
        SESSIONPOOL_MAX_POOL_SIZE=1,
        DOWNLOADER_MIDDLEWARES={"scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None, CountingCookies: 700},
    )
    rig.visit("http://shop.test/", "sid=1")
    assert cookie(rig.send("http://shop.test/")) == b"sid=1" and CountingCookies.calls == 2


@pytest.mark.parametrize(
    ("setter", "domain", "victim"),
    [
        ("http://evil.blogspot.com/", "blogspot.com", "http://victim.blogspot.com/"),
        ("http://evil.co.uk/", "co.uk", "http://victim.co.uk/"),
    ],
)
@pytest.mark.parametrize("how", ["Set-Cookie", "Request(cookies=...)"])
def test_a_cookie_for_a_public_suffix_never_reaches_another_site(setter, domain, victim, how):
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=1)
    if how == "Set-Cookie":
        rig.visit(setter, f"stolen=1; Domain={domain}; Path=/")
    else:
        rig.visit(setter, cookies=[{"name": "stolen", "value": "1", "domain": domain}])
    assert cookie(rig.send(victim)) is None
    assert cookie(rig.send(setter)) is None  # Scrapy drops it: a host may not set cookies for a public suffix


def test_request_cookies_given_on_https_are_secure():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=1)
    rig.visit("https://shop.test/", cookies={"token": "t"})
    assert cookie(rig.send("http://shop.test/")) is None
    assert cookie(rig.send("https://shop.test/")) == b"token=t"
    assert rig.session_of(rig.send("https://shop.test/")).cookies[0]["secure"] is True


@pytest.mark.parametrize("url", ["data:,hello", "file:///tmp/page.html", "about:blank"])
def test_urls_without_a_host_neither_keep_nor_get_cookies(url):
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=1)
    rig.visit("http://shop.test/", "sid=1")
    hostless = rig.send(url, cookies={"a": "1"})
    assert cookie(hostless) is None
    assert cookie(rig.send("file:///tmp/other.html")) is None
    assert [c["name"] for c in rig.session_of(hostless).cookies] == ["sid"]


def test_bytes_in_request_cookies_are_decoded_as_scrapy_decodes_them():
    rig = Rig()
    assert cookie(rig.send("http://shop.test/", cookies={b"a": "á".encode()})) == b"a=\xc3\xa1"
    assert cookie(rig.send("http://shop.test/", cookies={"a": "á".encode("latin1")})) == b"a=\xc3\xa1"


def test_invalid_request_cookies_get_scrapys_warning(caplog):
    rig = Rig()
    with caplog.at_level(logging.WARNING):
        request = rig.send("http://shop.test/", cookies=[{"value": "orphan"}, {"name": "ok", "value": "1"}])
    assert cookie(request) == b"ok=1"
    assert any(
        "Invalid cookie found in request" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )


def test_cookie_values_are_logged_only_with_cookies_debug(caplog):
    for debug in (False, True):
        caplog.clear()
        rig = Rig(COOKIES_DEBUG=debug, SESSIONPOOL_MAX_POOL_SIZE=1)
        with caplog.at_level(logging.DEBUG):
            rig.visit("http://shop.test/", "sid=s3cr3t-value; Path=/")
            rig.send("http://shop.test/next")
        assert ("s3cr3t-value" in caplog.text) is debug
        if debug:
            assert "Sending cookies to: <GET http://shop.test/next>" in caplog.text


# -- the differences kept on purpose, against Scrapy's own jar -----------------------------------------


def test_kept_a_cookie_header_the_spider_sets_is_sent_as_it_is():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=1)
    rig.visit("http://shop.test/", "sid=1")
    assert scrapy_jar_sends([("http://shop.test/", "sid=1")], "http://shop.test/", {"Cookie": "mine=2"}) == b"sid=1"
    assert cookie(rig.send("http://shop.test/", headers={"Cookie": "mine=2"})) == b"mine=2"


def test_kept_a_cookie_without_domain_goes_back_to_its_host_alone():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=1)
    rig.visit("http://shop.test/", "host_only=1", "shared=2; Domain=shop.test")
    assert scrapy_jar_sends([("http://shop.test/", "host_only=1")], "http://www.shop.test/") == b"host_only=1"
    assert cookie(rig.send("http://www.shop.test/")) == b"shared=2"
    assert sorted(cookie(rig.send("http://shop.test/")).split(b"; ")) == [b"host_only=1", b"shared=2"]


# -- meta["cookiejar"] ----------------------------------------------------------------------------------


def test_each_cookiejar_key_has_its_own_session_and_keeps_it():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=4)
    firsts = {key: rig.visit("http://shop.test/", f"sid={key}", meta={"cookiejar": key}) for key in (1, 2, "three")}
    sessions = {key: r.meta["sessionpool_session_id"] for key, r in firsts.items()}
    assert len(set(sessions.values())) == 3
    for key, first in firsts.items():
        for _ in range(3):
            follow = rig.send("http://shop.test/more", meta={"cookiejar": first.meta["cookiejar"]})
            assert follow.meta["sessionpool_session_id"] == sessions[key]
            assert cookie(follow) == f"sid={key}".encode()
            rig.answer(follow)


def test_requests_without_a_key_never_get_a_keyed_session():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=3)
    keyed = {
        rig.visit("http://shop.test/", f"sid={k}", meta={"cookiejar": k}).meta["sessionpool_session_id"] for k in (1, 2)
    }
    for _ in range(20):
        request = rig.visit("http://shop.test/")
        assert request.meta["sessionpool_session_id"] not in keyed and cookie(request) is None


def test_a_key_whose_session_retires_or_rotates_gets_a_fresh_one():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=4)
    first = rig.visit("http://shop.test/", "sid=old", meta={"cookiejar": "k"})
    rig.session_of(first).retire("test")
    second = rig.send("http://shop.test/", meta={"cookiejar": "k"})
    assert second.meta["sessionpool_session_id"] != first.meta["sessionpool_session_id"] and cookie(second) is None
    response = Response(second.url, request=second, headers={"Set-Cookie": "sid=new"})
    rig.mw.process_response(second, response)
    retry = retry_with_new_session(response, rig.crawler)
    assert retry.meta["cookiejar"] == "k"
    assert rig.mw.process_request(retry) is None
    third = retry.meta["sessionpool_session_id"]
    assert third not in (first.meta["sessionpool_session_id"], second.meta["sessionpool_session_id"])
    assert rig.send("http://shop.test/", meta={"cookiejar": "k"}).meta["sessionpool_session_id"] == third


def test_a_new_key_waits_while_every_session_is_held_by_another_key(caplog):
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=2)
    for key in (1, 2):
        rig.visit("http://shop.test/", meta={"cookiejar": key})
    assert "Every session of the pool is held by a meta['cookiejar'] key (2 keys)" in caplog.text
    waiting = rig.mw.process_request(Request("http://shop.test/", meta={"cookiejar": 3}))
    assert inspect.iscoroutine(waiting)
    waiting.close()


def test_an_unhashable_cookiejar_key_is_a_clear_error():
    with pytest.raises(MetaError, match=r"Request meta 'cookiejar': expected a hashable key .* got list"):
        Rig().send("http://shop.test/", meta={"cookiejar": ["a"]})


class OldStyleCookies(CookiesMiddleware):
    """A subclass written for Scrapy < 2.14: ``spider`` required."""

    def process_request(self, request, spider):
        return super().process_request(*((request, spider) if SPIDER_REQUIRED else (request,)))

    def process_response(self, request, response, spider):
        return super().process_response(*((request, response, spider) if SPIDER_REQUIRED else (request, response)))


class AsyncCookies(CookiesMiddleware):
    async def process_request(self, request, spider=None):
        return None


SPIDER_REQUIRED = (
    inspect.signature(CookiesMiddleware.process_request).parameters["spider"].default is inspect.Parameter.empty
)


def test_a_subclass_written_for_older_scrapy_gets_its_spider_argument():
    rig = Rig(
        SESSIONPOOL_MAX_POOL_SIZE=1,
        DOWNLOADER_MIDDLEWARES={"scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None, OldStyleCookies: 700},
    )
    rig.visit("http://shop.test/", "sid=1")
    assert cookie(rig.send("http://shop.test/")) == b"sid=1"


def test_an_async_cookies_middleware_is_a_clear_error():
    from scrapy_sessionpool.settings import SettingsError

    with pytest.raises(SettingsError, match="DOWNLOADER_MIDDLEWARES: expected a CookiesMiddleware whose"):
        Rig(DOWNLOADER_MIDDLEWARES={"scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None, AsyncCookies: 700})


def test_a_key_keeps_the_sessions_it_left_and_two_waiting_requests_of_a_new_key_share_one():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=6)
    first = rig.visit("http://shop.test/", "login=C-secret", meta={"cookiejar": "C"})
    response = Response(first.url, request=first)
    retry = retry_with_new_session(response, rig.crawler)  # the old session lives on, with C's cookie
    assert rig.mw.process_request(retry) is None
    for _ in range(10):
        other = rig.visit("http://shop.test/", meta={"cookiejar": "D"})
        plain = rig.visit("http://shop.test/")
        assert b"C-secret" not in (cookie(other) or b"") + (cookie(plain) or b"")
    # two requests of a new key that both wait for their turn get one session between them
    rig.mw.manager.turn = lambda site, session: 1.0
    keys = rig.mw.manager.jar_keys
    before = len(keys)
    waiting = [rig.mw.process_request(Request("http://shop.test/x", meta={"cookiejar": "E"})) for _ in range(2)]
    assert keys.session_of(None, "E") is not None and len(keys) == before + 1
    for coroutine in waiting:
        coroutine.close()


@pytest.mark.parametrize("strategy", ["random", "round_robin", "use_until_failure"])
def test_a_request_without_a_key_finds_the_free_session_whatever_the_strategy(strategy):
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=3, SESSIONPOOL_REUSE_STRATEGY=strategy)
    for key in (1, 2):
        rig.visit("http://shop.test/", meta={"cookiejar": key})
    free = rig.visit("http://shop.test/").meta["sessionpool_session_id"]
    for _ in range(30):
        assert rig.visit("http://shop.test/").meta["sessionpool_session_id"] == free
