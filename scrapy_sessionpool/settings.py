"""One validated settings object: every ``SESSIONPOOL_*`` setting is read here, once.

A wrong type or range raises :class:`SettingsError` with one line naming the
setting and what it expects; the crawl stops at start.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .core.exceptions import SessionPoolError
from .core.strategies import REUSE_STRATEGIES

__all__ = ["PoolSettings", "SettingsError"]

PREFIX = "SESSIONPOOL_"


class SettingsError(SessionPoolError, ValueError):
    """A ``SESSIONPOOL_*`` setting (or a per-pool override) has a wrong type or value."""


def _fail(name: str, expected: str, value: Any) -> SettingsError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return SettingsError(f"{name}: expected {expected}, got {shown}")


WEEK = 7 * 86400

#: Upper bounds: past these a value is a typo (or a unit mix-up), not a plan.
MAXIMA: dict[str, float] = {
    "max_pool_size": 10_000_000,
    "max_usage_count": 1_000_000_000,
    "max_age_secs": 10 * 365 * 86400,
    "max_error_score": 1_000_000,
    "error_score_decrement": 1_000_000,
    "max_session_rotations": 1000,
    "persist_interval": WEEK,
    "log_interval": WEEK,
    "proxy_block_threshold": 1_000_000,
    "proxy_block_window": WEEK,
    "proxy_backoff_base": WEEK,
    "proxy_backoff_max": WEEK,
    "proxy_throttle_delay": 3600,
    "proxy_max_delay": 3600,
    "suspect_wait": WEEK,
    "max_wait": WEEK,
    "max_challenge_refetches": 100,
    "redis_ttl": 366 * 86400,
}


def _maximum(name: str) -> float | None:
    return MAXIMA.get(name.rsplit(".", 1)[-1].removeprefix(PREFIX).lower())


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    maximum = _maximum(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or (maximum and value > maximum):
        raise _fail(
            name, f"an integer from {minimum} to {maximum:,.0f}" if maximum else f"an integer >= {minimum}", value
        )
    return value


def _number(name: str, value: Any, minimum: float, *, strict: bool = False) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _fail(name, "a number", value) from None
    maximum = _maximum(name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum) or (maximum and value > maximum):
        expected = f"a number {'>' if strict else '>='} {minimum:g}" + (f" and <= {maximum:,.0f}" if maximum else "")
        raise _fail(name, expected, value)
    return float(value)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise _fail(name, "True or False", value)


def _str_list(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise _fail(name, "a list of non-empty strings", value)
    return tuple(value)


def _status_codes(name: str, value: Any) -> frozenset[int]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise _fail(name, "a list of HTTP status codes", value)
    try:
        codes = frozenset(_int(name, v, 100) for v in value)
    except SettingsError:
        raise _fail(name, "a list of HTTP status codes (100-599)", value) from None
    if any(c > 599 for c in codes):
        raise _fail(name, "a list of HTTP status codes (100-599)", value)
    return codes


def _patterns(name: str, value: Any) -> tuple[re.Pattern[str], ...]:
    if value is None:
        return ()
    if isinstance(value, (str, re.Pattern)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _fail(name, "a list of regular expressions", value)
    compiled = []
    for pattern in value:
        if isinstance(pattern, re.Pattern):
            compiled.append(pattern)
            continue
        if not isinstance(pattern, str) or not pattern:
            raise _fail(name, "a list of regular expressions (non-empty strings)", value)
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise SettingsError(f"{name}: {pattern!r} is not a valid regular expression ({exc})") from exc
    return tuple(compiled)


def _proxies(name: str, value: Any) -> tuple[str, ...]:
    """A list of proxy URLs, or the path of a file with one per line (# comments allowed)."""
    if isinstance(value, (str, Path)) and not str(value).startswith(("http://", "https://")):
        path = Path(value).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SettingsError(f"{name}: cannot read proxy list file {str(path)!r} ({exc.strerror})") from exc
        value = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    proxies = _str_list(name, value)
    for proxy in proxies:
        from .core.proxies import PROXY_URL_RE, redact

        if not PROXY_URL_RE.fullmatch(proxy):
            raise SettingsError(f"{name}: expected proxy URLs like http://[user:pass@]host:port, got {redact(proxy)!r}")
    if len(set(proxies)) != len(proxies):
        raise SettingsError(f"{name}: the same proxy is listed twice")
    return proxies


#: Network errors that are block signals by default: the connection dropped (by the site, or a proxy
#: tunnel). Refused connections (a site or proxy that is down), timeouts and DNS errors stay plain errors.
DEFAULT_BLOCK_EXCEPTIONS = (
    "twisted.web.client.ResponseFailed",
    "twisted.internet.error.ConnectionLost",
    "twisted.internet.error.ConnectionDone",
    "scrapy.core.downloader.handlers.http11.TunnelError",
)


def _exception_classes(name: str, value: Any) -> tuple[type[BaseException], ...]:
    if value is None:
        return ()
    if isinstance(value, (str, type)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _fail(name, "a list of exception classes or their import paths", value)
    classes = []
    for item in value:
        cls = _import_path(name, item)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise _fail(name, "a list of exception classes or their import paths", item)
        classes.append(cls)
    return tuple(classes)


def _import_path(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        if isinstance(value, type):
            return value
        raise _fail(name, "an import path such as 'myproject.policies.MyPolicy', or a class", value)
    from importlib import import_module

    module, _, attr = value.rpartition(".")
    try:
        return getattr(import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SettingsError(f"{name}: cannot import {value!r} ({exc})") from exc


#: Settings that a named pool may override through ``SESSIONPOOL_POOLS``.
POOL_KEYS = (
    "max_pool_size",
    "max_age_secs",
    "max_usage_count",
    "max_error_score",
    "error_score_decrement",
    "reuse_strategy",
    "proxies",
    "user_agents",
)


@dataclass(frozen=True)
class PoolSettings:
    """Every ``SESSIONPOOL_*`` setting, validated; see the README for each one."""

    enabled: bool = False
    max_pool_size: int = 16
    max_age_secs: float = 3000.0
    max_usage_count: int = 50
    max_error_score: float = 3.0
    error_score_decrement: float = 0.5
    reuse_strategy: str = "random"
    blocked_status_codes: frozenset[int] = frozenset({401, 403, 429, 503})
    ban_patterns: tuple[re.Pattern[str], ...] = ()
    challenge_patterns: tuple[re.Pattern[str], ...] = ()
    block_redirect_patterns: tuple[re.Pattern[str], ...] = ()
    block_exceptions: tuple[type[BaseException], ...] = ()
    max_challenge_refetches: int = 3
    ban_policy: Any = None
    judge: Any = None
    max_session_rotations: int = 10
    proxies: tuple[str, ...] = ()
    user_agents: tuple[str, ...] = ()
    persist_interval: float = 60.0
    log_interval: float = 60.0
    proxy_block_threshold: int = 2
    proxy_block_window: float = 60.0
    proxy_backoff_base: float = 5.0
    proxy_backoff_max: float = 600.0
    proxy_slots: bool = True
    proxy_throttle_delay: float = 0.05
    proxy_max_delay: float = 5.0
    site_block_share: float = 0.5
    suspect_wait: float = 5.0
    max_wait: float = 600.0
    warm_up: bool = True
    seed: int | None = None
    persist_state: bool = True
    persist_state_store: str | None = None
    persist_state_key: str = "%(spider)s"
    persist_state_on_error: str = "start_fresh"
    redis_url: str | None = None
    redis_prefix: str = "sessionpool"
    redis_ttl: float | None = None
    pools: Mapping[str, PoolSettings] = field(default_factory=dict)

    @property
    def session_options(self) -> dict[str, float]:
        return {
            "max_age_secs": self.max_age_secs,
            "max_usage_count": self.max_usage_count,
            "max_error_score": self.max_error_score,
            "error_score_decrement": self.error_score_decrement,
        }

    def for_pool(self, name: str | None) -> PoolSettings:
        """The settings of the named pool (the spider's own settings plus its overrides)."""
        if name is None:
            return self
        return self.pools.get(name, self)

    @classmethod
    def from_settings(cls, settings: Any) -> PoolSettings:
        """Read and validate every ``SESSIONPOOL_*`` setting from Scrapy ``settings``."""
        get = settings.get
        values: dict[str, Any] = {}
        unknown = sorted(k for k in settings if k.startswith(PREFIX) and k[len(PREFIX) :].lower() not in _SETTING_NAMES)
        if unknown:
            raise SettingsError(f"{unknown[0]}: unknown setting; expected one of {', '.join(_documented())}")

        values["enabled"] = _bool("SESSIONPOOL_ENABLED", get("SESSIONPOOL_ENABLED", False))
        values.update(_read_pool_values(lambda key, default: get(PREFIX + key.upper(), default), PREFIX))
        if "max_pool_size" not in values:
            # one session per concurrent request: sessions are reused, not made per request
            values["max_pool_size"] = _int("CONCURRENT_REQUESTS", get("CONCURRENT_REQUESTS", 16), 1)
        values["blocked_status_codes"] = _status_codes(
            "SESSIONPOOL_BLOCKED_STATUS_CODES", get("SESSIONPOOL_BLOCKED_STATUS_CODES", [401, 403, 429, 503])
        )
        for key in ("ban_patterns", "challenge_patterns", "block_redirect_patterns"):
            values[key] = _patterns(PREFIX + key.upper(), get(PREFIX + key.upper()))
        values["block_exceptions"] = _exception_classes(
            "SESSIONPOOL_BLOCK_EXCEPTIONS", get("SESSIONPOOL_BLOCK_EXCEPTIONS", DEFAULT_BLOCK_EXCEPTIONS)
        )
        values["max_challenge_refetches"] = _int(
            "SESSIONPOOL_MAX_CHALLENGE_REFETCHES", get("SESSIONPOOL_MAX_CHALLENGE_REFETCHES", 3), 0
        )
        values["ban_policy"] = _import_path(
            "SESSIONPOOL_BAN_POLICY", get("SESSIONPOOL_BAN_POLICY") or "scrapy_sessionpool.policy.BanPolicy"
        )
        judge = _import_path("SESSIONPOOL_JUDGE", get("SESSIONPOOL_JUDGE") or "scrapy_sessionpool.core.blame.Judge")
        from .core.blame import Judge

        if not (isinstance(judge, type) and issubclass(judge, Judge)):
            raise _fail("SESSIONPOOL_JUDGE", "a subclass of scrapy_sessionpool.core.blame.Judge", judge)
        values["judge"] = judge
        values["max_session_rotations"] = _int(
            "SESSIONPOOL_MAX_SESSION_ROTATIONS", get("SESSIONPOOL_MAX_SESSION_ROTATIONS", 10), 0
        )
        default: float
        for key, default in (("persist_interval", 60), ("log_interval", 60)):
            values[key] = _number(PREFIX + key.upper(), get(PREFIX + key.upper(), default), 0, strict=True)
        values["proxy_block_threshold"] = _int(
            "SESSIONPOOL_PROXY_BLOCK_THRESHOLD", get("SESSIONPOOL_PROXY_BLOCK_THRESHOLD", 2), 1
        )
        for key, default in (
            ("proxy_block_window", 60),
            ("proxy_backoff_base", 5),
            ("proxy_backoff_max", 600),
            ("proxy_throttle_delay", 0.05),
            ("proxy_max_delay", 5),
            ("suspect_wait", 5),
            ("max_wait", 600),
        ):
            values[key] = _number(PREFIX + key.upper(), get(PREFIX + key.upper(), default), 0, strict=True)
        share = _number("SESSIONPOOL_SITE_BLOCK_SHARE", get("SESSIONPOOL_SITE_BLOCK_SHARE", 0.5), 0)
        if share >= 1:
            raise _fail("SESSIONPOOL_SITE_BLOCK_SHARE", "a share from 0 to below 1", share)
        values["site_block_share"] = share
        if values["proxy_backoff_max"] < values["proxy_backoff_base"]:
            raise SettingsError(
                "SESSIONPOOL_PROXY_BACKOFF_MAX: expected a number >= SESSIONPOOL_PROXY_BACKOFF_BASE, "
                f"got {values['proxy_backoff_max']:g} < {values['proxy_backoff_base']:g}"
            )
        values["proxy_slots"] = _bool("SESSIONPOOL_PROXY_SLOTS", get("SESSIONPOOL_PROXY_SLOTS", True))
        values["warm_up"] = _bool("SESSIONPOOL_WARM_UP", get("SESSIONPOOL_WARM_UP", True))
        seed = get("SESSIONPOOL_SEED")
        values["seed"] = None if seed is None else _int("SESSIONPOOL_SEED", seed, 0)
        values.update(_read_persistence(get))
        base = cls(**values)
        return replace(base, pools=_read_pools(get("SESSIONPOOL_POOLS") or {}, base))


ON_ERROR_CHOICES = ("start_fresh", "stop")


def _read_persistence(get: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    values["persist_state"] = _bool("SESSIONPOOL_PERSIST_STATE", get("SESSIONPOOL_PERSIST_STATE", True))
    store = get("SESSIONPOOL_PERSIST_STATE_STORE")
    if isinstance(store, Path):
        store = str(store)
    if store is not None and (not isinstance(store, str) or not store.strip()):
        raise _fail(
            "SESSIONPOOL_PERSIST_STATE_STORE",
            "a directory path, 'redis', or a redis:// or rediss:// URL",
            store,
        )
    if store == "redis":
        url = get("REDIS_URL") or f"redis://{get('REDIS_HOST', 'localhost')}:{get('REDIS_PORT', 6379)}"
        values["redis_url"] = _redis_url("REDIS_URL", url)
    elif store is not None and "://" in store:
        values["redis_url"] = _redis_url("SESSIONPOOL_PERSIST_STATE_STORE", store)
    values["persist_state_store"] = store
    key = get("SESSIONPOOL_PERSIST_STATE_KEY", "%(spider)s")
    try:
        if not isinstance(key, str) or not (key % {"spider": "name"}):
            raise TypeError
    except (TypeError, ValueError, KeyError):
        raise _fail(
            "SESSIONPOOL_PERSIST_STATE_KEY", "a non-empty string, '%(spider)s' may stand for the spider name", key
        ) from None
    values["persist_state_key"] = key
    on_error = get("SESSIONPOOL_PERSIST_STATE_ON_ERROR", "start_fresh")
    if on_error not in ON_ERROR_CHOICES:
        raise _fail("SESSIONPOOL_PERSIST_STATE_ON_ERROR", f"one of {', '.join(map(repr, ON_ERROR_CHOICES))}", on_error)
    values["persist_state_on_error"] = on_error
    prefix = get("SESSIONPOOL_REDIS_PREFIX", "sessionpool")
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", prefix):
        raise _fail("SESSIONPOOL_REDIS_PREFIX", "1-64 characters [A-Za-z0-9_.:-]", prefix)
    values["redis_prefix"] = prefix
    ttl = get("SESSIONPOOL_REDIS_TTL")
    values["redis_ttl"] = None if ttl is None else _number("SESSIONPOOL_REDIS_TTL", ttl, 0, strict=True)
    return values


def _redis_url(name: str, url: Any) -> str:
    if not isinstance(url, str) or not re.fullmatch(r"rediss?://[^\s/]+(/\d+)?/?", url):
        from .core.proxies import redact

        shown = redact(url) if isinstance(url, str) else url
        raise _fail(name, "a Redis URL such as redis://host:6379/0 or rediss://user:pass@host:6380", shown)
    return url


def _read_pool_values(get: Any, where: str) -> dict[str, Any]:
    """The pool-level values (those a named pool may override), validated."""
    values: dict[str, Any] = {}
    sentinel = object()
    for key in POOL_KEYS:
        raw = get(key, sentinel)
        if raw is sentinel or (raw is None and key == "max_pool_size"):
            continue
        name = where + (key.upper() if where == PREFIX else key)
        if key in ("max_pool_size", "max_usage_count"):
            values[key] = _int(name, raw, 1)
        elif key in ("max_age_secs", "max_error_score"):
            values[key] = _number(name, raw, 0, strict=True)
        elif key == "error_score_decrement":
            values[key] = _number(name, raw, 0)
        elif key == "reuse_strategy":
            if raw not in REUSE_STRATEGIES:
                raise _fail(name, f"one of {', '.join(map(repr, REUSE_STRATEGIES))}", raw)
            values[key] = raw
        elif key == "proxies":
            values[key] = _proxies(name, raw)
        elif key == "user_agents":
            values[key] = _str_list(name, raw)
    return values


def _read_pools(raw: Any, base: PoolSettings) -> dict[str, PoolSettings]:
    if not isinstance(raw, Mapping):
        raise _fail("SESSIONPOOL_POOLS", "a dict {pool name: {setting: value}}", raw)
    pools = {}
    for name, overrides in raw.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise _fail("SESSIONPOOL_POOLS", "pool names of 1-64 characters [A-Za-z0-9_.-]", name)
        if not isinstance(overrides, Mapping):
            raise _fail(f"SESSIONPOOL_POOLS[{name!r}]", "a dict of settings", overrides)
        normalised = {str(k).lower().removeprefix("sessionpool_"): v for k, v in overrides.items()}
        unknown = sorted(set(normalised) - set(POOL_KEYS))
        if unknown:
            raise SettingsError(
                f"SESSIONPOOL_POOLS[{name!r}]: cannot override {unknown[0]!r}; expected some of {', '.join(POOL_KEYS)}"
            )
        pools[name] = replace(base, **_read_pool_values(normalised.get, f"SESSIONPOOL_POOLS[{name!r}]."))
    return pools


_SETTING_NAMES = {f.name for f in fields(PoolSettings)} - {"redis_url"}


def _documented() -> list[str]:
    return sorted(PREFIX + n.upper() for n in _SETTING_NAMES)
