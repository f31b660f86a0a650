"""How a shared pool lies in Redis: its keys, and a session's fields and cookies as hash fields.

Every key of a pool starts with ``<prefix>:{<key>}``: the braces are a Redis Cluster hash tag,
so that one Lua script can touch all of them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..core.exceptions import StateError

if TYPE_CHECKING:
    from ..core.session import Session

__all__ = [
    "cookie_field",
    "import_redis",
    "pool_base",
    "pool_keys",
    "state_from_fields",
    "suspicion_fields",
    "suspicion_json",
]


def import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("The Redis store needs the redis package: pip install 'scrapy-sessionpool[redis]'") from exc
    return redis


def pool_base(prefix: str, key: str) -> str:
    return f"{prefix}:{{{key}}}"


def pool_keys(base: str) -> list[str]:
    """The KEYS of every script: live sessions, ready ones, counts, sessions per proxy, asleep, condemned,
    processes with hand-outs."""
    return [
        f"{base}:live",
        f"{base}:ready",
        f"{base}:meta",
        f"{base}:proxies",
        f"{base}:asleep",
        f"{base}:condemned",
        f"{base}:procs",
    ]


def cookie_field(domain: str, path: str, name: str) -> str:
    """A cookie's field in the session's cookie hash (its value is the cookie's state as JSON)."""
    return f"{domain};{path};{name}"


def glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\{}" else c for c in text)


def suspicion_fields(suspicion: dict[str, Any] | None) -> dict[str, Any]:
    if not suspicion:
        return {"sus": "", "until": "0", "strikes": 0, "cond": 0}
    return {
        "sus": repr(float(suspicion["since"])),
        "until": repr(float(suspicion["until"])),
        "strikes": suspicion["strikes"],
        "cond": 0,
    }


def suspicion_json(session: Session) -> str:
    """A ``suspect`` write: what every process must know of the session's suspicion."""
    return json.dumps(
        {
            "since": session.suspected_at,
            "until": session.sits_out_until,
            "strikes": session.strikes,
            "cond": int(session.is_condemned),
        }
    )


def state_from_fields(sid: str, fields: dict[str, str], cookies: dict[str, str]) -> dict[str, Any]:
    """A session's state dict from its Redis hashes; StateError when a value is not what we write."""
    try:
        state = {
            "id": sid,
            "created_at": float(fields["created_at"]),
            "usage_count": int(fields["usage"]),
            "error_score": float(fields["errors"]),
            "proxy_url": fields.get("proxy") or None,
            "user_agent": fields.get("ua") or None,
            "user_data": json.loads(fields["ud"]) if fields.get("ud") else {},
            "cookies": [_json_or_raw(v) for v in cookies.values()],
            "retired": None,
        }
        if fields.get("sus"):
            state["suspicion"] = {
                "since": float(fields["sus"]),
                "until": float(fields.get("until") or 0),
                "strikes": int(fields.get("strikes") or 0),
            }
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        raise StateError(f"Redis session {sid}: unusable field ({str(exc)[:200]})") from None
    return state


def _json_or_raw(text: str) -> Any:
    """A cookie's JSON, or the text itself when it is not JSON (the loader then leaves that cookie out)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text
