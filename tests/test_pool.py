import json
from collections import Counter

import pytest

from scrapy_sessionpool import PoolFullError, Session, SessionPool, StateError
from scrapy_sessionpool.core.state import STATE_VERSION
from tests.clock import FakeClock


def make_pool(clock=None, **kwargs):
    kwargs.setdefault("seed", 7)
    return SessionPool(clock=clock or FakeClock(), **kwargs)


def test_fills_the_pool_then_reuses():
    pool = make_pool(max_pool_size=3)
    first = [pool.get_session() for _ in range(3)]
    assert len({s.id for s in first}) == 3
    again = {pool.get_session().id for _ in range(30)}
    assert again <= {s.id for s in first}
    assert pool.usable_sessions_count == 3


def test_get_session_by_id():
    pool = make_pool()
    s = pool.get_session()
    assert pool.get_session(s.id) is s
    assert pool.get_session("session_nope") is None
    s.retire()
    assert pool.get_session(s.id) is None


def test_retired_sessions_leave_the_pool_and_free_their_slot():
    pool = make_pool(max_pool_size=2)
    a, b = pool.get_session(), pool.get_session()
    a.retire()
    assert pool.usable_sessions_count == 1 and pool.retired_sessions_count == 1
    c = pool.get_session()
    assert c is not a and c is not b  # the free slot makes a new session
    assert {s.id for s in pool} == {b.id, c.id}


@pytest.mark.parametrize("strategy", ["random", "round_robin", "use_until_failure"])
def test_a_retired_session_is_never_handed_out_again(strategy):
    pool = make_pool(max_pool_size=3, reuse_strategy=strategy)
    sessions = [pool.get_session() for _ in range(3)]
    sessions[1].retire()
    sessions[1].mark_good()
    seen = {pool.get_session().id for _ in range(50)}
    assert sessions[1].id not in seen


@pytest.mark.parametrize("reason", ["blocked", "expired", "used_up"])
def test_every_kind_of_unusable_session_leaves_at_once(reason):
    clock = FakeClock()
    pool = make_pool(
        clock, max_pool_size=1, session_options={"max_error_score": 1, "max_usage_count": 2, "max_age_secs": 60}
    )
    s = pool.get_session()
    if reason == "blocked":
        s.mark_bad()
    elif reason == "expired":
        clock.advance(60)
    else:
        s.mark_good()
        pool.get_session().mark_good()
    assert pool.usable_sessions_count == 0
    assert pool.retired_sessions_count == 1
    assert pool.get_session() is not s


def test_max_usage_count_one_hands_each_session_out_once_even_in_flight():
    pool = make_pool(max_pool_size=3, session_options={"max_usage_count": 1})
    handed = [pool.get_session() for _ in range(3)]
    assert len({s.id for s in handed}) == 3
    assert pool.get_session() is None  # every session is in flight up to its limit
    handed[0].mark_good()
    assert handed[0].is_retired
    fresh = pool.get_session()
    assert fresh is not None and fresh.id not in {s.id for s in handed}


def test_leases_never_exceed_the_usage_limit():
    pool = make_pool(max_pool_size=2, session_options={"max_usage_count": 3})
    uses = Counter()
    in_flight = []
    for _ in range(200):
        s = pool.get_session()
        if s is None:
            in_flight.pop(0).mark_good()
            continue
        uses[s.id] += 1
        in_flight.append(s)
        if len(in_flight) > 4:
            in_flight.pop(0).mark_good()
    assert max(uses.values()) <= 3


def test_round_robin_takes_turns():
    pool = make_pool(max_pool_size=3, reuse_strategy="round_robin")
    ids = [pool.get_session().id for _ in range(3)]
    assert [pool.get_session().id for _ in range(6)] == ids + ids


def test_use_until_failure_sticks_to_a_session_until_it_fails():
    pool = make_pool(max_pool_size=3, reuse_strategy="use_until_failure")
    a, b, c = (pool.get_session() for _ in range(3))
    for s in (a, b, c):
        s.mark_good()
    first = pool.get_session()
    first.mark_good()
    assert pool.get_session() is first
    first.mark_good()
    first.mark_bad()
    second = pool.get_session()
    assert second is not first
    assert pool.get_session() is second


def test_random_strategy_is_seeded():
    def picks(seed):
        pool = SessionPool(
            max_pool_size=5,
            seed=seed,
            clock=FakeClock(),
            create_session_function=lambda p: p.make_session(id=f"s{len(p)}"),
        )
        [pool.get_session() for _ in range(5)]
        return [pool.get_session().id for _ in range(20)]

    assert picks(1) == picks(1)
    assert picks(1) != picks(2)
    assert len(set(picks(1))) > 1


def test_create_session_function_gets_the_pool():
    made = []

    def create(pool):
        session = pool.make_session(proxy_url=f"http://proxy{len(made)}:8080", user_agent="UA")
        made.append(session)
        return session

    pool = make_pool(create_session_function=create, max_pool_size=2)
    s = pool.get_session()
    assert s is made[0] and s.proxy_url == "http://proxy0:8080" and s.max_usage_count == 50


@pytest.mark.parametrize(
    ("result", "error"),
    [(None, TypeError), ("x", TypeError)],
)
def test_create_session_function_must_return_a_session(result, error):
    pool = make_pool(create_session_function=lambda p: result)
    with pytest.raises(error, match="create_session_function"):
        pool.get_session()


def test_create_session_function_must_return_a_usable_session():
    def create(pool):
        s = pool.make_session()
        s.retire()
        return s

    with pytest.raises(ValueError, match="unusable"):
        make_pool(create_session_function=create).get_session()


def test_add_session():
    pool = make_pool(max_pool_size=1)
    s = Session(id="mine")
    pool.add_session(s)
    assert pool.get_session("mine") is s
    with pytest.raises(PoolFullError):
        pool.add_session(Session())
    with pytest.raises(ValueError, match="already"):
        make_pool_with(s)


def make_pool_with(session):
    pool = make_pool()
    pool.add_session(session)
    pool.add_session(session)


def test_retire_listener_is_told_with_the_reason():
    pool = make_pool()
    told = []
    pool.add_listener("session_retired", lambda s: told.append((s.id, s.retired_reason)))
    created = []
    pool.add_listener("session_created", created.append)
    s = pool.get_session()
    s.retire_on_blocked_status_codes(429)
    assert told == [(s.id, "status_429")] and created == [s]
    with pytest.raises(ValueError, match="event"):
        pool.add_listener("retired", print)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_pool_size": 0}, "max_pool_size"),
        ({"max_pool_size": "10"}, "max_pool_size"),
        ({"reuse_strategy": "lru"}, "reuse_strategy"),
        ({"session_options": {"max_age_secs": -1}}, "max_age_secs"),
        ({"create_session_function": 3}, "create_session_function"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        SessionPool(**kwargs)


def test_proxy_pause_keeps_sessions_but_does_not_hand_them_out():
    proxies = iter(["http://a", "http://b", "http://a"])
    pool = make_pool(max_pool_size=3, create_session_function=lambda p: p.make_session(proxy_url=next(proxies)))
    sessions = [pool.get_session() for _ in range(3)]
    assert pool.sessions_count_by_proxy("http://a") == 2
    pool.pause_proxy("http://a")
    assert {pool.get_session().proxy_url for _ in range(20)} == {"http://b"}
    assert pool.get_session(sessions[0].id) is sessions[0]  # pinned requests still get it
    pool.resume_proxy("http://a")
    assert {pool.get_session().proxy_url for _ in range(40)} == {"http://a", "http://b"}


# -- state ---------------------------------------------------------------------


def test_state_survives_a_json_round_trip_exactly():
    clock = FakeClock()
    pool = make_pool(
        clock,
        max_pool_size=4,
        create_session_function=lambda p: p.make_session(
            proxy_url="http://user:pw@proxy:3128", user_agent="UA/2", user_data={"k": [1, "v"]}
        ),
    )
    for _ in range(4):
        s = pool.get_session()
        s.set_cookie("sid", s.id, domain="example.com", expires=2_000_000_000, secure=True, http_only=True)
        s.mark_bad()
    pool.get_session().retire()
    state = pool.get_state()
    restored = SessionPool.from_state(json.loads(json.dumps(state)), clock=clock, max_pool_size=4)
    assert restored.get_state() == state
    assert state["version"] == STATE_VERSION and restored.retired_sessions_count == 1


def test_restore_keeps_cookies_and_proxy_and_drops_expired_sessions():
    clock = FakeClock()
    pool = make_pool(
        clock,
        max_pool_size=3,
        session_options={"max_age_secs": 100},
        create_session_function=lambda p: p.make_session(proxy_url="http://p:1"),
    )
    old = pool.get_session()
    clock.advance(50)
    young = pool.get_session()
    young.set_cookie("sid", "abc", domain="example.com")
    state = pool.get_state()
    clock.advance(60)  # old is now 110 s old, young 60 s
    restored = SessionPool.from_state(state, clock=clock, session_options={"max_age_secs": 100})
    assert [s.id for s in restored] == [young.id]
    again = restored.get_session(young.id)
    assert again.proxy_url == "http://p:1" and again.cookies[0]["value"] == "abc"
    assert restored.retired_sessions_count == 1  # old expired meanwhile
    assert old.id not in {s.id for s in restored}


def test_restore_uses_the_current_limits():
    clock = FakeClock()
    pool = make_pool(clock, session_options={"max_usage_count": 77})
    pool.get_session()
    restored = SessionPool.from_state(pool.get_state(), clock=clock, session_options={"max_usage_count": 88})
    assert next(iter(restored)).max_usage_count == 88


def test_restore_drops_sessions_used_up_under_the_new_limits():
    clock = FakeClock()
    pool = make_pool(clock, session_options={"max_usage_count": 10})
    s = pool.get_session()
    for _ in range(5):
        s.mark_good()
    restored = SessionPool.from_state(pool.get_state(), clock=clock, session_options={"max_usage_count": 5})
    assert restored.usable_sessions_count == 0 and restored.retired_sessions_count == 1


def test_restore_beyond_max_pool_size_keeps_the_first():
    clock = FakeClock()
    pool = make_pool(clock, max_pool_size=5)
    ids = [pool.get_session().id for _ in range(5)]
    restored = SessionPool.from_state(pool.get_state(), clock=clock, max_pool_size=2)
    assert [s.id for s in restored] == ids[:2]


def test_restore_into_a_used_pool_is_refused():
    pool = make_pool()
    pool.get_session()
    with pytest.raises(ValueError, match="restore"):
        pool.restore(pool.get_state())


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ([], "expected an object"),
        ({"sessions": []}, "version"),
        ({"version": "1", "sessions": []}, "version"),
        ({"version": STATE_VERSION + 1, "sessions": []}, "newer"),
        ({"version": 1}, "sessions"),
        ({"version": 1, "sessions": [{}]}, r"sessions\[0\]"),
        ({"version": 1, "retired_sessions_count": -3, "sessions": []}, "retired_sessions_count"),
        ({"version": 1, "sessions": [Session(id="x").to_state(), Session(id="x").to_state()]}, "duplicate"),
    ],
)
def test_bad_state_is_refused_whole(state, message):
    pool = make_pool()
    with pytest.raises(StateError, match=message):
        pool.restore(state)
    assert pool.usable_sessions_count == 0


def test_expired_session_heap_stays_bounded():
    clock = FakeClock()
    pool = make_pool(clock, max_pool_size=10, session_options={"max_usage_count": 1})
    for _ in range(10_000):
        pool.get_session().mark_good()
    assert len(pool._expiry) <= 2 * 10 + 64 + 1


def test_warm_up_hands_a_new_session_to_one_request_until_its_first_answer():
    pool = make_pool(max_pool_size=2, warm_up=True)
    a, b = pool.get_session(), pool.get_session()
    assert pool.get_session() is None  # both are on their first request
    a.mark_good()
    assert {pool.get_session().id for _ in range(5)} == {a.id}
    b.release()  # a hand-out that never went out does not count as a first use
    assert pool.get_session() is not None


def test_release_gives_a_lease_back_without_counting_a_use():
    pool = make_pool(max_pool_size=1, session_options={"max_usage_count": 1})
    s = pool.get_session()
    assert pool.get_session() is None
    s.release()
    assert pool.get_session() is s and s.usage_count == 0


def test_find_looks_a_session_up_without_handing_it_out():
    pool = make_pool(max_pool_size=1, session_options={"max_usage_count": 1})
    s = pool.get_session()
    s.release()
    for _ in range(3):
        assert pool.find(s.id) is s
    assert pool.get_session() is s  # find() took no lease
    assert pool.find("session_nope") is None


def test_restore_with_on_problem_leaves_out_bad_and_duplicate_sessions_alone():
    pool = SessionPool(max_pool_size=3, seed=1)
    kept = [pool.get_session() for _ in range(2)]
    state = pool.get_state()
    state["sessions"] += [{"id": "broken"}, dict(state["sessions"][0])]
    with pytest.raises(StateError, match=r"sessions\[2\]: missing field"):
        SessionPool(max_pool_size=3).restore(state)
    problems = []
    again = SessionPool(max_pool_size=3)
    assert again.restore(state, on_problem=lambda kind, error: problems.append((kind, str(error)))) == 2
    assert {s.id for s in again} == {s.id for s in kept}
    assert [kind for kind, _ in problems] == ["session", "session"]
    assert "missing field(s)" in problems[0][1] and "duplicate session id" in problems[1][1]


def test_a_session_another_pool_refuses_stays_its_own_pools():
    clock = FakeClock()
    a, b = SessionPool(max_pool_size=1, clock=clock), SessionPool(max_pool_size=1, clock=clock)
    session = a.get_session()
    clock.advance(session.max_age_secs + 1)  # expired, and a has not looked yet
    with pytest.raises(ValueError, match="is not usable"):
        b.add_session(session)
    fresh = a.get_session()  # a still hears of it: it retires it and makes room for a new one
    assert fresh is not session and session.retired_reason == "expired" and a.retired_sessions_count == 1
