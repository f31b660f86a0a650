"""Hostile state: fuzzed states and files load cleanly or are refused with StateError, nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrapy_sessionpool import StateError
from scrapy_sessionpool.core.state import STATE_VERSION
from tests.fuzz_state import VALID, check_bytes, check_state, mutated_states

FUZZ = settings(max_examples=300, deadline=None, derandomize=True)


@FUZZ
@given(mutated_states())
def test_mutated_states_load_or_are_refused(state):
    check_state(state)


@FUZZ
@given(st.binary(max_size=500))
def test_random_bytes_in_a_state_file_are_refused(tmp_path_factory, data):
    check_bytes(tmp_path_factory.mktemp("fuzz"), data)


@pytest.mark.parametrize(
    "patch",
    [
        {"version": STATE_VERSION + 1},
        {"version": 2**80},
        {"version": float("nan")},
        {"sessions": [{**VALID["sessions"][0], "usage_count": 10**400}]},
        {"sessions": [{**VALID["sessions"][0], "created_at": 1e308}]},
        {"sessions": [{**VALID["sessions"][0], "id": "session_\n; rm -rf"}]},
        {"sessions": [{**VALID["sessions"][0], "proxy_url": "ftp://evil"}]},
        {"sessions": [{**VALID["sessions"][0], "user_data": {"a": float("inf")}}]},
    ],
)
def test_hostile_values_are_refused(patch):
    with pytest.raises(StateError):
        from scrapy_sessionpool.core.pool import parse_state

        parse_state(json.loads(json.dumps({**VALID, **patch}, allow_nan=True)))


def test_deeply_nested_json_is_refused(tmp_path):
    check_bytes(tmp_path, b'{"version": 1, "sessions": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
