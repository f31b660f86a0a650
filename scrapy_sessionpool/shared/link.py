"""One pool's Lua scripts on one Redis, or on the node of a Redis Cluster that serves the pool's slot."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from . import scripts
from .schema import import_redis, pool_keys

__all__ = ["RedisLink"]

T = TypeVar("T")


class RedisLink:
    """One pool's scripts on one Redis, or on the node of a Redis Cluster that owns the pool's slot, run by SHA
    (loaded on first use or after a restart or a failover). Every call to Redis goes through it."""

    def __init__(self, url: str, base: str, params: Mapping[str, Any] | None = None, *, cluster: bool = False) -> None:
        redis = import_redis()
        exceptions = redis.exceptions
        self.cluster = cluster
        #: errors after which Redis may well take the same writes later: an outage (on a cluster: a node
        #: down or failing over, the cluster down, a slot not served or moving; programming errors are not)
        self.errors: tuple[type[BaseException], ...] = (
            exceptions.ConnectionError,
            exceptions.TimeoutError,
            OSError,
            exceptions.ReadOnlyError,
            exceptions.OutOfMemoryError,
            exceptions.ClusterError,
            exceptions.TryAgainError,
            exceptions.SlotNotCoveredError,
        )
        #: what redis-py raises when no node of the cluster answers: an outage too, as the error it wraps
        self._no_cluster: tuple[type[BaseException], ...] = (exceptions.RedisClusterException,) if cluster else ()
        self._unreachable = exceptions.ConnectionError
        # short timeouts by default (an outage is noticed in seconds); the user's options win, but
        # the replies must be text
        options = {"socket_timeout": 5, "socket_connect_timeout": 2, **(params or {}), "decode_responses": True}
        client_class = redis.asyncio.cluster.RedisCluster if cluster else redis.asyncio.Redis
        self.client = client_class.from_url(url, **options)
        self._no_script = exceptions.NoScriptError
        self._shas: dict[str, str] = {}
        self.keys = pool_keys(base)

    async def _run(self, call: Awaitable[T]) -> T:
        """``call`` awaited; a cluster none of whose nodes answers raises ConnectionError, as one Redis does."""
        try:
            return await call
        except self._no_cluster as exc:
            if isinstance(exc.__cause__, self.errors):
                raise self._unreachable(str(exc)) from exc
            raise

    async def _node(self) -> Any:
        """The cluster node that owns the pool's slot (the client learns the slots on first use)."""
        return (await self.client.initialize()).get_node_from_key(self.keys[0])

    async def eval(self, script: str, args: list[Any]) -> Any:
        """Run one of ``scripts`` by name."""
        return await self._run(self._eval(script, args))

    async def _eval(self, script: str, args: list[Any]) -> Any:
        sha = self._shas.get(script)
        if sha is not None:
            try:
                return await self.client.evalsha(sha, len(self.keys), *self.keys, *args)
            except self._no_script:
                pass
        text = getattr(scripts, script)
        if self.cluster:  # on the node that runs it: redis-py sends SCRIPT LOAD to every primary
            sha = await self.client.execute_command("SCRIPT LOAD", text, target_nodes=await self._node())
        else:
            sha = await self.client.script_load(text)
        self._shas[script] = sha
        try:
            return await self.client.evalsha(sha, len(self.keys), *self.keys, *args)
        except self._no_script:  # the slot moved to another node since the load: EVAL goes where it is
            return await self.client.eval(text, len(self.keys), *self.keys, *args)

    async def pipeline(self, *commands: tuple[Any, ...]) -> list[Any]:
        """The replies of ``commands`` (each a name and its arguments), in one round trip. Reads: no
        transaction, which a cluster client may not offer (the pool's keys are all on one node)."""
        return await self._run(self._pipeline(commands))

    async def _pipeline(self, commands: tuple[tuple[Any, ...], ...]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute())

    async def ping(self) -> bool:
        """Does Redis (the node that owns the pool's slot) answer again? Connections from before the
        outage are dropped first, and a cluster client learns the slots again."""
        try:
            await self._run(self._ping())
        except self.errors:
            return False
        return True

    async def _ping(self) -> None:
        if self.cluster:
            await self.client.aclose()
            await self.client.ping(target_nodes=await self._node())
        else:
            await self.client.connection_pool.disconnect()
            await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose() if hasattr(self.client, "aclose") else await self.client.close()
