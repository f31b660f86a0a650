"""The helpers of ``scrapy_sessionpool.helpers``, called by hand: ``rotate`` (the copy a blocked request
moves to another session with), ``retry_with_new_session``, ``get_session``, ``get_pool`` and ``get_pools``."""

from __future__ import annotations

import pytest
from scrapy import Request, Spider
from scrapy.http import Response
from scrapy.utils.test import get_crawler

from scrapy_sessionpool import get_pool, get_pools, get_session, retry_with_new_session
from scrapy_sessionpool.core.exceptions import MetaError
from scrapy_sessionpool.helpers import get_manager, restart, rotate

SETTINGS = {"SESSIONPOOL_ENABLED": True, "SESSIONPOOL_PERSIST_STATE": False, "SESSIONPOOL_SEED": 1}
URL = "http://shop.test/items/1"


def crawler_with_spider(**settings):
    crawler = get_crawler(Spider, {**SETTINGS, **settings})
    crawler.spider = crawler._create_spider("unit")
    return crawler


@pytest.fixture
def crawler():
    return crawler_with_spider()


def stats(crawler) -> dict:
    return {
        k.removeprefix("sessionpool/"): v for k, v in crawler.stats.get_stats().items() if k.startswith("sessionpool/")
    }


def sent(**meta) -> Request:
    """A request as the middleware sent it: with its session, picked by the middleware."""
    base = {"sessionpool_session_id": "session_old", "_sessionpool_picked": True, "_sessionpool_sent_at": 1.0}
    return Request(URL, meta={**base, **meta})


def parse(response):
    pass


# -- rotate --------------------------------------------------------------------------------------


def test_rotate_makes_a_copy_that_leaves_its_session_and_counts_the_rotation(crawler):
    request = Request(
        URL,
        callback=parse,
        priority=5,
        headers={"X-Mine": "1"},
        cb_kwargs={"n": 1},
        meta={
            "sessionpool_session_id": "session_old",
            "_sessionpool_picked": True,
            "_sessionpool_sent_at": 1.0,
            "sessionpool_challenges": 2,
            "custom": "kept",
        },
    )
    new = rotate(request, crawler, "status_403")
    assert new is not None and new is not request and new.url == URL
    assert new.dont_filter and new.callback is parse and new.cb_kwargs == {"n": 1}
    assert new.headers[b"X-Mine"] == b"1"
    assert new.priority == 4  # a retry's: RETRY_PRIORITY_ADJUST (-1)
    for gone in ("sessionpool_session_id", "_sessionpool_picked", "_sessionpool_sent_at", "sessionpool_challenges"):
        assert gone not in new.meta, gone
    assert new.meta["sessionpool_rotations"] == 1 and new.meta["custom"] == "kept"
    assert "retry_times" not in new.meta  # rotations are not retries
    assert request.meta["sessionpool_session_id"] == "session_old"  # the original is left as it was
    assert stats(crawler) == {"rotations/count": 1, "rotations/reason_count/status_403": 1}


def test_rotate_takes_its_priority_adjustment_from_scrapys_retry_setting():
    crawler = crawler_with_spider(RETRY_PRIORITY_ADJUST=3)
    assert rotate(Request(URL, priority=5), crawler, "x").priority == 8


def test_rotations_count_up_to_the_setting_then_rotate_gives_none():
    crawler = crawler_with_spider(SESSIONPOOL_MAX_SESSION_ROTATIONS=2)
    first = rotate(sent(), crawler, "status_403")
    second = rotate(first, crawler, "status_403")
    assert (first.meta["sessionpool_rotations"], second.meta["sessionpool_rotations"]) == (1, 2)
    assert rotate(second, crawler, "status_403") is None
    assert stats(crawler)["rotations/count"] == 2


def test_an_uncounted_rotation_leaves_the_count_and_is_made_even_when_they_are_used_up():
    crawler = crawler_with_spider(SESSIONPOOL_MAX_SESSION_ROTATIONS=2)
    new = rotate(sent(sessionpool_rotations=2), crawler, "status_403", counted=False)
    assert new is not None and new.meta["sessionpool_rotations"] == 2
    assert rotate(sent(), crawler, "status_403", counted=False).meta["sessionpool_rotations"] == 0


def test_no_rotations_at_all_with_the_setting_at_zero():
    crawler = crawler_with_spider(SESSIONPOOL_MAX_SESSION_ROTATIONS=0)
    assert rotate(sent(), crawler, "status_403") is None


def test_keep_session_keeps_the_session_and_still_counts(crawler):
    new = rotate(sent(), crawler, "status_429", keep_session=True)
    assert new.meta["sessionpool_session_id"] == "session_old" and new.meta["_sessionpool_picked"] is True
    assert "_sessionpool_sent_at" not in new.meta and new.meta["sessionpool_rotations"] == 1


def test_a_request_of_a_cookiejar_key_moves_away_from_its_session(crawler):
    new = rotate(sent(cookiejar=7), crawler, "status_403")
    assert new.meta["_sessionpool_away_from"] == "session_old" and new.meta["cookiejar"] == 7
    assert "sessionpool_session_id" not in new.meta
    kept = rotate(sent(cookiejar=7), crawler, "status_403", keep_session=True)
    assert "_sessionpool_away_from" not in kept.meta
    plain = rotate(sent(), crawler, "status_403")
    assert "_sessionpool_away_from" not in plain.meta


def test_retry_times_are_left_as_they_were(crawler):
    new = rotate(sent(retry_times=2), crawler, "status_403", keep_session=True)
    assert new.meta["retry_times"] == 2
    assert rotate(sent(retry_times=0), crawler, "status_403").meta["retry_times"] == 0


def test_rotate_is_not_stopped_by_retry_times_or_max_retry_times():
    crawler = crawler_with_spider(RETRY_TIMES=0)
    new = rotate(sent(retry_times=5, max_retry_times=1), crawler, "status_403")
    assert new is not None and new.meta["retry_times"] == 5


def test_a_blocked_redirect_chain_goes_back_to_its_first_url(crawler):
    chain = {
        "redirect_urls": ["http://shop.test/start", "http://shop.test/middle"],
        "redirect_reasons": [302, 301],
        "redirect_times": 2,
        "redirect_ttl": 18,
    }
    new = rotate(sent(**chain), crawler, "status_403")
    assert new.url == "http://shop.test/start" and new.dont_filter
    for key in (*chain, "_sessionpool_sent_at", "sessionpool_session_id"):
        assert key not in new.meta, key
    assert new.meta["sessionpool_rotations"] == 1
    kept = rotate(sent(**chain), crawler, "status_403", keep_session=True)
    assert kept.url == "http://shop.test/start" and kept.meta["sessionpool_session_id"] == "session_old"


def test_restart_takes_a_request_back_to_the_first_url_of_its_chain():
    request = sent(redirect_urls=["http://shop.test/start"], redirect_times=1, redirect_ttl=19)
    new = restart(request)
    assert new.url == "http://shop.test/start" and new.dont_filter
    assert new.meta == {"sessionpool_session_id": "session_old", "_sessionpool_picked": True}  # no sent time
    plain = Request(URL, meta={"redirect_urls": []})
    assert restart(plain) is plain


@pytest.mark.parametrize("rotations", ["many", -1, True, 1.5, None])
def test_a_bad_rotation_count_is_a_meta_error_naming_the_key(crawler, rotations):
    with pytest.raises(MetaError) as raised:
        rotate(sent(sessionpool_rotations=rotations), crawler, "status_403")
    assert str(raised.value) == (
        f"Request meta 'sessionpool_rotations': expected a count (an integer >= 0), got {rotations!r}"
    )


# -- retry_with_new_session ----------------------------------------------------------------------


def response_to(request: Request, status: int = 200) -> Response:
    return Response(request.url, status=status, request=request)


def test_retry_with_new_session_rotates_the_request_of_the_response(crawler):
    new = retry_with_new_session(response_to(sent()), crawler.spider)  # a spider, as in a callback
    assert new.url == URL and "sessionpool_session_id" not in new.meta and new.meta["sessionpool_rotations"] == 1
    assert stats(crawler)["rotations/reason_count/soft_block"] == 1
    again = retry_with_new_session(response_to(new), crawler, "login_page")  # or the crawler
    assert again.meta["sessionpool_rotations"] == 2
    assert stats(crawler)["rotations/reason_count/login_page"] == 1


def test_retry_with_new_session_gives_none_once_rotations_are_used_up():
    crawler = crawler_with_spider(SESSIONPOOL_MAX_SESSION_ROTATIONS=1)
    assert retry_with_new_session(response_to(sent(sessionpool_rotations=1)), crawler) is None


def test_retry_with_new_session_needs_a_response_with_its_request(crawler):
    with pytest.raises(ValueError, match="expected a response that came from a request"):
        retry_with_new_session(Response(URL), crawler)


# -- get_session, get_pool, get_pools ------------------------------------------------------------


def test_get_session_finds_the_live_session_that_fetched_a_response(crawler):
    session = get_pool(crawler).get_session()
    response = response_to(Request(URL, meta={"sessionpool_session_id": session.id}))
    assert get_session(response, crawler) is session
    assert get_session(response, crawler.spider) is session
    session.retire("soft_block")
    assert get_session(response, crawler) is None  # retired: gone from the pool


def test_get_session_is_none_for_a_response_without_a_session_or_with_an_unknown_one(crawler):
    assert get_session(response_to(Request(URL)), crawler) is None
    assert get_session(response_to(Request(URL, meta={"sessionpool_session_id": "nope"})), crawler) is None


def test_get_session_looks_in_the_pool_the_request_named(crawler):
    session = get_pool(crawler, "login").get_session()
    meta = {"sessionpool_session_id": session.id}
    assert get_session(response_to(Request(URL, meta={**meta, "sessionpool_pool": "login"})), crawler) is session
    assert get_session(response_to(Request(URL, meta=meta)), crawler) is None  # not in the default pool


def test_get_pool_builds_each_named_pool_once_from_the_settings():
    crawler = crawler_with_spider(SESSIONPOOL_MAX_POOL_SIZE=7, SESSIONPOOL_POOLS={"login": {"max_pool_size": 2}})
    assert get_pools(crawler) == {}
    default = get_pool(crawler)
    assert get_pool(crawler.spider) is default is get_pool(crawler, None)
    login = get_pool(crawler, "login")
    assert login is not default and get_pool(crawler.spider, "login") is login
    assert (default.max_pool_size, login.max_pool_size) == (7, 2)
    assert get_pool(crawler, "other").max_pool_size == 7  # a name without an entry: the spider's settings
    assert get_pools(crawler) == {None: default, "login": login, "other": get_pool(crawler, "other")}
    assert get_pools(crawler.spider) == get_pools(crawler)


def test_each_crawler_has_its_own_manager_and_pools():
    one, other = crawler_with_spider(), crawler_with_spider()
    assert get_manager(one) is get_manager(one.spider) is not get_manager(other)
    assert get_pool(one) is not get_pool(other)


def test_the_pools_are_kept_in_the_store_only_when_the_extension_is_enabled(tmp_path):
    from scrapy_sessionpool import SessionPool
    from scrapy_sessionpool.stores import FileStore, MemoryStore

    extension = {"EXTENSIONS": {"scrapy_sessionpool.SessionPoolExtension": 500}}
    kept = get_manager(
        crawler_with_spider(SESSIONPOOL_PERSIST_STATE=True, SESSIONPOOL_PERSIST_STATE_STORE=str(tmp_path), **extension)
    )
    assert isinstance(kept.store, FileStore) and kept.store.directory == tmp_path
    alone = crawler_with_spider(SESSIONPOOL_PERSIST_STATE=True, SESSIONPOOL_PERSIST_STATE_STORE=str(tmp_path))
    assert get_manager(alone).store is None  # the middleware alone neither restores nor saves
    # a Redis URL without persistence: pools in memory, not the shared pool
    local = get_manager(
        crawler_with_spider(
            SESSIONPOOL_PERSIST_STATE=False, SESSIONPOOL_PERSIST_STATE_STORE="redis://127.0.0.1:1/0", **extension
        )
    )
    assert isinstance(local.store, MemoryStore) and isinstance(local.pool(), SessionPool)
