"""Accounts (``core.accounts``) and the pool that gives each session one: no reactor, an injected clock."""

from __future__ import annotations

import json

import pytest

from scrapy_sessionpool.core import reasons
from scrapy_sessionpool.core.accounts import Account, Accounts, load_accounts
from scrapy_sessionpool.core.pool import SessionPool
from tests.clock import FakeClock


def book(n=3, rest=60.0, max_blocks=2, **kwargs):
    return Accounts(
        load_accounts([{"username": f"u{i}", "password": f"pw{i}"} for i in range(n)], "A"),
        rest_secs=rest,
        max_blocks=max_blocks,
        **kwargs,
    )


def test_an_account_never_shows_its_secrets():
    account = Account("alice", {"username": "alice", "password": "hunter2", "api_token": "t0k", "otp_seed": "s"})
    assert account["password"] == "hunter2"
    for shown in (repr(account), str(account), f"{account}", repr([account])):
        assert "alice" in shown
        assert "hunter2" not in shown and "t0k" not in shown and "'s'" not in shown


def test_accounts_load_from_a_json_lines_file(tmp_path):
    path = tmp_path / "accounts.jsonl"
    path.write_text('{"username": "a", "password": "x"}\n\n{"label": "b", "email": "b@x", "password": "y"}\n')
    accounts = load_accounts(str(path), "SESSIONPOOL_ACCOUNTS")
    assert [a.label for a in accounts] == ["a", "b"]
    assert accounts[1]["email"] == "b@x"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"username": "a"}\nnot json\n', "line 2: expected a JSON object per line"),
        ('["a"]\n', "[0]: expected an object of fields"),
        ('{"password": "secret-value"}\n', "[0]: expected a 'label' or 'username'"),
    ],
)
def test_a_bad_accounts_file_names_the_setting_the_file_and_the_line(tmp_path, content, message):
    path = tmp_path / "accounts.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match="SESSIONPOOL_ACCOUNTS file") as info:
        load_accounts(str(path), "SESSIONPOOL_ACCOUNTS")
    assert message in str(info.value)
    assert "secret-value" not in str(info.value)


def test_a_missing_accounts_file():
    with pytest.raises(ValueError, match=r"SESSIONPOOL_ACCOUNTS file '/nowhere/a.jsonl': cannot read it"):
        load_accounts("/nowhere/a.jsonl", "SESSIONPOOL_ACCOUNTS")


def test_one_session_per_account_and_blocks_rest_then_retire():
    events = []
    accounts = book(2, rest=10.0, on_event=lambda label, event: events.append((label, event)))
    assert accounts.take("s1", 0.0).label == "u0"
    assert accounts.take("s2", 0.0).label == "u1"
    assert accounts.take("s3", 0.0) is None  # both held
    assert accounts.release("u0", "s1", 1.0, blocked=True) == "rests"
    assert accounts.take("s3", 5.0) is None  # resting until 11
    assert accounts.release("u1", "s2", 6.0, blocked=False) is None
    assert accounts.take("s3", 7.0).label == "u1"  # free again at once
    assert accounts.take("s4", 11.0).label == "u0"
    assert accounts.release("u0", "s4", 12.0, blocked=True) == "retired"
    assert len(accounts) == 1
    assert accounts.take("s5", 1000.0) is None
    assert events == [("u0", "rests"), ("u0", "retired")]


def test_a_release_by_another_session_changes_nothing():
    accounts = book(1)
    accounts.take("s1", 0.0)
    assert accounts.release("u0", "other", 0.0, blocked=True) is None
    assert accounts.free(0.0) == 0


def test_rests_and_retirements_are_kept_and_bad_entries_left_out_alone():
    accounts = book(3)
    accounts.take("s1", 0.0)
    accounts.release("u0", "s1", 100.0, blocked=True)
    state = json.loads(json.dumps(accounts.to_state()))
    assert state == {"u0": {"blocks": 1, "rests_until": 160.0, "retired": False}}
    again = book(3)
    problems = again.restore({**state, "u1": {"blocks": "many"}, "gone": {"blocks": 1}})
    assert len(problems) == 1 and "u1" in str(problems[0])
    assert again.take("s", 150.0).label == "u1"  # u0 still rests
    assert again.to_state()["u0"]["rests_until"] == 160.0


def test_the_pool_never_holds_more_sessions_than_accounts():
    clock = FakeClock()
    pool = SessionPool(max_pool_size=10, clock=clock, accounts=book(3, rest=30.0))
    sessions = [pool.get_session() for _ in range(6)]
    assert len(pool) == 3
    assert sorted({s.account for s in sessions}) == ["u0", "u1", "u2"]
    sessions[0].retire("status_403")  # a block: its account rests
    assert pool.get_session().id in {s.id for s in sessions}  # no fourth session meanwhile
    assert len(pool) == 2
    clock.advance(31)
    fresh = pool.get_session()
    assert fresh.account == sessions[0].account and fresh.id not in {s.id for s in sessions}
    fresh.retire(reasons.MAX_USAGE_COUNT)  # worn out, not blocked: the account is free at once
    assert pool.get_session().account == sessions[0].account


def test_a_restored_pool_keeps_each_session_its_account_and_the_rests():
    clock = FakeClock()
    pool = SessionPool(max_pool_size=3, clock=clock, accounts=book(3))
    first, second, _ = (pool.get_session() for _ in range(3))
    second.retire("captcha")
    state = json.loads(json.dumps(pool.get_state()))
    assert "password" not in json.dumps(state) and "pw1" not in json.dumps(state)
    restored = SessionPool(max_pool_size=3, clock=clock, accounts=book(3))
    assert restored.restore(state) == 2
    assert restored.find(first.id).account == first.account
    assert restored.get_session().account != second.account  # the blocked one still rests
    assert len(restored) == 2


def test_a_restored_session_whose_account_is_gone_is_left_out():
    pool = SessionPool(max_pool_size=3, accounts=book(3))
    sessions = [pool.get_session() for _ in range(3)]
    state = pool.get_state()
    fewer = SessionPool(max_pool_size=3, accounts=book(2))
    assert fewer.restore(state) == 2
    assert {s.account for s in fewer} == {s.account for s in sessions} - {"u2"}


def test_sessions_that_need_an_init_serve_nothing_before_it():
    pool = SessionPool(max_pool_size=2, needs_init=True)
    new = pool.get_session()
    assert not new.initialized
    other = pool.get_session()
    assert other is not new  # the first is not handed out again before its init ends
    assert pool.get_session() is None  # both wait for their init
    pool.init_ended(new, True)
    assert new.initialized and pool.get_session() is new
    pool.init_ended(other, False)
    assert other.retired_reason == reasons.INIT_FAILED


def test_a_session_whose_check_failed_is_handed_out_once_for_its_init_again():
    pool = SessionPool(max_pool_size=1, needs_init=True)
    session = pool.get_session()
    pool.init_ended(session, True)
    session.release()
    pool.init_again(session)
    assert not session.initialized
    assert pool.get_session() is session  # to the caller that initialises it again
    assert pool.get_session() is None
    pool.init_ended(session, True)
    assert pool.get_session() is session


def test_restored_sessions_that_were_initialised_are_ready_and_the_others_await_an_init():
    pool = SessionPool(max_pool_size=2, needs_init=True)
    ready, pending = pool.get_session(), pool.get_session()
    pool.init_ended(ready, True)
    state = json.loads(json.dumps(pool.get_state()))
    restored = SessionPool(max_pool_size=2, needs_init=True)
    assert restored.restore(state) == 2
    handed = {restored.get_session().id, restored.get_session().id}
    assert handed == {ready.id, pending.id}  # the initialised one to serve, the other for its init
    assert restored.find(ready.id).initialized and not restored.find(pending.id).initialized
