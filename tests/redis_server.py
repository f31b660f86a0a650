"""The tests' redis-server, where the benchmarks import it from (the tests use :mod:`tests.support.redis_server`)."""

from tests.support.redis_server import RedisServer, free_port

__all__ = ["RedisServer", "free_port"]
