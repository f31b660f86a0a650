"""Shared fixtures: the test site, local proxies, a redis-server and a Redis Cluster, all from :mod:`tests.support`."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.proxy import ForwardingProxy
from tests.support.site import GuardedSite

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _subprocesses_import_this_checkout() -> Iterator[None]:
    """The Python processes the tests start import this checkout's ``scrapy_sessionpool`` (and ``tests``),
    as the tests themselves do, not the checkout an editable install points to."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
        yield


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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A redis-server of the tests' own; skipped without the binary (but not in CI)."""
    from tests.support.redis_server import RedisServer

    if shutil.which("redis-server") is None:
        reason = "redis-server is not installed (apt-get install redis-server): Redis store tests skipped"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def _need_cluster_binaries():
    missing = [binary for binary in ("redis-server", "redis-cli") if shutil.which(binary) is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed (apt-get install redis-server): Redis Cluster tests skipped"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A Redis Cluster of the tests' own, three primaries; skipped without redis-server or redis-cli (not in CI)."""
    from tests.support.redis_cluster import RedisCluster

    _need_cluster_binaries()
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def redis_cluster_with_replicas(tmp_path_factory):
    """A Redis Cluster of three primaries with a replica each, whose nodes fail over within a second."""
    from tests.support.redis_cluster import RedisCluster

    _need_cluster_binaries()
    directory = tmp_path_factory.mktemp("redis-cluster-replicas")
    cluster = RedisCluster(directory, nodes=6, replicas=1, node_timeout_ms=1000).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_redis(redis_prefix, tmp_path):
    """A redis-server of the test's own, to stop and start."""
    from tests.support.redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


_prefixes = itertools.count()


@pytest.fixture
def redis_prefix(redis_server):
    """A key prefix no other test uses."""
    return f"test{os.getpid()}-{next(_prefixes)}"
