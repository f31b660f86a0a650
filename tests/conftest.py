"""Shared fixtures: the local test site, local proxies, and a way to run real crawls."""

from __future__ import annotations

import sys, pathlib
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "example_project"))  # the tests reuse the demo's local servers

from collections.abc import Iterator

import pytest

from tests.support.proxy import ForwardingProxy
from tests.support.site import GuardedSite


@pytest.fixture
def site() -> Iterator[GuardedSite]:
    with GuardedSite() as server:
        yield server


@pytest.fixture
def make_proxies() -> Iterator:
    started: list[ForwardingProxy] = []

    def make(count: int, **kwargs) -> list[ForwardingProxy]:
        new = [ForwardingProxy(f"proxy{len(started) + i}", **kwargs).start() for i in range(count)]
        started.extend(new)
        return new

    yield make
    for proxy in started:
        proxy.stop()
