"""Snapshots of a shared Redis pool as pool state: for the ``scrapy sessionpool`` command and tests.

The live pool itself is :class:`scrapy_sessionpool.shared.SharedPool`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..core.proxies import redact
from ..core.state import STATE_VERSION
from ..shared.schema import (
    cookie_field,
    glob_escape,
    import_redis,
    pool_base,
    state_from_fields,
    suspicion_fields,
)

__all__ = ["RedisStore"]


class RedisStore:
    """Snapshots of a Redis pool, for the ``scrapy sessionpool`` command and for tests.

    The crawl itself uses a :class:`~scrapy_sessionpool.shared.SharedPool` per pool: the pool lives in Redis.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "sessionpool",
        ttl: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.params = dict(params or {})  # redis-py client options (REDIS_PARAMS)
        self.prefix = prefix
        self.ttl = ttl
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            redis = import_redis()
            options = {"socket_timeout": 10, **self.params, "decode_responses": True}
            self._client = redis.Redis.from_url(self.url, **options)
        return self._client

    def describe(self, key: str) -> str:
        return f"{redact(self.url)} {pool_base(self.prefix, key)}"

    def load(self, key: str) -> dict[str, Any] | None:
        """The pool under ``key`` as a state dict (as ``SessionPool.get_state()``), or None."""
        base = pool_base(self.prefix, key)
        client = self.client
        ids = client.zrange(f"{base}:live", 0, -1)
        meta = client.hgetall(f"{base}:meta")
        if not ids and not meta:
            return None
        with client.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hgetall(f"{base}:s:{sid}")
                pipe.hgetall(f"{base}:c:{sid}")
            replies = pipe.execute()
        sessions = []
        for sid, fields, cookies in zip(ids, replies[::2], replies[1::2], strict=True):
            if fields:
                sessions.append(state_from_fields(sid, fields, cookies))
        return {"version": STATE_VERSION, "retired_sessions_count": int(meta.get("retired", 0)), "sessions": sessions}

    def save(self, key: str, state: dict[str, Any]) -> None:
        """Replace the pool under ``key`` with ``state`` (seeding a shared pool from a file)."""
        self.delete(key)
        base = pool_base(self.prefix, key)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(f"{base}:meta", mapping={"retired": state.get("retired_sessions_count", 0), "created": 0})
            for s in state.get("sessions", []):
                proxy = s.get("proxy_url") or ""
                pipe.hset(
                    f"{base}:s:{s['id']}",
                    mapping={
                        "created_at": repr(float(s["created_at"])),
                        "usage": s["usage_count"],
                        "handed": s["usage_count"],
                        "errors": repr(float(s["error_score"])),
                        "proxy": proxy,
                        "ua": s.get("user_agent") or "",
                        "ud": json.dumps(s["user_data"]) if s.get("user_data") else "",
                        "cv": 0,
                        "uv": 0,
                        **suspicion_fields(s.get("suspicion")),
                    },
                )
                for c in s.get("cookies", []):
                    pipe.hset(f"{base}:c:{s['id']}", cookie_field(c["domain"], c["path"], c["name"]), json.dumps(c))
                pipe.zadd(f"{base}:live", {s["id"]: float(s["created_at"])})
                pipe.zadd(f"{base}:ready", {s["id"]: 0})
                pipe.hincrby(f"{base}:proxies", proxy, 1)
            pipe.execute()

    def delete(self, key: str) -> bool:
        base = pool_base(self.prefix, key)
        client = self.client
        names = list(client.scan_iter(match=glob_escape(base) + ":*", count=1000))
        for i in range(0, len(names), 500):
            client.delete(*names[i : i + 500])
        return bool(names)
