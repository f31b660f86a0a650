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
    pool_keys,
    state_from_fields,
    suspicion_fields,
)

__all__ = ["RedisStore"]

#: Writes a snapshot in one step, on one Redis or on the cluster node that owns the pool's slot (a
#: cluster client has no MULTI before redis-py 6). KEYS: ``pool_keys``; ARGV: base, retired count, the
#: sessions as JSON (every value a string).
SAVE = r"""
local live, ready, meta, proxies = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local base = ARGV[1]
redis.call('HSET', meta, 'retired', ARGV[2], 'created', '0')
for _, s in ipairs(cjson.decode(ARGV[3])) do
  redis.call('HSET', base .. ':s:' .. s.id, unpack(s.fields))
  for i = 1, #s.cookies, 2 do redis.call('HSET', base .. ':c:' .. s.id, s.cookies[i], s.cookies[i + 1]) end
  redis.call('ZADD', live, s.created_at, s.id)
  redis.call('ZADD', ready, 0, s.id)
  redis.call('HINCRBY', proxies, s.proxy, 1)
end
return 1
"""


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
        cluster: bool = False,
    ) -> None:
        self.url = url
        self.params = dict(params or {})  # redis-py client options (REDIS_PARAMS)
        self.cluster = cluster  # the URL names a node of a Redis Cluster
        self.prefix = prefix
        self.ttl = ttl
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            redis = import_redis()
            options = {"socket_timeout": 10, **self.params, "decode_responses": True}
            client_class = redis.cluster.RedisCluster if self.cluster else redis.Redis
            self._client = client_class.from_url(self.url, **options)
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
        sessions = []
        for s in state.get("sessions", []):
            fields = {
                "created_at": repr(float(s["created_at"])),
                "usage": s["usage_count"],
                "handed": s["usage_count"],
                "errors": repr(float(s["error_score"])),
                "proxy": s.get("proxy_url") or "",
                "ua": s.get("user_agent") or "",
                "ud": json.dumps(s["user_data"]) if s.get("user_data") else "",
                "cv": 0,
                "uv": 0,
                **suspicion_fields(s.get("suspicion")),
            }
            cookies = [(cookie_field(c["domain"], c["path"], c["name"]), json.dumps(c)) for c in s.get("cookies", [])]
            sessions.append(
                {
                    "id": s["id"],
                    "created_at": fields["created_at"],
                    "proxy": fields["proxy"],
                    "fields": [str(v) for pair in fields.items() for v in pair],
                    "cookies": [v for pair in cookies for v in pair],
                }
            )
        keys = pool_keys(base)
        retired = str(state.get("retired_sessions_count", 0))
        self.client.eval(SAVE, len(keys), *keys, base, retired, json.dumps(sessions, ensure_ascii=False))

    def delete(self, key: str) -> bool:
        base = pool_base(self.prefix, key)
        client = self.client
        names = list(client.scan_iter(match=glob_escape(base) + ":*", count=1000))
        for i in range(0, len(names), 500):
            client.delete(*names[i : i + 500])
        return bool(names)
