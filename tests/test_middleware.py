"""The middleware's request and response handling, called by hand as Scrapy's engine calls it.

No reactor and no network: requests and answers are built here, and each test reads what the
middleware did to them (the full crawls in ``test_crawl_*.py`` show the same through real servers).
"""

from __future__ import annotations

import inspect
import logging

import pytest
from scrapy import Request, Spider
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse, Response
from scrapy.utils.test import get_crawler
from twisted.internet.error import ConnectionLost, TCPTimedOutError

from scrapy_sessionpool import get_pool
from scrapy_sessionpool.core.exceptions import MetaError
from scrapy_sessionpool.middleware import SessionPoolMiddleware

PROXY_A = "http://user:secret@10.0.0.1:8000"
PROXY_B = "http://10.0.0.2:8000"
SLOT = {PROXY_A: "shop.test@10.0.0.1:8000", PROXY_B: "shop.test@10.0.0.2:8000"}  # no credentials in a slot name
SETTINGS = {
    "SESSIONPOOL_ENABLED": True,
    "SESSIONPOOL_PERSIST_STATE": False,
    "SESSIONPOOL_SEED": 1,
    "SESSIONPOOL_WARM_UP": False,  # a new session may serve several requests before its first answer
}


class Rig:
    """A crawler with its spider, and the session middleware built from it."""

    def __init__(self, **settings):
        self.crawler = get_crawler(Spider, {**SETTINGS, **settings})
        self.crawler.spider = self.crawler._create_spider("unit")
        self.spider = self.crawler.spider
        self.mw = SessionPoolMiddleware.from_crawler(self.crawler)

    def send(self, url: str | Request = "http://shop.test/", **kwargs) -> Request:
        """A request (or a URL) through process_request, which must let it go at once (not make it wait)."""
        request = url if isinstance(url, Request) else Request(url, **kwargs)
        result = self.mw.process_request(request, self.spider)
        if inspect.iscoroutine(result):
            result.close()
            raise AssertionError(f"{request} waits for a session")
        assert result is None
        return request

    def answer(self, request: Request, status: int = 200, body: bytes = b"", **headers):
        """What process_response makes of an answer to ``request``."""
        response = HtmlResponse(request.url, status=status, body=body, headers=headers, request=request)
        return self.mw.process_response(request, response, self.spider)

    def session(self, request: Request):
        return get_pool(self.crawler).find(request.meta["sessionpool_session_id"])

    def stats(self) -> dict:
        return {
            k.removeprefix("sessionpool/"): v
            for k, v in self.crawler.stats.get_stats().items()
            if k.startswith("sessionpool/")
        }


# -- the way out --------------------------------------------------------------------------------


def test_a_request_gets_a_session_and_its_proxy_user_agent_and_download_slot():
    rig = Rig(SESSIONPOOL_PROXIES=[PROXY_A], SESSIONPOOL_USER_AGENTS=["UA-1/1"])
    request = rig.send("http://shop.test/items/1")
    session = rig.session(request)
    assert session is not None and request.meta["sessionpool_session_id"] == session.id
    assert request.meta["proxy"] == session.proxy_url == PROXY_A
    assert request.headers[b"User-Agent"] == b"UA-1/1" == session.user_agent.encode()
    assert request.meta["download_slot"] == SLOT[PROXY_A]
    assert request.meta["dont_merge_cookies"] is True  # CookiesMiddleware's own jars stay out
    assert session.usage_count == 0  # counted when its answer comes


def test_sessions_without_proxies_or_user_agents_leave_those_alone():
    rig = Rig()
    request = rig.send()
    assert rig.session(request).proxy_url is None
    assert "proxy" not in request.meta and "download_slot" not in request.meta
    assert b"User-Agent" not in request.headers


def test_without_proxy_slots_the_download_slot_is_scrapys():
    rig = Rig(SESSIONPOOL_PROXIES=[PROXY_A], SESSIONPOOL_PROXY_SLOTS=False)
    request = rig.send()
    assert request.meta["proxy"] == PROXY_A and "download_slot" not in request.meta


def test_new_sessions_spread_over_the_proxies():
    rig = Rig(SESSIONPOOL_PROXIES=[PROXY_A, PROXY_B], SESSIONPOOL_MAX_POOL_SIZE=4)
    requests = [rig.send(f"http://shop.test/{n}") for n in range(4)]
    assert len({r.meta["sessionpool_session_id"] for r in requests}) == 4  # the pool had room: new sessions
    assert sorted(r.meta["proxy"] for r in requests) == sorted([PROXY_A, PROXY_A, PROXY_B, PROXY_B])


def test_a_pinned_request_gets_its_session_even_while_the_pool_has_room():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=5)
    first = rig.send()
    pinned = rig.send(meta={"sessionpool_session_id": first.meta["sessionpool_session_id"]})
    assert pinned.meta["sessionpool_session_id"] == first.meta["sessionpool_session_id"]
    assert "_sessionpool_picked" in first.meta and "_sessionpool_picked" not in pinned.meta
    assert len(get_pool(rig.crawler)) == 1


def test_a_pinned_session_that_is_gone_gives_a_fresh_one_and_a_stat():
    rig = Rig()
    request = rig.send(meta={"sessionpool_session_id": "session_from_an_old_job"})
    assert request.meta["sessionpool_session_id"] != "session_from_an_old_job"
    assert rig.session(request) is not None
    assert rig.stats()["pinned_missing"] == 1


def test_a_user_agent_the_request_chose_is_kept_and_scrapys_default_is_replaced():
    rig = Rig(SESSIONPOOL_USER_AGENTS=["UA-1/1"], USER_AGENT="Default/1")
    mine = rig.send(headers={"User-Agent": "Mine/1"})
    default = rig.send(headers={"User-Agent": "Default/1"})  # as UserAgentMiddleware (500) left it
    assert mine.headers[b"User-Agent"] == b"Mine/1"
    assert default.headers[b"User-Agent"] == b"UA-1/1"


def test_a_proxy_the_request_chose_is_kept_and_survives_a_rotation():
    rig = Rig(SESSIONPOOL_PROXIES=[PROXY_A])
    request = rig.send(meta={"proxy": "http://mine:3128"})
    assert request.meta["proxy"] == "http://mine:3128"
    assert "download_slot" not in request.meta  # not the slot of an exit it does not go through
    again = rig.answer(request, 403)
    assert isinstance(again, Request)
    rig.send(again)
    assert again.meta["proxy"] == "http://mine:3128"


def test_a_second_request_waits_while_the_only_new_session_warms_up():
    rig = Rig(SESSIONPOOL_WARM_UP=True, SESSIONPOOL_MAX_POOL_SIZE=1)
    first = rig.send()
    waiting = rig.mw.process_request(Request("http://shop.test/2"), rig.spider)
    assert inspect.iscoroutine(waiting)  # it waits on the reactor for the first answer
    waiting.close()
    rig.answer(first)
    assert rig.send("http://shop.test/3").meta["sessionpool_session_id"] == first.meta["sessionpool_session_id"]


def test_a_redirect_goes_on_at_once_with_the_session_of_its_chain():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=3)
    first = rig.send("http://shop.test/a")
    assert rig.answer(first, 302, Location="/b").status == 302  # RedirectMiddleware follows it
    redirected = first.replace(url="http://shop.test/b")  # its copy, as RedirectMiddleware makes it
    redirected.meta["redirect_urls"] = [first.url]
    rig.send(redirected)
    assert redirected.meta["sessionpool_session_id"] == first.meta["sessionpool_session_id"]
    assert redirected.meta["_sessionpool_sent_at"] == first.meta["_sessionpool_sent_at"]  # judged as one


def test_a_redirect_whose_session_is_gone_starts_its_chain_over():
    rig = Rig()
    chain = {"redirect_urls": ["http://shop.test/a"], "redirect_times": 1, "redirect_ttl": 19}
    own = {"sessionpool_session_id": "session_gone", "_sessionpool_picked": True, "_sessionpool_sent_at": 1.0}
    request = Request("http://shop.test/b", meta={**chain, **own, "custom": "kept"})
    new = rig.mw.process_request(request, rig.spider)
    assert isinstance(new, Request) and new.url == "http://shop.test/a" and new.dont_filter
    assert new.meta == {"custom": "kept"}
    assert rig.stats()["redirects_restarted"] == 1


# -- cookies -------------------------------------------------------------------------------------


def test_set_cookie_goes_to_the_sessions_jar_and_out_with_that_sessions_requests_only():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=2)
    first = rig.send("http://shop.test/login")
    assert b"Cookie" not in first.headers
    assert rig.answer(first, **{"Set-Cookie": "sid=1; Path=/"}).status == 200
    owner = rig.session(first)
    assert [(c["name"], c["value"]) for c in owner.cookies] == [("sid", "1")]

    other = rig.send("http://shop.test/a")  # the pool has room: a new session, with an empty jar
    assert rig.session(other) is not owner
    assert b"Cookie" not in other.headers and rig.session(other).cookies == []
    again = rig.send("http://shop.test/b", meta={"sessionpool_session_id": owner.id})
    assert again.headers[b"Cookie"] == b"sid=1"
    assert again.meta["dont_merge_cookies"] is True


def test_a_rotated_request_leaves_the_old_sessions_cookie_proxy_and_agent_behind():
    rig = Rig(
        SESSIONPOOL_MAX_POOL_SIZE=1,
        SESSIONPOOL_PROXIES=[PROXY_A, PROXY_B],
        SESSIONPOOL_USER_AGENTS=[f"UA-{n}/1" for n in range(20)],
    )
    rig.answer(rig.send("http://shop.test/login"), **{"Set-Cookie": "sid=1; Path=/"})
    request = rig.send("http://shop.test/items/1")
    old = rig.session(request)
    assert request.headers[b"Cookie"] == b"sid=1"

    again = rig.answer(request, 403)
    assert isinstance(again, Request) and "sessionpool_session_id" not in again.meta
    rig.send(again)
    new = rig.session(again)
    assert new is not None and new.id != old.id
    assert b"Cookie" not in again.headers  # the old session's cookie stayed with it
    assert again.meta["proxy"] == new.proxy_url != old.proxy_url  # the other proxy: it had fewer sessions
    assert (request.meta["download_slot"], again.meta["download_slot"]) == (SLOT[old.proxy_url], SLOT[new.proxy_url])
    assert again.headers[b"User-Agent"] == new.user_agent.encode()


# -- the way back --------------------------------------------------------------------------------


def test_a_good_answer_reaches_the_spider_and_counts_for_its_session():
    rig = Rig()
    request = rig.send()
    response = HtmlResponse(request.url, body=b"<p>item</p>", request=request)
    assert rig.mw.process_response(request, response, rig.spider) is response
    assert rig.session(request).usage_count == 1 and rig.stats()["marked_good"] == 1


@pytest.mark.parametrize("status", [401, 403, 429, 503])
def test_a_blocked_status_gives_a_rotation_instead_of_the_response(status):
    rig = Rig()
    request = rig.send(meta={"some": "thing"})
    again = rig.answer(request, status)
    assert isinstance(again, Request) and again is not request
    assert again.url == request.url and again.dont_filter
    assert again.meta["sessionpool_rotations"] == 1 and again.meta["some"] == "thing"
    assert "sessionpool_session_id" not in again.meta  # it gets another session on its way out
    s = rig.stats()
    assert s[f"blocks/status_{status}"] == 1 and s["rotations/count"] == 1


def test_a_ban_pattern_is_a_block_even_with_status_200():
    rig = Rig(SESSIONPOOL_BAN_PATTERNS=["solve the captcha"])
    request = rig.send()
    assert isinstance(rig.answer(request, 200, b"<p>Please solve the captcha</p>"), Request)
    assert rig.stats()["blocks/ban_pattern"] == 1


def test_other_statuses_reach_the_spider():
    rig = Rig()
    for status in (404, 500, 302):
        request = rig.send()
        response = HtmlResponse(request.url, status=status, headers={"Location": "/elsewhere"}, request=request)
        assert rig.mw.process_response(request, response, rig.spider) is response
    assert rig.stats()["marked_bad"] == 1  # the 500: RetryMiddleware retries it, on the same session


def test_a_block_after_the_last_rotation_ends_as_ignore_request(caplog):
    rig = Rig(SESSIONPOOL_MAX_SESSION_ROTATIONS=2)
    request = rig.send(meta={"sessionpool_rotations": 2})
    with caplog.at_level(logging.WARNING), pytest.raises(IgnoreRequest, match="rotations exhausted"):
        rig.answer(request, 403)
    assert rig.stats()["rotations_exhausted"] == 1
    assert "blocked (status_403) on 3 session(s) in a row" in caplog.text


def test_a_blocked_request_pinned_by_the_spider_keeps_its_session_when_it_is_not_to_blame():
    rig = Rig()
    session = rig.session(rig.send())
    pinned = rig.send(meta={"sessionpool_session_id": session.id})
    again = rig.answer(pinned, 403)  # a first block: the session is only a suspect
    assert isinstance(again, Request)
    assert again.meta["sessionpool_session_id"] == session.id and again.meta["sessionpool_rotations"] == 1


def test_a_dropped_connection_is_a_block_and_other_download_errors_mark_the_session_bad():
    rig = Rig()
    dropped = rig.send()
    again = rig.mw.process_exception(dropped, ConnectionLost(), rig.spider)
    assert isinstance(again, Request) and again.meta["sessionpool_rotations"] == 1
    timed_out = rig.send()
    assert rig.mw.process_exception(timed_out, TCPTimedOutError(), rig.spider) is None  # RetryMiddleware's turn
    assert rig.session(timed_out).error_score == 1
    s = rig.stats()
    assert s["blocks/ConnectionLost"] == 1 and s["marked_bad"] == 1


def test_answers_to_requests_the_middleware_did_not_send_pass_through():
    rig = Rig()
    request = Request("http://shop.test/")
    response = Response(request.url, status=403, request=request)
    assert rig.mw.process_response(request, response, rig.spider) is response
    assert rig.mw.process_exception(request, ConnectionLost(), rig.spider) is None
    assert rig.stats() == {}


# -- bypassing the pool, and bad meta ------------------------------------------------------------


def test_sessionpool_enabled_false_leaves_the_request_and_its_answer_alone():
    rig = Rig(SESSIONPOOL_PROXIES=[PROXY_A], SESSIONPOOL_USER_AGENTS=["UA-1/1"])
    request = Request("http://shop.test/", meta={"sessionpool_enabled": False}, headers={"Cookie": "own=1"})
    before = (dict(request.meta), request.headers.to_unicode_dict())
    assert rig.mw.process_request(request, rig.spider) is None
    assert (dict(request.meta), request.headers.to_unicode_dict()) == before
    assert rig.answer(request, 403).status == 403  # no session to judge: the spider gets it
    assert get_pool(rig.crawler).usable_sessions_count == 0


def test_a_disabled_pool_makes_no_middleware():
    crawler = get_crawler(Spider, {**SETTINGS, "SESSIONPOOL_ENABLED": False})
    with pytest.raises(NotConfigured):
        SessionPoolMiddleware.from_crawler(crawler)


BAD_POOL = "Request meta 'sessionpool_pool': expected a pool name of 1-64 characters [A-Za-z0-9_.-], got "


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"sessionpool_enabled": "no"}, "Request meta 'sessionpool_enabled': expected True or False, got 'no'"),
        ({"sessionpool_enabled": 0}, "Request meta 'sessionpool_enabled': expected True or False, got 0"),
        ({"sessionpool_pool": 3}, BAD_POOL + "3"),
        ({"sessionpool_pool": "../etc"}, BAD_POOL + "'../etc'"),
        ({"sessionpool_pool": ""}, BAD_POOL + "''"),
        ({"sessionpool_pool": "p" * 65}, BAD_POOL + repr("p" * 65)),
        (
            {"sessionpool_session_id": ["x"]},
            "Request meta 'sessionpool_session_id': expected a session id string, got ['x']",
        ),
        (
            {"cookiejar": ["k"]},
            "Request meta 'cookiejar': expected a hashable key (a number, a string...), got list",
        ),
    ],
)
def test_bad_meta_on_the_way_out_raises_meta_error_naming_the_key(meta, message):
    rig = Rig()
    with pytest.raises(MetaError) as raised:
        rig.mw.process_request(Request("http://shop.test/", meta=meta), rig.spider)
    assert str(raised.value) == message
    assert get_pool(rig.crawler).usable_sessions_count == 0  # the request took no session


@pytest.mark.parametrize("rotations", ["many", -1, True, 1.5])
def test_a_bad_rotation_count_raises_meta_error_when_the_request_is_blocked(rotations):
    rig = Rig()
    request = rig.send(meta={"sessionpool_rotations": rotations})
    with pytest.raises(MetaError) as raised:
        rig.answer(request, 403)
    expected = f"Request meta 'sessionpool_rotations': expected a count (an integer >= 0), got {rotations!r}"
    assert str(raised.value) == expected


def test_a_named_pool_is_its_own():
    rig = Rig(SESSIONPOOL_POOLS={"login": {"max_pool_size": 1}})
    named = rig.send(meta={"sessionpool_pool": "login"})
    default = rig.send()
    assert get_pool(rig.crawler, "login").find(named.meta["sessionpool_session_id"]) is not None
    assert get_pool(rig.crawler).find(named.meta["sessionpool_session_id"]) is None
    assert get_pool(rig.crawler).find(default.meta["sessionpool_session_id"]) is not None
