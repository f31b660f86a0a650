"""JarKeys: one session per ``cookiejar`` key, one key per session."""

from __future__ import annotations

from scrapy_sessionpool.jar_keys import NO_KEY, JarKeys


def test_a_key_keeps_its_session_and_a_session_serves_one_key():
    keys = JarKeys()
    keys.bind(None, 1, "a")
    keys.bind(None, 2, "b")
    assert (keys.session_of(None, 1), keys.session_of(None, 2), keys.session_of("other", 1)) == ("a", "b", None)
    keys.bind(None, 3, "a")  # a session taken over by another key leaves its old key
    assert (keys.session_of(None, 1), keys.session_of(None, 3), len(keys)) == (None, "a", 2)
    keys.bind(None, 3, "c")  # a key moving on frees its old session
    assert keys.avoid(None, 1)("a") is False and keys.avoid(None, 1)("c") is True


def test_avoid_refuses_sessions_of_other_keys_and_the_one_rotated_away_from():
    keys = JarKeys()
    assert keys.avoid(None, NO_KEY) is None  # no keys: nothing to test
    keys.bind(None, 1, "a")
    keys.bind("named", 1, "n")
    mine, unkeyed = keys.avoid(None, 1, also="x"), keys.avoid(None, NO_KEY)
    assert [mine(s) for s in ("a", "n", "x", "free")] == [False, True, True, False]
    assert [unkeyed(s) for s in ("a", "n", "free")] == [True, True, False]


def test_forget_frees_the_key():
    keys = JarKeys()
    keys.bind(None, "k", "a")
    keys.forget("a")
    keys.forget("never-bound")
    assert keys.session_of(None, "k") is None and len(keys) == 0
