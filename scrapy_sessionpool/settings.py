"""One validated settings object: every ``SESSIONPOOL_*`` setting is read here, once.

Each field of :class:`PoolSettings` is the row of its setting in :data:`TABLE`: the default, the
function that parses a value and the bounds it must keep. A wrong type or range raises
:class:`SettingsError` with one line naming the setting and what it expects; the crawl stops at start.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .core.exceptions import SessionPoolError
from .core.strategies import REUSE_STRATEGIES

__all__ = ["TABLE", "PoolSettings", "Setting", "SettingsError"]

PREFIX = "SESSIONPOOL_"
WEEK = 7 * 86400
YEAR = 365 * 86400


class SettingsError(SessionPoolError, ValueError):
    """A ``SESSIONPOOL_*`` setting (or a per-pool override) has a wrong type or value."""


def _fail(name: str, expected: str, value: Any) -> SettingsError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return SettingsError(f"{name}: expected {expected}, got {shown}")


@dataclass(frozen=True)
class Setting:
    """The row of one setting in the table: how ``SESSIONPOOL_<FIELD>`` is read."""

    #: The value of an unset setting, before parsing.
    default: Any
    #: ``parse(name shown in errors, value, row)``: the field's value, or SettingsError.
    parse: Callable[[str, Any, Setting], Any]
    minimum: float = 0
    #: Past this a value is a typo (or a unit mix-up), not a plan.
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    #: A named pool may override it through ``SESSIONPOOL_POOLS``.
    per_pool: bool = False
    #: A false value (``""``, ``[]``) means the default, as None does.
    empty_is_unset: bool = False

    def read(self, name: str, value: Any) -> Any:
        """``value`` parsed; None (unset) gives the default, parsed."""
        if value is None or (self.empty_is_unset and not value):
            value = self.default
        return None if value is None else self.parse(name, value, self)


_ROW = "sessionpool_setting"
_AS_DEFAULT: Any = object()


def setting(
    default: Any,
    parse: Callable[[str, Any, Setting], Any],
    minimum: float = 0,
    maximum: float | None = None,
    *,
    choices: tuple[str, ...] = (),
    per_pool: bool = False,
    empty_is_unset: bool = False,
    placeholder: Any = _AS_DEFAULT,
) -> Any:
    """A field of :class:`PoolSettings` that carries its row of the table.

    The field's default is ``default``, or ``placeholder`` where the default needs an import
    (classes are imported when the settings are read, not when this module is).
    """
    row = Setting(default, parse, minimum, maximum, choices, per_pool, empty_is_unset)
    value = default if placeholder is _AS_DEFAULT else placeholder
    if isinstance(value, dict):
        return field(default_factory=dict, metadata={_ROW: row})
    return field(default=value, metadata={_ROW: row})


# -- parsers: (name shown in errors, value, row) -> the field's value


def _integer(name: str, value: Any, minimum: int, maximum: float | None) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or (maximum and value > maximum):
        raise _fail(
            name, f"an integer from {minimum} to {maximum:,.0f}" if maximum else f"an integer >= {minimum}", value
        )
    return value


def _float(name: str, value: Any, minimum: float, maximum: float | None, *, strict: bool) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _fail(name, "a number", value) from None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum) or (maximum and value > maximum):
        expected = f"a number {'>' if strict else '>='} {minimum:g}" + (f" and <= {maximum:,.0f}" if maximum else "")
        raise _fail(name, expected, value)
    return float(value)


def _int(name: str, value: Any, row: Setting) -> int:
    return _integer(name, value, int(row.minimum), row.maximum)


def _number(name: str, value: Any, row: Setting) -> float:
    """A number >= the minimum."""
    return _float(name, value, row.minimum, row.maximum, strict=False)


def _positive(name: str, value: Any, row: Setting) -> float:
    """A number > the minimum."""
    return _float(name, value, row.minimum, row.maximum, strict=True)


def _share(name: str, value: Any, row: Setting) -> float:
    """A number from the minimum to below the maximum."""
    share = _float(name, value, row.minimum, None, strict=False)
    if row.maximum is not None and share >= row.maximum:
        raise _fail(name, f"a share from {row.minimum:g} to below {row.maximum:g}", share)
    return share


def _choice(name: str, value: Any, row: Setting) -> str:
    if not isinstance(value, str) or value not in row.choices:
        raise _fail(name, f"one of {', '.join(map(repr, row.choices))}", value)
    return value


def _bool(name: str, value: Any, row: Setting) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise _fail(name, "True or False", value)


def _str_list(name: str, value: Any, row: Setting) -> tuple[str, ...]:
    """A list of non-empty strings, or one string of them separated by commas."""
    if value is None:  # a named pool's None: none
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise _fail(name, "a list of non-empty strings", value)
    return tuple(value)


def _status_codes(name: str, value: Any, row: Setting) -> frozenset[int]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise _fail(name, "a list of HTTP status codes", value)
    try:
        return frozenset(_integer(name, v, 100, 599) for v in value)
    except SettingsError:
        raise _fail(name, "a list of HTTP status codes (100-599)", value) from None


def _patterns(name: str, value: Any, row: Setting) -> tuple[re.Pattern[str], ...]:
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


def _proxies(name: str, value: Any, row: Setting) -> tuple[str, ...]:
    """A list of proxy URLs, or the path of a file with one per line (# comments allowed)."""
    if isinstance(value, (str, Path)) and not str(value).startswith(("http://", "https://")):
        path = Path(value).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SettingsError(f"{name}: cannot read proxy list file {str(path)!r} ({exc.strerror})") from exc
        value = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    proxies = _str_list(name, value, row)
    from .core.proxies import PROXY_URL_RE, redact

    for proxy in proxies:
        if not PROXY_URL_RE.fullmatch(proxy):
            raise SettingsError(f"{name}: expected proxy URLs like http://[user:pass@]host:port, got {redact(proxy)!r}")
    if len(set(proxies)) != len(proxies):
        raise SettingsError(f"{name}: the same proxy is listed twice")
    return proxies


def _load(name: str, value: Any) -> Any:
    """The object an import path names; a class is taken as it is."""
    if isinstance(value, type):
        return value
    if not isinstance(value, str):
        raise _fail(name, "an import path such as 'myproject.policies.MyPolicy', or a class", value)
    from scrapy.utils.misc import load_object  # here: the module imports without Scrapy

    try:
        return load_object(value)
    except (ImportError, AttributeError, NameError, TypeError, ValueError) as exc:
        raise SettingsError(f"{name}: cannot import {value!r} ({exc})") from exc


def _class(name: str, value: Any, row: Setting) -> Any:
    return _load(name, value)


def _accounts(name: str, value: Any, row: Setting) -> tuple[Any, ...]:
    """A list of account dicts, or the path of a JSON-lines file; errors never show an account's fields."""
    from .core.accounts import load_accounts

    try:
        return load_accounts(value, name)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _init_hook(name: str, value: Any, row: Setting) -> Any:
    hook = _load(name, value)
    if not isinstance(hook, type) or not callable(getattr(hook, "init", None)):
        raise _fail(name, "a class with an async init(self, init) method, or its import path", hook)
    return hook


def _judge(name: str, value: Any, row: Setting) -> type:
    from .core.blame import Judge

    judge = _load(name, value)
    if not (isinstance(judge, type) and issubclass(judge, Judge)):
        raise _fail(name, "a subclass of scrapy_sessionpool.core.blame.Judge", judge)
    return judge


def _exception_classes(name: str, value: Any, row: Setting) -> tuple[type[BaseException], ...]:
    if isinstance(value, (str, type)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _fail(name, "a list of exception classes or their import paths", value)
    classes = []
    for item in value:
        cls = _load(name, item)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise _fail(name, "a list of exception classes or their import paths", item)
        classes.append(cls)
    return tuple(classes)


def _store(name: str, value: Any, row: Setting) -> str:
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, "a directory path, 'redis', or a redis://, rediss:// or unix:// URL", value)
    return value


def _state_key(name: str, value: Any, row: Setting) -> str:
    try:
        if not isinstance(value, str) or not (value % {"spider": "name"}):
            raise TypeError
    except (TypeError, ValueError, KeyError):
        raise _fail(name, "a non-empty string, '%(spider)s' may stand for the spider name", value) from None
    return value


def _redis_prefix(name: str, value: Any, row: Setting) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise _fail(name, "1-64 characters [A-Za-z0-9_.:-]", value)
    return value


def _pools(name: str, value: Any, row: Setting) -> dict[str, dict[str, Any]]:
    """``{pool name: {field: parsed value}}``: each pool's overrides (from_settings applies them)."""
    if not isinstance(value, Mapping):
        raise _fail(name, "a dict {pool name: {setting: value}}", value)
    pools = {}
    for pool, overrides in value.items():
        if not isinstance(pool, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", pool):
            raise _fail(name, "pool names of 1-64 characters [A-Za-z0-9_.-]", pool)
        pools[pool] = _overrides(f"{name}[{pool!r}]", overrides)
    return pools


def _overrides(where: str, overrides: Any) -> dict[str, Any]:
    if not isinstance(overrides, Mapping):
        raise _fail(where, "a dict of settings", overrides)
    given = {str(k).lower().removeprefix("sessionpool_"): v for k, v in overrides.items()}
    unknown = sorted(set(given) - set(POOL_KEYS))
    if unknown:
        raise SettingsError(f"{where}: cannot override {unknown[0]!r}; expected some of {', '.join(POOL_KEYS)}")
    values = {}
    for key in POOL_KEYS:
        if key not in given or (key == "max_pool_size" and given[key] is None):  # None: the spider's size
            continue
        row = TABLE[key]
        values[key] = row.parse(f"{where}.{key}", given[key], row)
    return values


#: Network errors that are block signals by default: the connection dropped (by the site, or a proxy
#: tunnel). Refused connections (a site or proxy that is down), timeouts and DNS errors stay plain errors.
DEFAULT_BLOCK_EXCEPTIONS = (
    "twisted.web.client.ResponseFailed",
    "twisted.internet.error.ConnectionLost",
    "twisted.internet.error.ConnectionDone",
    "scrapy.core.downloader.handlers.http11.TunnelError",
)


@dataclass(frozen=True)
class PoolSettings:
    """Every ``SESSIONPOOL_*`` setting, validated; see the README for each one.

    A field made with :func:`setting` is the setting ``SESSIONPOOL_<FIELD>``: its default,
    parser and bounds.
    """

    enabled: bool = setting(False, _bool)
    #: Unset: ``CONCURRENT_REQUESTS`` (see from_settings); 16 is Scrapy's default for it.
    max_pool_size: int = setting(16, _int, 1, 10_000_000, per_pool=True)
    max_age_secs: float = setting(3000.0, _positive, maximum=10 * YEAR, per_pool=True)
    max_usage_count: int = setting(50, _int, 1, 1_000_000_000, per_pool=True)
    max_error_score: float = setting(3.0, _positive, maximum=1_000_000, per_pool=True)
    error_score_decrement: float = setting(0.5, _number, maximum=1_000_000, per_pool=True)
    reuse_strategy: str = setting("random", _choice, choices=tuple(REUSE_STRATEGIES), per_pool=True)
    blocked_status_codes: frozenset[int] = setting(frozenset({401, 403, 429, 503}), _status_codes)
    ban_patterns: tuple[re.Pattern[str], ...] = setting((), _patterns)
    challenge_patterns: tuple[re.Pattern[str], ...] = setting((), _patterns)
    block_redirect_patterns: tuple[re.Pattern[str], ...] = setting((), _patterns)
    # the default classes are imported when the settings are read: in a PoolSettings built in code
    # these three hold a placeholder (the manager then uses Judge; no download error is a block signal)
    block_exceptions: tuple[type[BaseException], ...] = setting(
        DEFAULT_BLOCK_EXCEPTIONS, _exception_classes, placeholder=()
    )
    max_challenge_refetches: int = setting(3, _int, 0, 100)
    ban_policy: Any = setting("scrapy_sessionpool.policy.BanPolicy", _class, empty_is_unset=True, placeholder=None)
    judge: Any = setting("scrapy_sessionpool.core.blame.Judge", _judge, empty_is_unset=True, placeholder=None)
    max_session_rotations: int = setting(10, _int, 0, 1000)
    proxies: tuple[str, ...] = setting((), _proxies, per_pool=True)
    user_agents: tuple[str, ...] = setting((), _str_list, per_pool=True)
    persist_interval: float = setting(60.0, _positive, maximum=WEEK)
    log_interval: float = setting(60.0, _positive, maximum=WEEK)
    proxy_block_threshold: int = setting(2, _int, 1, 1_000_000)
    proxy_block_window: float = setting(60.0, _positive, maximum=WEEK)
    proxy_backoff_base: float = setting(5.0, _positive, maximum=WEEK)
    proxy_backoff_max: float = setting(600.0, _positive, maximum=WEEK)
    proxy_slots: bool = setting(True, _bool)
    proxy_throttle_delay: float = setting(0.05, _positive, maximum=3600)
    proxy_max_delay: float = setting(5.0, _positive, maximum=3600)
    site_block_share: float = setting(0.5, _share, 0, 1)
    suspect_wait: float = setting(5.0, _positive, maximum=WEEK)
    max_wait: float = setting(600.0, _positive, maximum=WEEK)
    warm_up: bool = setting(True, _bool)
    seed: int | None = setting(None, _int, 0)
    persist_state: bool = setting(True, _bool)
    persist_state_store: str | None = setting(None, _store)
    persist_state_key: str = setting("%(spider)s", _state_key)
    persist_state_on_error: str = setting("start_fresh", _choice, choices=("start_fresh", "stop"))
    #: Not settings: the Redis URL ``persist_state_store`` names, and its client options (see from_settings).
    redis_url: str | None = None
    redis_params: Mapping[str, Any] = field(default_factory=dict)
    redis_prefix: str = setting("sessionpool", _redis_prefix)
    redis_ttl: float | None = setting(None, _positive, maximum=366 * 86400)
    redis_lease_ttl: float = setting(30.0, _positive, maximum=86400)
    redis_prefetch: int = setting(8, _int, 1, 1000)
    #: The Redis URL names one node of a Redis Cluster (which has database 0 only).
    redis_cluster: bool = setting(False, _bool)
    session_init: Any = setting(None, _init_hook)
    max_bad_inits: int = setting(8, _int, 1, 1_000_000)
    init_timeout: float = setting(300.0, _positive, maximum=86400)
    accounts: tuple[Any, ...] = setting((), _accounts, per_pool=True, empty_is_unset=True)
    account_rest_secs: float = setting(900.0, _number, maximum=YEAR)
    account_max_blocks: int = setting(3, _int, 1, 1_000_000)
    browser_escalation: bool = setting(False, _bool)
    browser_challenge_wait: float = setting(10.0, _positive, maximum=600)
    fingerprints: bool = setting(False, _bool)
    fingerprint_browsers: tuple[str, ...] = setting(("chrome", "firefox", "safari", "edge"), _str_list)
    pools: Mapping[str, PoolSettings] = setting({}, _pools, empty_is_unset=True)

    @property
    def session_options(self) -> dict[str, float]:
        return {
            "max_age_secs": self.max_age_secs,
            "max_usage_count": self.max_usage_count,
            "max_error_score": self.max_error_score,
            "error_score_decrement": self.error_score_decrement,
        }

    @property
    def pool_options(self) -> dict[str, Any]:
        """The options of a ``SessionPool`` these settings make (its size, limits, strategy, warm-up)."""
        return {
            "max_pool_size": self.max_pool_size,
            "session_options": self.session_options,
            "reuse_strategy": self.reuse_strategy,
            "warm_up": self.warm_up,
        }

    def for_pool(self, name: str | None) -> PoolSettings:
        """The settings of the named pool (the spider's own settings plus its overrides)."""
        if name is None:
            return self
        return self.pools.get(name, self)

    @classmethod
    def from_settings(cls, settings: Any) -> PoolSettings:
        """Read and validate every ``SESSIONPOOL_*`` setting from Scrapy ``settings``."""
        _refuse_unknown(settings)
        values = {
            name: row.read(PREFIX + name.upper(), settings.get(PREFIX + name.upper())) for name, row in TABLE.items()
        }
        if settings.get("SESSIONPOOL_MAX_POOL_SIZE") is None:
            # one session per concurrent request: sessions are reused, not made per request
            concurrency = settings.get("CONCURRENT_REQUESTS", TABLE["max_pool_size"].default)
            values["max_pool_size"] = _integer("CONCURRENT_REQUESTS", concurrency, 1, None)
        if values["proxy_backoff_max"] < values["proxy_backoff_base"]:
            raise SettingsError(
                "SESSIONPOOL_PROXY_BACKOFF_MAX: expected a number >= SESSIONPOOL_PROXY_BACKOFF_BASE, "
                f"got {values['proxy_backoff_max']:g} < {values['proxy_backoff_base']:g}"
            )
        values["redis_url"], values["redis_params"] = _redis_connection(
            values["persist_state_store"], settings, cluster=values["redis_cluster"]
        )
        pools = values.pop("pools")
        base = cls(**values)
        return replace(base, pools={name: replace(base, **overrides) for name, overrides in pools.items()})


#: The settings table, by field of PoolSettings: the setting is ``SESSIONPOOL_<FIELD>``.
TABLE: Mapping[str, Setting] = MappingProxyType(
    {f.name: f.metadata[_ROW] for f in fields(PoolSettings) if _ROW in f.metadata}
)
#: The fields a named pool may override, in table order.
POOL_KEYS = tuple(name for name, row in TABLE.items() if row.per_pool)


def _refuse_unknown(settings: Any) -> None:
    unknown = sorted(k for k in settings if k.startswith(PREFIX) and k[len(PREFIX) :].lower() not in TABLE)
    if unknown:
        raise SettingsError(f"{unknown[0]}: unknown setting; expected one of {', '.join(_documented())}")


#: What a Redis URL may look like (redis-py parses it; a query sets connection options).
REDIS_URL_FORMS = "a Redis URL such as redis://host:6379/0, rediss://user:pass@host:6380 or unix:///path/redis.sock"
#: REDIS_PARAMS keys that are scrapy-redis's own, not redis-py's.
SCRAPY_REDIS_ONLY = frozenset({"redis_cls"})


def _redis_connection(store: str | None, settings: Any, *, cluster: bool = False) -> tuple[str | None, dict[str, Any]]:
    """The Redis URL and client options the store names: the URL itself, or for ``redis`` the
    connection scrapy-redis makes (``REDIS_URL``, else ``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_DB``;
    plus ``REDIS_PARAMS``). With ``cluster``, the URL names a node of a Redis Cluster."""
    if store == "redis":
        get = settings.get
        params = _redis_params(get("REDIS_PARAMS"))
        if get("REDIS_DB") not in (None, ""):
            params["db"] = _integer("REDIS_DB", get("REDIS_DB"), 0, None)
        url = get("REDIS_URL")
        name = "REDIS_URL"
        if not url:
            host = get("REDIS_HOST") or "localhost"
            if not isinstance(host, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,253}", host):
                raise _fail("REDIS_HOST", "a host name or address", host)
            port = _integer("REDIS_PORT", get("REDIS_PORT") or 6379, 1, 65535)
            url, name = f"redis://{f'[{host}]' if ':' in host else host}:{port}", "REDIS_HOST"
        return _check_redis(name, url, params, cluster=cluster), params
    if store is not None and "://" in store:
        return _check_redis("SESSIONPOOL_PERSIST_STATE_STORE", store, {}, cluster=cluster), {}
    return None, {}


def _redis_params(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _fail("REDIS_PARAMS", "a dict of redis-py client options (or its JSON)", value) from None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _fail("REDIS_PARAMS", "a dict of redis-py client options (or its JSON)", value)
    return {k: v for k, v in value.items() if k not in SCRAPY_REDIS_ONLY}


def _check_redis(name: str, url: Any, params: dict[str, Any], *, cluster: bool = False) -> str:
    """``url`` if redis-py can build a connection (a cluster client) from it and ``params`` (no connection
    is made)."""
    from .core.proxies import redact

    shown = redact(url) if isinstance(url, str) else url
    if not isinstance(url, str):
        raise _fail(name, REDIS_URL_FORMS, shown)
    try:
        from redis import ConnectionPool
    except ImportError:
        raise SettingsError(
            f"{name}: the Redis store needs redis-py: pip install 'scrapy-sessionpool[redis]'"
        ) from None
    db = urlsplit(url).path.strip("/") if url.startswith(("redis://", "rediss://")) else ""
    if db and not db.isdigit():  # redis-py would quietly use database 0
        raise SettingsError(f"{name}: expected {REDIS_URL_FORMS} (the database is a number), got {shown!r}")
    try:
        if cluster:
            _check_cluster(url, params)
        else:
            ConnectionPool.from_url(url, **params).make_connection()
    except SettingsError:  # the cluster's own line
        raise
    except (ValueError, TypeError) as exc:
        detail = (redact(str(exc)) or "").replace(url, str(shown))[:160]
        where = "REDIS_PARAMS" if isinstance(exc, TypeError) else name
        if where == "REDIS_PARAMS":
            raise SettingsError(f"REDIS_PARAMS: expected redis-py client options ({detail})") from None
        raise SettingsError(f"{name}: expected {REDIS_URL_FORMS} ({detail}), got {shown!r}") from None
    return url


def _check_cluster(url: str, params: dict[str, Any]) -> None:
    """A Redis Cluster is reached over TCP, in database 0 (the only one it has), with options its
    redis-py client takes; ValueError or TypeError as for one Redis."""
    import warnings

    from redis import ConnectionPool
    from redis.asyncio.cluster import RedisCluster
    from redis.exceptions import RedisClusterException

    from .core.proxies import redact

    name, shown = "SESSIONPOOL_REDIS_CLUSTER", redact(url)
    in_url = ConnectionPool.from_url(url).connection_kwargs
    if "path" in in_url:
        raise SettingsError(f"{name}: a Redis Cluster is reached over TCP (redis:// or rediss://), got {shown!r}")
    db = in_url.get("db", params.get("db")) or 0  # as redis-py merges them: the URL's options win
    if str(db) != "0":
        where = f"the URL {shown!r}" if "db" in in_url else "REDIS_DB or REDIS_PARAMS"
        raise SettingsError(f"{name}: a Redis Cluster has database 0 only, got database {db} from {where}")
    try:
        with warnings.catch_warnings():  # deprecated options: the client itself warns of them
            warnings.simplefilter("ignore")
            RedisCluster.from_url(url, **params)
    except RedisClusterException as exc:
        detail = (str(exc).splitlines() or [""])[0][:160]
        raise SettingsError(
            f"{name}: redis-py's cluster client refuses the connection ({detail}), got {shown!r}"
        ) from None


def _documented() -> list[str]:
    """Every setting's name, sorted."""
    return sorted(PREFIX + name.upper() for name in TABLE)
