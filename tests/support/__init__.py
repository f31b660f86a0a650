"""The servers the tests start, one to a module, all on 127.0.0.1 and free ports, none from the example project.

- :mod:`~tests.support.server`: the base of the HTTP ones (threaded HTTP/1.1, ``start`` / ``stop``, ``with``);
- :mod:`~tests.support.site`: :class:`GuardedSite`, a shop that hands out ``sid`` cookies and blocks them;
- :mod:`~tests.support.blocksite`: :class:`BlockSite`, its blocks one cell of :mod:`~tests.support.blocking`;
- :mod:`~tests.support.proxy`: :class:`ForwardingProxy`, a plain-HTTP proxy that names the exit it stands for;
- :mod:`~tests.support.redis_server`: :class:`RedisServer`, a real ``redis-server`` with its data in a directory;
- :mod:`~tests.support.redis_cluster`: :class:`RedisCluster`, a Redis Cluster of three such servers.

:mod:`~tests.support.blocking` (the block model) and :mod:`~tests.support.sim` (simulated crawls) serve no port.
"""
