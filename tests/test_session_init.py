"""The init hook's runner and the middleware's side of it, and identity headers on requests: no crawl."""

from __future__ import annotations

from importlib.util import find_spec

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest

from scrapy_sessionpool import get_pool
from scrapy_sessionpool.core import reasons
from scrapy_sessionpool.core.accounts import Account, Accounts
from scrapy_sessionpool.core.pool import SessionPool
from scrapy_sessionpool.meta import FLAG_INIT, FLAG_PICKED, META_SESSION_ID
from scrapy_sessionpool.session_init import SessionInit, _hidden
from tests.test_middleware import Rig


def test_an_init_request_whose_session_is_gone_goes_nowhere_else():
    rig = Rig()
    request = Request("http://shop.test/login", meta={FLAG_INIT: True, META_SESSION_ID: "session_gone"})
    with pytest.raises(IgnoreRequest, match="init request is for is gone"):
        rig.mw.process_request(request, rig.spider)
    assert not get_pool(rig.crawler).usable_sessions_count  # no session was made for it


def test_fetch_refuses_to_go_on_once_the_session_is_retired():
    session = SessionPool().get_session()
    session.retire("status_403")
    init = SessionInit(None, session, None, None)  # type: ignore[arg-type]
    with pytest.raises(IgnoreRequest, match="retired during its init"):
        init.fetch(Request("http://shop.test/login")).send(None)


def test_a_pool_whose_sessions_need_an_init_offers_only_ready_spares():
    pool = SessionPool(
        max_pool_size=3, needs_init=True, accounts=Accounts([Account("a", {})], rest_secs=1, max_blocks=1)
    )
    assert pool.spare() is None  # no new session (nor account) for a spare that may be given back unused
    assert len(pool) == 0
    session = pool.get_session()
    pool.init_ended(session, True)
    assert pool.spare() is session


def test_a_session_handed_out_for_its_init_and_given_back_unused_is_handed_out_again():
    pool = SessionPool(max_pool_size=1, needs_init=True)
    session = pool.get_session()
    session.release()  # its request went away before the init began
    assert pool.get_session() is session


def test_an_init_cut_short_or_broken_does_not_block_the_account():
    accounts = Accounts([Account("a", {}), Account("b", {})], rest_secs=100, max_blocks=1)
    pool = SessionPool(max_pool_size=2, needs_init=True, accounts=accounts)
    first, second = pool.get_session(), pool.get_session()
    pool.init_ended(first, False, reasons.INIT_INTERRUPTED)
    pool.init_ended(second, False, reasons.INIT_ERROR)
    assert accounts.free(0) == 2 and len(accounts) == 2
    assert (first.retired_reason, second.retired_reason) == (reasons.INIT_INTERRUPTED, reasons.INIT_ERROR)


def test_secrets_are_masked_in_a_hook_error_at_any_depth():
    account = Account("alice", {"username": "alice", "pwd": "hunter2", "creds": {"password": "p2p2"}, "pin": 123456})
    text = "POST failed: pwd=hunter2&password=p2p2&pin=123456 for alice"
    assert _hidden(text, account) == "POST failed: pwd=***&password=***&pin=*** for alice"
    shown = repr(account)
    assert "hunter2" not in shown and "p2p2" not in shown and "123456" not in shown and "alice" in shown


def test_an_add_session_needs_a_free_account_of_the_pool():
    pool = SessionPool(accounts=Accounts([Account("a", {})], rest_secs=1, max_blocks=1))
    with pytest.raises(ValueError, match="needs an account"):
        pool.add_session(pool.make_session())
    pool.add_session(pool.make_session(account="a"))
    with pytest.raises(ValueError, match="needs an account"):
        pool.add_session(pool.make_session(account="a"))  # held


needs_browserforge = pytest.mark.skipif(find_spec("browserforge") is None, reason="browserforge is not installed")


@needs_browserforge
def test_a_copy_for_another_session_carries_that_session_profile_and_the_request_own_headers_stay():
    rig = Rig(SESSIONPOOL_FINGERPRINTS=True, SESSIONPOOL_MAX_POOL_SIZE=2)
    first = rig.send("https://shop.test/a", headers={"Accept-Language": "x-own"})
    a = rig.session(first)
    assert first.headers[b"User-Agent"].decode() == a.headers["User-Agent"]
    assert first.headers[b"Accept-Language"] == b"x-own"  # the request's own header stays
    assert first.headers[b"Accept-Encoding"].decode() == a.headers["Accept-Encoding"]
    b = get_pool(rig.crawler).get_session()
    b.release()
    assert b is not a and a.headers != b.headers
    copy = first.replace(dont_filter=True)  # as a rotation makes it, pinned to the other session
    copy.meta.pop(FLAG_PICKED, None)
    copy.meta[META_SESSION_ID] = b.id
    rig.send(copy)
    for name, value in b.headers.items():
        if name != "Accept-Language":
            assert copy.headers[name.encode()].decode() == value, name
    assert copy.headers[b"Accept-Language"] == b"x-own"
    plain = rig.send("http://shop.test/b")  # not https: no client hints
    assert not any(k.lower().startswith(b"sec-ch-ua") for k in plain.headers)
