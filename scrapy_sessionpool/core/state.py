"""Persisted state: a session's JSON form, validated field by field, and the pool's schema version.

A bad value raises :class:`StateError` naming the field (``pool.parse_state`` leaves a bad
session or cookie out alone when asked to).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, NamedTuple

from .cookies import cookie_to_state
from .exceptions import StateError
from .options import is_number
from .proxies import PROXY_URL_RE

__all__ = ["SESSION_ID_RE", "STATE_VERSION", "CheckedSession", "check_session_state", "state_from_snapshot"]

#: Schema version of :meth:`SessionPool.get_state`.
STATE_VERSION = 2  # 2: cookies keep every attribute (valueless, host-only, SameSite...)
#: Session ids end up in request meta, log lines and store keys: keep them tame.
SESSION_ID_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
MAX_COUNT = 2**53
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")


class CheckedSession(NamedTuple):
    """A session's state, validated (cookies are checked one by one as they are loaded)."""

    id: str
    created_at: float
    usage_count: int
    error_score: float
    proxy_url: str | None
    user_agent: str | None
    user_data: dict[str, Any]
    cookies: list[Any]
    retired: str | None
    suspicion: tuple[float, float, int] | None
    headers: dict[str, str] | None = None
    account: str | None = None
    initialized: bool = False


def check_session_state(state: Any, where: str = "session") -> CheckedSession:
    """Validate one session's state (:meth:`Session.to_state` output)."""
    if not isinstance(state, dict):
        raise StateError(f"{where}: expected an object, got {type(state).__name__}")
    missing = [k for k in ("id", "created_at", "usage_count", "error_score") if k not in state]
    if missing:
        raise StateError(f"{where}: missing field(s) {', '.join(missing)}")
    sid = state["id"]
    if not isinstance(sid, str) or not SESSION_ID_RE.fullmatch(sid):
        raise StateError(f"{where}.id: expected 1-128 characters of [A-Za-z0-9_.:@-]")
    where = f"{where} {sid}"
    if not is_number(state["created_at"]) or abs(state["created_at"]) > 1e12:
        raise StateError(f"{where}.created_at: expected a timestamp in seconds")
    usage = state["usage_count"]
    if not isinstance(usage, int) or isinstance(usage, bool) or not 0 <= usage < MAX_COUNT:
        raise StateError(f"{where}.usage_count: expected an integer >= 0")
    score = state["error_score"]
    if not is_number(score) or not 0 <= score < MAX_COUNT:
        raise StateError(f"{where}.error_score: expected a number >= 0")
    for key in ("proxy_url", "user_agent", "retired"):
        if state.get(key) is not None and not isinstance(state[key], str):
            raise StateError(f"{where}.{key}: expected a string or null")
    if state.get("proxy_url") is not None and not PROXY_URL_RE.fullmatch(state["proxy_url"]):
        raise StateError(f"{where}.proxy_url: expected http(s)://[user:pass@]host[:port]")
    user_data = state.get("user_data", {})
    if not isinstance(user_data, dict):
        raise StateError(f"{where}.user_data: expected an object")
    try:
        json.dumps(user_data, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StateError(f"{where}.user_data: not JSON-safe ({str(exc)[:100]})") from None
    cookies = state.get("cookies", [])
    if not isinstance(cookies, list):
        raise StateError(f"{where}.cookies: expected a list")
    suspicion = _suspicion_from_state(state.get("suspicion"), where)
    headers = state.get("headers")
    if headers is not None and (
        not isinstance(headers, dict)
        or not all(isinstance(k, str) and isinstance(v, str) and _HEADER_NAME.fullmatch(k) for k, v in headers.items())
        or any("\r" in v or "\n" in v for v in headers.values())
    ):
        raise StateError(f"{where}.headers: expected an object of header names to one-line strings, or null")
    account = state.get("account")
    if account is not None and (not isinstance(account, str) or not account or len(account) > 200):
        raise StateError(f"{where}.account: expected an account label (a string) or null")
    initialized = state.get("initialized", False)
    if not isinstance(initialized, bool):
        raise StateError(f"{where}.initialized: expected true or false")
    return CheckedSession(
        sid,
        float(state["created_at"]),
        usage,
        float(score),
        state.get("proxy_url"),
        state.get("user_agent"),
        user_data,
        cookies,
        state.get("retired"),
        suspicion,
        headers,
        account,
        initialized,
    )


def _suspicion_from_state(value: Any, where: str) -> tuple[float, float, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not all(is_number(value.get(k)) and abs(value[k]) < 1e12 for k in ("since", "until"))
        or not isinstance(value.get("strikes"), int)
        or isinstance(value["strikes"], bool)
        or not 0 <= value["strikes"] < 1000
    ):
        raise StateError(f"{where}.suspicion: expected {{since, until: timestamps, strikes: a count}} or null")
    return float(value["since"]), float(value["until"]), value["strikes"]


def state_from_snapshot(snapshot: tuple[Any, ...]) -> dict[str, Any]:
    """The JSON-safe state dict of a :meth:`Session.snapshot`."""
    sid, created_at, usage, score, proxy, agent, user_data, cookies, retired, suspicion, *identity = snapshot
    headers, account, ready = identity
    now = time.time()
    state = {
        "id": sid,
        "created_at": created_at,
        "usage_count": usage,
        "error_score": score,
        "proxy_url": proxy,
        "user_agent": agent,
        "user_data": json.loads(user_data) if user_data else {},
        "cookies": [cookie_to_state(c) for c in cookies if c.expires is None or c.expires > now],
        "retired": retired,
    }
    if headers:
        state["headers"] = dict(headers)
    if account is not None:
        state["account"] = account
    if ready:
        state["initialized"] = True
    if suspicion is not None:
        state["suspicion"] = {"since": suspicion[0], "until": suspicion[1], "strikes": suspicion[2]}
    return state
