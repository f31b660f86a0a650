"""JarKeys: one session per ``cookiejar`` key, one key per session."""

from __future__ import annotations

from scrapy_sessionpool.core.jar_keys import NO_KEY, JarKeys


def test_a_key_keeps_its_session_and_a_session_serves_one_key_for_life():
    keys = JarKeys()
    assert keys.bind(None, 1, "a") and keys.bind(None, 2, "b")
    assert (keys.session_of(None, 1), keys.session_of(None, 2), keys.session_of("other", 1)) == ("a", "b", None)
    assert not keys.bind(None, 3, "a")  # held by key 1: no other key gets it
    assert keys.session_of(None, 3) is None
    assert keys.bind(None, 1, "c")  # key 1 moves on; "a" carries its cookies and stays its own
    assert keys.session_of(None, 1) == "c" and len(keys) == 3
    assert keys.avoid(None, 2)("a") is True and keys.avoid(None, 1)("a") is False


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
    keys.bind(None, "k", "b")
    keys.forget("a")  # a session the key left: the key keeps its current one
    assert keys.session_of(None, "k") == "b"
    keys.forget("b")
    keys.forget("never-bound")
    assert keys.session_of(None, "k") is None and len(keys) == 0
