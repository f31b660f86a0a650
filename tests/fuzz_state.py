"""Hypothesis strategies and the property for fuzzing the state loaders (file and Redis shapes).

The suite runs a short fuzz (tests/test_state_fuzz.py); ``python tests/fuzz_state.py --examples N``
runs a long one.
"""

from __future__ import annotations

import json
import math

from hypothesis import strategies as st

from scrapy_sessionpool import SessionPool, StateError
from scrapy_sessionpool.core.pool import parse_state
from scrapy_sessionpool.stores.file import FileStore

ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["", "../../x", "session_ok", "a" * 200, "\x00", "\n", "%(spider)s", "session_\u202e", "1e309"]
)
SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True) | ODD_TEXT
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4), max_leaves=20
)


def valid_state() -> dict:
    pool = SessionPool(
        max_pool_size=3,
        seed=1,
        create_session_function=lambda p: p.make_session(
            proxy_url="http://u:p@proxy:8080", user_agent="UA", user_data={"k": [1, 2]}
        ),
    )
    for _ in range(3):
        session = pool.get_session()
        session.set_cookie("sid", "v", domain="shop.example", expires=4_000_000_000, secure=True)
    return pool.get_state()


VALID = valid_state()
FIELDS = ["version", "retired_sessions_count", "sessions"]
SESSION_FIELDS = list(VALID["sessions"][0])
COOKIE_FIELDS = list(VALID["sessions"][0]["cookies"][0])


@st.composite
def mutated_states(draw) -> object:
    """A valid state with one part replaced by something random (or the whole thing random)."""
    state = json.loads(json.dumps(VALID))
    where = draw(st.sampled_from(["whole", "top", "session", "cookie", "drop"]))
    value = draw(JSON)
    if where == "whole":
        return value
    if where == "top":
        state[draw(st.sampled_from(FIELDS))] = value
    elif where == "session":
        state["sessions"][draw(st.integers(0, 2))][draw(st.sampled_from(SESSION_FIELDS))] = value
    elif where == "cookie":
        state["sessions"][0]["cookies"][0][draw(st.sampled_from(COOKIE_FIELDS))] = value
    else:
        del state["sessions"][draw(st.integers(0, 2))][draw(st.sampled_from(SESSION_FIELDS[:4]))]
    return state


def check_state(state: object) -> None:
    """The loader's promise: a pool, or a StateError; never another exception, never a bad session."""
    try:
        parse_state(state)
    except StateError:
        return
    pool = SessionPool(max_pool_size=10)
    pool.restore(state)
    for session in pool:
        assert math.isfinite(session.created_at) and session.usage_count >= 0
        json.dumps(session.to_state(), allow_nan=False)


def check_bytes(tmp_dir, data: bytes) -> None:
    """Raw file content: the file store gives a dict or a StateError, and then the state check holds."""
    store = FileStore(tmp_dir)
    store.path("fuzz").write_bytes(data)
    try:
        state = store.load("fuzz")
    except StateError:
        return
    check_state(state)


if __name__ == "__main__":
    import argparse
    import tempfile

    from hypothesis import given, settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=20_000)
    args = parser.parse_args()
    directory = tempfile.mkdtemp()

    @settings(max_examples=args.examples, deadline=None, database=None)
    @given(mutated_states())
    def fuzz_states(state):
        check_state(state)

    @settings(max_examples=args.examples, deadline=None, database=None)
    @given(st.binary(max_size=2000) | st.builds(lambda s: json.dumps(s).encode(), mutated_states()))
    def fuzz_files(data):
        check_bytes(directory, data)

    fuzz_states()
    fuzz_files()
    print(f"{args.examples} mutated states and {args.examples} raw files: every one loaded or was refused cleanly")
