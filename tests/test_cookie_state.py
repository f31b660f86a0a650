"""Whatever a session's jar accepted survives the round trip: saved, written by the store, read back
and restored, the jar sends the same ``Cookie`` headers to the same URLs.

The cookies come through the real path (``Set-Cookie`` and ``Request(cookies=...)`` through the
session middleware, so through Scrapy's cookie code) and the state through the real file store.
"""

from __future__ import annotations

import json
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scrapy import Request

from scrapy_sessionpool import Session, SessionPool, get_pool
from scrapy_sessionpool.core.cookies import cookie_to_state, jar_cookies, make_cookie
from scrapy_sessionpool.stores import FileStore
from tests.test_session_cookies import Rig

HOSTS = [
    "shop.test",
    "www.shop.test",
    "a.b.shop.test",
    "other.test",
    "localhost",
    "127.0.0.1",
    "foo.blogspot.com",
    "co.uk",
]
PATHS = ["/", "/cart", "/cart/items", "/carton"]

attribute = st.one_of(
    st.builds(
        "Domain={}".format,
        st.sampled_from(
            [
                "shop.test",
                ".shop.test",
                "www.shop.test",
                "blogspot.com",
                "co.uk",
                "other.test",
                "localhost",
                "127.0.0.1",
            ]
        ),
    ),
    st.builds("Path={}".format, st.sampled_from([*PATHS, "", "cart"])),
    st.builds("Max-Age={}".format, st.sampled_from(["0", "-1", "3600", "99999999", "10" + "0" * 20, "soon"])),
    st.builds(
        "Expires={}".format,
        st.sampled_from(
            [
                "Thu, 01 Jan 1970 00:00:00 GMT",
                "Fri, 31 Dec 9999 23:59:59 GMT",
                "Wed, 21 Oct 2065 07:28:00 GMT",
                "not a date",
            ]
        ),
    ),
    st.sampled_from(
        [
            "Secure",
            "HttpOnly",
            "httponly",
            "SameSite=Lax",
            "SameSite=Strict",
            "SameSite=None",
            "Priority=High",
            "Partitioned",
            "Version=1",
            "Port=80",
            "Comment=x",
        ]
    ),
)
name = st.sampled_from(["sid", "a", "consent", "__Host-x", "$weird", "Q"])
value = st.one_of(st.none(), st.sampled_from(["", "1", "v=2", '"quoted"', "é", "a b"]))
set_cookie = st.builds(
    lambda n, v, attrs: "; ".join([n if v is None else f"{n}={v}", *attrs]),
    name,
    value,
    st.lists(attribute, max_size=4),
)
url = st.builds("{}://{}{}".format, st.sampled_from(["http", "https"]), st.sampled_from(HOSTS), st.sampled_from(PATHS))
request_cookie = st.fixed_dictionaries(
    {"name": name, "value": st.sampled_from(["1", "", "x"])},
    optional={
        "domain": st.sampled_from([*HOSTS, ".shop.test"]),
        "path": st.sampled_from(PATHS),
        "secure": st.booleans(),
    },
)
visit = st.tuples(url, st.lists(set_cookie, max_size=3), st.lists(request_cookie, max_size=2))


def sends(rig: Rig, session: Session, urls: list[str]) -> list[bytes | None]:
    out = []
    for target in urls:
        request = Request(target)
        rig.mw.cookies.send(request, session, rig.crawler.spider)
        out.append(request.headers.get(b"Cookie"))
    return out


def round_trip(pool: SessionPool) -> tuple[SessionPool, list]:
    problems: list = []
    with tempfile.TemporaryDirectory() as directory:
        store = FileStore(directory)
        store.save("pool", pool.get_state())
        state = store.load("pool")
    restored = SessionPool(max_pool_size=pool.max_pool_size)
    restored.restore(state, on_problem=lambda kind, error: problems.append((kind, str(error))))
    return restored, problems


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(visit, min_size=1, max_size=6), st.lists(url, min_size=1, max_size=8))
def test_a_restored_jar_sends_what_the_saved_one_sent(visits, targets):
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=1)
    for target, headers, cookies in visits:
        request = rig.send(target, cookies=cookies)
        rig.answer(request, *headers)
    (session,) = get_pool(rig.crawler)
    restored, problems = round_trip(get_pool(rig.crawler))
    assert problems == []
    (again,) = restored
    assert sends(rig, again, targets) == sends(rig, session, targets)
    assert sorted(map(json.dumps, map(cookie_to_state, jar_cookies(again.cookie_jar)))) == sorted(
        map(json.dumps, map(cookie_to_state, jar_cookies(session.cookie_jar)))
    )


def test_the_cookies_that_once_made_the_whole_state_unloadable_come_back():
    rig = Rig(SESSIONPOOL_MAX_POOL_SIZE=1)
    request = rig.send("https://shop.test/")
    rig.answer(request, "consent", "huge=1; Max-Age=" + "9" * 30, "lax=1; SameSite=Lax; Secure")
    (session,) = get_pool(rig.crawler)
    session.cookie_jar.set_cookie(make_cookie("odd", "1", domain=""))  # reachable through the jar only
    restored, problems = round_trip(get_pool(rig.crawler))
    assert problems == []
    (again,) = restored
    assert {c["name"]: c for c in again.cookies} == {c["name"]: c for c in session.cookies}
    assert {c["name"] for c in again.cookies} == {"consent", "huge", "lax", "odd"}
    assert {c["name"]: c.get("rest") for c in again.cookies}["lax"] == {"SameSite": "Lax"}
    assert sends(rig, again, ["https://shop.test/"]) == sends(rig, session, ["https://shop.test/"])
