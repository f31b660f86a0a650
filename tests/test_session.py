import json
import math

import pytest

from scrapy_sessionpool import Session, SessionOptions, SessionPool, StateError
from tests.clock import FakeClock


def make(clock=None, **options):
    return Session(options=options or None, clock=clock or FakeClock())


def test_defaults_are_apifys():
    s = make()
    assert (s.max_age_secs, s.max_usage_count, s.max_error_score, s.error_score_decrement) == (3000, 50, 3, 0.5)
    assert s.usage_count == 0 and s.error_score == 0
    assert s.proxy_url is None and s.user_agent is None and s.user_data == {}


def test_ids_are_unique_and_unguessable():
    ids = {Session().id for _ in range(2000)}
    assert len(ids) == 2000
    assert all(i.startswith("session_") and len(i) >= len("session_") + 20 for i in ids)


@pytest.mark.parametrize("bad", ["", "a b", "x\ny", "é", "a" * 129, 5])
def test_bad_ids_are_refused(bad):
    with pytest.raises(ValueError, match="session id"):
        Session(id=bad)


def test_expiry_follows_the_clock():
    clock = FakeClock()
    s = make(clock, max_age_secs=10)
    assert s.expires_at == s.created_at + 10
    clock.advance(9.99)
    assert not s.is_expired and s.is_usable
    clock.advance(0.01)
    assert s.is_expired and not s.is_usable


def test_mark_good_lowers_the_error_score_but_never_below_zero():
    s = make()
    s.mark_bad()
    s.mark_bad()
    assert (s.usage_count, s.error_score) == (2, 2)
    s.mark_good()
    assert (s.usage_count, s.error_score) == (3, 1.5)
    for _ in range(5):
        s.mark_good()
    assert s.error_score == 0 and s.usage_count == 8


def test_blocked_when_error_score_reaches_the_maximum():
    s = make(max_error_score=2)
    s.mark_bad()
    assert not s.is_blocked and s.is_usable
    s.mark_bad()
    assert s.is_blocked and not s.is_usable
    assert s.retired_reason == "error_score"


def test_max_usage_count_of_one_is_honoured():
    s = make(max_usage_count=1)
    assert s.is_usable
    s.mark_good()
    assert s.is_max_usage_count_reached and not s.is_usable
    assert s.retired_reason == "max_usage_count"


def test_retirement_is_final():
    """Apify and Crawlee revive a retired session on mark_good(); we never do."""
    s = make()
    s.retire()
    assert s.is_retired and not s.is_usable
    for _ in range(20):
        s.mark_good()
    assert s.error_score == 0 and not s.is_usable and s.retired_reason == "manual"
    s.retire("again")
    assert s.retired_reason == "manual"


def test_a_session_blocked_by_errors_stays_retired_after_mark_good():
    s = make(max_error_score=1)
    s.mark_bad()
    s.mark_good()
    s.mark_good()
    assert s.is_retired and not s.is_usable
    assert (s.usage_count, s.error_score) == (1, 1)  # marks on a retired session change nothing


@pytest.mark.parametrize(
    ("status", "codes", "retired"),
    [
        (403, None, True),
        (401, None, True),
        (429, None, True),
        (200, None, False),
        (503, None, False),
        (503, [503], True),
        (403, [503], False),
    ],
)
def test_retire_on_blocked_status_codes(status, codes, retired):
    s = make()
    assert s.retire_on_blocked_status_codes(status, codes) is retired
    assert s.is_retired is retired
    if retired:
        assert s.retired_reason == f"status_{status}"


def test_cookies_keep_their_attributes_through_state():
    s = make()
    s.set_cookie(
        "sid", "s3cret", domain="shop.example", path="/cart", expires=2_000_000_000, secure=True, http_only=True
    )
    s.set_cookie("wide", "1", domain=".example.org")
    sid, wide = sorted(s.cookies, key=lambda c: c["name"])
    assert sid == {
        "name": "sid",
        "value": "s3cret",
        "domain": "shop.example",
        "path": "/cart",
        "expires": 2_000_000_000,
        "secure": True,
        "http_only": True,
        "host_only": True,
    }
    assert wide["domain"] == ".example.org" and not wide["host_only"] and wide["expires"] is None
    copy = Session.from_state(json.loads(json.dumps(s.to_state())))
    assert copy.cookies == s.cookies


def test_state_round_trip_is_exact():
    clock = FakeClock()
    s = Session(
        proxy_url="http://u:p@proxy:8080", user_agent="UA/1", user_data={"token": "t", "n": [1, 2]}, clock=clock
    )
    s.set_cookie("a", "b", domain="example.com")
    s.mark_bad()
    s.mark_good()
    state = s.to_state()
    copy = Session.from_state(json.loads(json.dumps(state)), clock=clock)
    assert copy.to_state() == state
    assert (copy.id, copy.usage_count, copy.error_score, copy.created_at) == (s.id, 2, 0.5, s.created_at)


def test_from_state_takes_limits_from_the_options_not_the_state():
    s = Session(options={"max_usage_count": 5})
    copy = Session.from_state(s.to_state(), options={"max_usage_count": 7})
    assert copy.max_usage_count == 7


def test_retired_state_stays_retired():
    s = make()
    s.retire("status_403")
    copy = Session.from_state(s.to_state())
    assert copy.is_retired and copy.retired_reason == "status_403"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"id": "bad id"}, "id"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"created_at": math.nan}, "created_at"),
        ({"usage_count": -1}, "usage_count"),
        ({"usage_count": 1.5}, "usage_count"),
        ({"usage_count": 10**30}, "usage_count"),
        ({"error_score": math.inf}, "error_score"),
        ({"proxy_url": 3}, "proxy_url"),
        ({"user_data": []}, "user_data"),
        ({"cookies": {}}, "cookies"),
        ({"cookies": [{"name": "a"}]}, "cookies[0]"),
        (
            {
                "cookies": [
                    {
                        "name": "a",
                        "value": 1,
                        "domain": "d",
                        "path": "/",
                        "expires": None,
                        "secure": False,
                        "http_only": False,
                        "host_only": True,
                    }
                ]
            },
            "cookies[0].value",
        ),
        (
            {
                "cookies": [
                    {
                        "name": "a",
                        "value": "1",
                        "domain": "d",
                        "path": "/",
                        "expires": "soon",
                        "secure": False,
                        "http_only": False,
                        "host_only": True,
                    }
                ]
            },
            "cookies[0].expires",
        ),
    ],
)
def test_from_state_names_the_bad_field(patch, field):
    state = {**Session(id="s1").to_state(), **patch}
    with pytest.raises(StateError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Session.from_state(state)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"max_age_secs": 0}, "max_age_secs"),
        ({"max_usage_count": 0}, "max_usage_count"),
        ({"max_usage_count": 1.5}, "max_usage_count"),
        ({"max_error_score": -1}, "max_error_score"),
        ({"error_score_decrement": math.nan}, "error_score_decrement"),
        ({"max_age_secs": True}, "max_age_secs"),
    ],
)
def test_bad_options_name_the_option(options, name):
    with pytest.raises(ValueError, match=name):
        SessionOptions.coerce(options)


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match=r"unknown option.*maxUsageCount"):
        SessionOptions.coerce({"maxUsageCount": 3})


def test_user_data_given_to_make_session_is_copied_for_each_session():
    pool = SessionPool(max_pool_size=2)
    shared = {"cart": {"items": []}}
    a, b = pool.make_session(user_data=shared), pool.make_session(user_data=shared)
    a.user_data["cart"]["items"].append(1)
    assert b.user_data == {"cart": {"items": []}} and shared == {"cart": {"items": []}}


def test_marks_on_a_retired_session_change_nothing():
    session = Session()
    session.retire("test")
    for mark in (session.mark_good, session.mark_bad, session.mark_good):
        mark()
    assert (session.usage_count, session.error_score, session.retired_reason) == (0, 0, "test")


@pytest.mark.parametrize("domain", ["", ".", None])
def test_set_cookie_needs_a_host_name(domain):
    with pytest.raises(ValueError, match="set_cookie: domain: expected a host name"):
        Session().set_cookie("a", "1", domain=domain)


def test_a_bad_cookie_is_left_out_alone_when_asked():
    session = Session(id="s1")
    session.set_cookie("good", "1", domain="shop.test")
    state = session.to_state()
    state["cookies"].insert(0, {**state["cookies"][0], "name": 7})
    with pytest.raises(StateError, match=r"cookies\[0\].name"):
        Session.from_state(state)
    problems = []
    again = Session.from_state(state, on_problem=lambda kind, error: problems.append((kind, str(error))))
    assert [c["name"] for c in again.cookies] == ["good"]
    assert problems == [("cookie", "session s1.cookies[0].name: expected a string")]


class Recorder:
    """A SessionObserver that notes what it is told (and may veto retirements)."""

    def __init__(self, veto=()):
        self.events, self.veto = [], set(veto)

    def session_marked(self, session, mark):
        self.events.append(("marked", mark))

    def session_suspected(self, session, change):
        self.events.append(("suspected", change))

    def session_retiring(self, session, reason):
        return reason not in self.veto

    def session_retired(self, session):
        self.events.append(("retired", session.retired_reason))


def test_a_session_tells_its_observer_every_change():
    observer = Recorder()
    s = Session(options={"max_error_score": 2})
    s.attach(observer)
    s.lease()
    s.mark_good()
    s.lease()
    s.release()
    s.release()  # nothing to give back: nothing told
    s.suspect(s.created_at + 5, condemned=True)
    s.acquit()
    s.clear_suspicion()
    s.mark_bad()
    s.mark_bad()  # error score 2: retired
    s.mark_good()  # retired: nothing more
    assert observer.events == [
        ("marked", "good"),
        ("marked", "release"),
        ("suspected", "suspect"),
        ("suspected", "acquit"),
        ("suspected", "clear"),
        ("marked", "bad"),
        ("retired", "error_score"),
    ]
    assert s.in_flight == 0


def test_an_observer_may_decide_a_retirement_later():
    observer = Recorder(veto={"error_score"})
    s = Session(options={"max_error_score": 1})
    s.attach(observer)
    s.mark_bad()  # the observer decides this one (a shared pool: Redis does)
    assert not s.is_retired and not s.is_usable and observer.events == [("marked", "bad")]
    s.retire("status_403")
    assert s.retired_reason == "status_403" and observer.events[-1] == ("retired", "status_403")
