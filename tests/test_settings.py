import re
from dataclasses import fields, replace

import pytest
from scrapy.settings import Settings

from scrapy_sessionpool.core.accounts import Account
from scrapy_sessionpool.core.blame import Judge
from scrapy_sessionpool.policy import BanPolicy
from scrapy_sessionpool.settings import TABLE, PoolSettings, SettingsError, _documented, _int, _number, _positive


def read(**values):
    return PoolSettings.from_settings(Settings({f"SESSIONPOOL_{k}": v for k, v in values.items()}))


def test_defaults():
    cfg = read()
    assert not cfg.enabled
    assert cfg.max_pool_size == 16  # CONCURRENT_REQUESTS
    assert cfg.session_options == {
        "max_age_secs": 3000,
        "max_usage_count": 50,
        "max_error_score": 3,
        "error_score_decrement": 0.5,
    }
    assert cfg.blocked_status_codes == {401, 403, 429, 503}
    assert cfg.challenge_patterns == cfg.block_redirect_patterns == ()
    assert cfg.max_challenge_refetches == 3 and cfg.proxy_block_threshold == 2 and cfg.site_block_share == 0.5
    assert (cfg.suspect_wait, cfg.proxy_max_delay, cfg.proxy_backoff_base, cfg.max_wait) == (5, 5, 5, 600)
    assert {c.__name__ for c in cfg.block_exceptions} == {
        "ResponseFailed",
        "ConnectionLost",
        "ConnectionDone",
        "TunnelError",
    }
    assert cfg.reuse_strategy == "random" and cfg.max_session_rotations == 10
    assert cfg.persist_interval == 60 and cfg.log_interval == 60
    assert cfg.ban_policy is BanPolicy and cfg.proxies == () and cfg.user_agents == ()


def test_pool_size_follows_concurrency_unless_set():
    assert PoolSettings.from_settings(Settings({"CONCURRENT_REQUESTS": 40})).max_pool_size == 40
    assert read(MAX_POOL_SIZE=5).max_pool_size == 5


def test_command_line_strings_are_accepted():
    cfg = read(
        ENABLED="True",
        MAX_POOL_SIZE="7",
        MAX_AGE_SECS="12.5",
        BLOCKED_STATUS_CODES="403,503",
        USER_AGENTS="a,b",
        WARM_UP="0",
    )
    assert (cfg.enabled, cfg.max_pool_size, cfg.max_age_secs, cfg.user_agents, cfg.warm_up) == (
        True,
        7,
        12.5,
        ("a", "b"),
        False,
    )
    assert cfg.blocked_status_codes == {403, 503}


def test_ban_patterns_are_compiled():
    cfg = read(BAN_PATTERNS=["captcha", r"access\s+denied"])
    assert [p.pattern for p in cfg.ban_patterns] == ["captcha", r"access\s+denied"]


def test_proxies_from_a_file(tmp_path):
    path = tmp_path / "proxies.txt"
    path.write_text("# exits\nhttp://a:1\n\n  http://u:p@b:2  \n")
    assert read(PROXIES=str(path)).proxies == ("http://a:1", "http://u:p@b:2")


def test_named_pools_override_pool_settings():
    cfg = read(MAX_POOL_SIZE=10, POOLS={"login": {"max_pool_size": 2, "SESSIONPOOL_REUSE_STRATEGY": "round_robin"}})
    login = cfg.for_pool("login")
    assert (login.max_pool_size, login.reuse_strategy, login.max_usage_count) == (2, "round_robin", 50)
    assert cfg.for_pool("other") is cfg and cfg.for_pool(None) is cfg


BAD = [
    ("ENABLED", "yes", "SESSIONPOOL_ENABLED: expected True or False, got 'yes'"),
    ("MAX_POOL_SIZE", 0, "SESSIONPOOL_MAX_POOL_SIZE: expected an integer from 1 to 10,000,000, got 0"),
    ("MAX_POOL_SIZE", -1, "SESSIONPOOL_MAX_POOL_SIZE: expected an integer from 1 to 10,000,000, got -1"),
    ("MAX_POOL_SIZE", 2.5, "SESSIONPOOL_MAX_POOL_SIZE: expected an integer from 1 to 10,000,000, got 2.5"),
    ("MAX_POOL_SIZE", "many", "SESSIONPOOL_MAX_POOL_SIZE: expected an integer from 1 to 10,000,000, got 'many'"),
    ("MAX_AGE_SECS", 0, "SESSIONPOOL_MAX_AGE_SECS: expected a number > 0 and <= 315,360,000, got 0"),
    ("MAX_AGE_SECS", float("nan"), "SESSIONPOOL_MAX_AGE_SECS: expected a number > 0 and <= 315,360,000, got nan"),
    ("MAX_USAGE_COUNT", 0, "SESSIONPOOL_MAX_USAGE_COUNT: expected an integer from 1 to 1,000,000,000, got 0"),
    ("MAX_ERROR_SCORE", -2, "SESSIONPOOL_MAX_ERROR_SCORE: expected a number > 0 and <= 1,000,000, got -2"),
    (
        "ERROR_SCORE_DECREMENT",
        -0.5,
        "SESSIONPOOL_ERROR_SCORE_DECREMENT: expected a number >= 0 and <= 1,000,000, got -0.5",
    ),
    (
        "REUSE_STRATEGY",
        "lru",
        ("SESSIONPOOL_REUSE_STRATEGY: expected one of 'random', 'round_robin', 'use_until_failure', got 'lru'"),
    ),
    ("BLOCKED_STATUS_CODES", [403, 999], "SESSIONPOOL_BLOCKED_STATUS_CODES: expected a list of HTTP status codes"),
    ("BLOCKED_STATUS_CODES", 403, "SESSIONPOOL_BLOCKED_STATUS_CODES: expected a list of HTTP status codes"),
    ("BAN_PATTERNS", ["(unclosed"], "SESSIONPOOL_BAN_PATTERNS: '(unclosed' is not a valid regular expression"),
    ("BAN_PATTERNS", [3], "SESSIONPOOL_BAN_PATTERNS: expected a list of regular expressions"),
    ("BAN_POLICY", "nowhere.Policy", "SESSIONPOOL_BAN_POLICY: cannot import 'nowhere.Policy'"),
    ("JUDGE", "nowhere.Judge", "SESSIONPOOL_JUDGE: cannot import 'nowhere.Judge'"),
    (
        "JUDGE",
        "scrapy_sessionpool.policy.BanPolicy",
        "SESSIONPOOL_JUDGE: expected a subclass of scrapy_sessionpool.core.blame.Judge",
    ),
    ("MAX_SESSION_ROTATIONS", -1, "SESSIONPOOL_MAX_SESSION_ROTATIONS: expected an integer from 0 to 1,000, got -1"),
    (
        "PROXIES",
        ["ftp://x:1"],
        ("SESSIONPOOL_PROXIES: expected proxy URLs like http://[user:pass@]host:port, got 'ftp://x:1'"),
    ),
    (
        "PROXIES",
        ["http://u:secret@h:1/path"],
        ("SESSIONPOOL_PROXIES: expected proxy URLs like http://[user:pass@]host:port, got 'http://u:***@h:1/path'"),
    ),
    ("PROXIES", ["http://a:1", "http://a:1"], "SESSIONPOOL_PROXIES: the same proxy is listed twice"),
    ("PROXIES", "/no/such/file", "SESSIONPOOL_PROXIES: cannot read proxy list file '/no/such/file'"),
    ("USER_AGENTS", ["ok", ""], "SESSIONPOOL_USER_AGENTS: expected a list of non-empty strings"),
    ("PERSIST_INTERVAL", 0, "SESSIONPOOL_PERSIST_INTERVAL: expected a number > 0 and <= 604,800, got 0"),
    ("LOG_INTERVAL", "soon", "SESSIONPOOL_LOG_INTERVAL: expected a number, got 'soon'"),
    ("PROXY_BLOCK_THRESHOLD", 0, "SESSIONPOOL_PROXY_BLOCK_THRESHOLD: expected an integer from 1 to 1,000,000, got 0"),
    ("PROXY_BLOCK_WINDOW", -1, "SESSIONPOOL_PROXY_BLOCK_WINDOW: expected a number > 0 and <= 604,800, got -1"),
    ("PROXY_BACKOFF_BASE", 0, "SESSIONPOOL_PROXY_BACKOFF_BASE: expected a number > 0 and <= 604,800, got 0"),
    ("PROXY_BACKOFF_MAX", 1, "SESSIONPOOL_PROXY_BACKOFF_MAX: expected a number >= SESSIONPOOL_PROXY_BACKOFF_BASE"),
    ("PROXY_SLOTS", "maybe", "SESSIONPOOL_PROXY_SLOTS: expected True or False, got 'maybe'"),
    ("WARM_UP", 2, "SESSIONPOOL_WARM_UP: expected True or False, got 2"),
    ("SEED", -1, "SESSIONPOOL_SEED: expected an integer >= 0, got -1"),
    ("POOLS", ["login"], "SESSIONPOOL_POOLS: expected a dict {pool name: {setting: value}}"),
    (
        "POOLS",
        {"bad name": {}},
        ("SESSIONPOOL_POOLS: expected pool names of 1-64 characters [A-Za-z0-9_.-], got 'bad name'"),
    ),
    ("POOLS", {"login": 3}, "SESSIONPOOL_POOLS['login']: expected a dict of settings, got 3"),
    (
        "POOLS",
        {"login": {"ban_patterns": []}},
        (
            "SESSIONPOOL_POOLS['login']: cannot override 'ban_patterns'; expected s"
            "ome of max_pool_size, max_age_secs, max_usage_count, max_error_score, "
            "error_score_decrement, reuse_strategy, proxies, user_agents, accounts"
        ),
    ),
    (
        "POOLS",
        {"login": {"max_pool_size": 0}},
        "SESSIONPOOL_POOLS['login'].max_pool_size: expected an integer from 1 to 10,000,000, got 0",
    ),
    (
        "MAX_POOLSIZE",
        3,
        "SESSIONPOOL_MAX_POOLSIZE: unknown setting; expected one of " + ", ".join(sorted(_documented())),
    ),
    ("MAX_POOL_SIZE", 10**9, "SESSIONPOOL_MAX_POOL_SIZE: expected an integer from 1 to 10,000,000, got 1000000000"),
    ("MAX_AGE_SECS", 1e12, "SESSIONPOOL_MAX_AGE_SECS: expected a number > 0 and <= 315,360,000, got 1000000000000.0"),
    ("MAX_SESSION_ROTATIONS", 10**6, "SESSIONPOOL_MAX_SESSION_ROTATIONS: expected an integer from 0 to 1,000"),
    ("LOG_INTERVAL", 10**7, "SESSIONPOOL_LOG_INTERVAL: expected a number > 0 and <= 604,800, got 10000000"),
    ("PROXY_THROTTLE_DELAY", -1, "SESSIONPOOL_PROXY_THROTTLE_DELAY: expected a number > 0 and <= 3,600, got -1"),
    ("CHALLENGE_PATTERNS", ["[x"], "SESSIONPOOL_CHALLENGE_PATTERNS: '[x' is not a valid regular expression"),
    ("BLOCK_REDIRECT_PATTERNS", 5, "SESSIONPOOL_BLOCK_REDIRECT_PATTERNS: expected a list of regular expressions"),
    (
        "BLOCK_EXCEPTIONS",
        ["builtins.str"],
        (
            "SESSIONPOOL_BLOCK_EXCEPTIONS: expected a list of exception classes or "
            "their import paths, got 'builtins.str'"
        ),
    ),
    ("BLOCK_EXCEPTIONS", ["no.such.Error"], "SESSIONPOOL_BLOCK_EXCEPTIONS: cannot import 'no.such.Error'"),
    ("MAX_CHALLENGE_REFETCHES", -1, "SESSIONPOOL_MAX_CHALLENGE_REFETCHES: expected an integer from 0 to 100, got -1"),
    ("PROXY_MAX_DELAY", 0, "SESSIONPOOL_PROXY_MAX_DELAY: expected a number > 0 and <= 3,600, got 0"),
    ("SITE_BLOCK_SHARE", 1, "SESSIONPOOL_SITE_BLOCK_SHARE: expected a share from 0 to below 1, got 1.0"),
    ("SITE_BLOCK_SHARE", -0.1, "SESSIONPOOL_SITE_BLOCK_SHARE: expected a number >= 0, got -0.1"),
    # the least value of each number above 0 (the table's strict minimum), with its maximum
    ("MAX_ERROR_SCORE", 0, "SESSIONPOOL_MAX_ERROR_SCORE: expected a number > 0 and <= 1,000,000, got 0"),
    ("LOG_INTERVAL", 0, "SESSIONPOOL_LOG_INTERVAL: expected a number > 0 and <= 604,800, got 0"),
    ("PROXY_BLOCK_WINDOW", 0, "SESSIONPOOL_PROXY_BLOCK_WINDOW: expected a number > 0 and <= 604,800, got 0"),
    ("PROXY_BACKOFF_MAX", 0, "SESSIONPOOL_PROXY_BACKOFF_MAX: expected a number > 0 and <= 604,800, got 0"),
    ("PROXY_THROTTLE_DELAY", 0, "SESSIONPOOL_PROXY_THROTTLE_DELAY: expected a number > 0 and <= 3,600, got 0"),
    ("SUSPECT_WAIT", 0, "SESSIONPOOL_SUSPECT_WAIT: expected a number > 0 and <= 604,800, got 0"),
    ("MAX_WAIT", 0, "SESSIONPOOL_MAX_WAIT: expected a number > 0 and <= 604,800, got 0"),
    ("SUSPECT_WAIT", -5, "SESSIONPOOL_SUSPECT_WAIT: expected a number > 0 and <= 604,800, got -5"),
    ("MAX_WAIT", "forever", "SESSIONPOOL_MAX_WAIT: expected a number, got 'forever'"),
    ("PERSIST_STATE", "sometimes", "SESSIONPOOL_PERSIST_STATE: expected True or False, got 'sometimes'"),
    (
        "PERSIST_STATE_STORE",
        5,
        (
            "SESSIONPOOL_PERSIST_STATE_STORE: expected a directory path, 'redis', or a redis://, rediss:// or "
            "unix:// URL, got 5"
        ),
    ),
    (
        "PERSIST_STATE_STORE",
        "",
        (
            "SESSIONPOOL_PERSIST_STATE_STORE: expected a directory path, 'redis', or a redis://, rediss:// or "
            "unix:// URL, got ''"
        ),
    ),
    (
        "PERSIST_STATE_STORE",
        "redis://u:hunter2@h:6379/zero",
        (
            "SESSIONPOOL_PERSIST_STATE_STORE: expected a Redis URL such as redis://host:6379/0, "
            "rediss://user:pass@host:6380 or unix:///path/redis.sock (the database is a number), "
            "got 'redis://u:***@h:6379/zero'"
        ),
    ),
    (
        "PERSIST_STATE_STORE",
        "memcached://h:1",
        (
            "SESSIONPOOL_PERSIST_STATE_STORE: expected a Redis URL such as redis://host:6379/0, "
            "rediss://user:pass@host:6380 or unix:///path/redis.sock"
        ),
    ),
    (
        "PERSIST_STATE_KEY",
        "",
        (
            "SESSIONPOOL_PERSIST_STATE_KEY: expected a non-empty string, '%(spider)"
            "s' may stand for the spider name, got ''"
        ),
    ),
    (
        "PERSIST_STATE_KEY",
        "%(name)s",
        (
            "SESSIONPOOL_PERSIST_STATE_KEY: expected a non-empty string, '%(spider)"
            "s' may stand for the spider name, got '%(name)s'"
        ),
    ),
    (
        "PERSIST_STATE_KEY",
        7,
        (
            "SESSIONPOOL_PERSIST_STATE_KEY: expected a non-empty string, '%(spider)"
            "s' may stand for the spider name, got 7"
        ),
    ),
    ("PERSIST_STATE_ON_ERROR", "ignore", "SESSIONPOOL_PERSIST_STATE_ON_ERROR: expected one of 'start_fresh', 'stop'"),
    (
        "REUSE_STRATEGY",
        ["random"],
        "SESSIONPOOL_REUSE_STRATEGY: expected one of 'random', 'round_robin', 'use_until_failure', got ['random']",
    ),
    (
        "BAN_POLICY",
        "scrapy_sessionpool.policy.NoSuchPolicy",
        "SESSIONPOOL_BAN_POLICY: cannot import 'scrapy_sessionpool.policy.NoSuchPolicy'",
    ),
    ("BAN_POLICY", "BanPolicy", "SESSIONPOOL_BAN_POLICY: cannot import 'BanPolicy'"),
    ("BAN_POLICY", "..policy.BanPolicy", "SESSIONPOOL_BAN_POLICY: cannot import '..policy.BanPolicy'"),
    (
        "BAN_POLICY",
        3,
        "SESSIONPOOL_BAN_POLICY: expected an import path such as 'myproject.policies.MyPolicy', or a class, got 3",
    ),
    ("REDIS_PREFIX", "a b", "SESSIONPOOL_REDIS_PREFIX: expected 1-64 characters [A-Za-z0-9_.:-], got 'a b'"),
    ("REDIS_TTL", 0, "SESSIONPOOL_REDIS_TTL: expected a number > 0 and <= 31,622,400, got 0"),
    ("REDIS_LEASE_TTL", "soon", "SESSIONPOOL_REDIS_LEASE_TTL: expected a number, got 'soon'"),
    ("REDIS_PREFETCH", 0, "SESSIONPOOL_REDIS_PREFETCH: expected an integer from 1 to 1,000, got 0"),
    ("REDIS_CLUSTER", "yes", "SESSIONPOOL_REDIS_CLUSTER: expected True or False, got 'yes'"),
    (
        "SESSION_INIT",
        "nowhere.Login",
        "SESSIONPOOL_SESSION_INIT: cannot import 'nowhere.Login' (No module named 'nowhere')",
    ),
    (
        "SESSION_INIT",
        "scrapy_sessionpool.core.accounts.Account",
        "SESSIONPOOL_SESSION_INIT: expected a class with an async init(self, init) method, or its import path",
    ),
    ("MAX_BAD_INITS", 0, "SESSIONPOOL_MAX_BAD_INITS: expected an integer from 1 to 1,000,000, got 0"),
    ("INIT_TIMEOUT", 0, "SESSIONPOOL_INIT_TIMEOUT: expected a number > 0 and <= 86,400, got 0"),
    (
        "ACCOUNTS",
        [{"password": "hunter2"}],
        "SESSIONPOOL_ACCOUNTS[0]: expected a 'label' or 'username' (a string of 1-200 characters)",
    ),
    ("ACCOUNTS", 7, "SESSIONPOOL_ACCOUNTS: expected a list of accounts (dicts) or the path of a JSON-lines file"),
    (
        "ACCOUNTS",
        [{"username": "a", "password": "x"}, {"username": "a", "password": "y"}],
        "SESSIONPOOL_ACCOUNTS[1]: the label 'a' is given twice; labels name accounts",
    ),
    ("ACCOUNT_REST_SECS", -1, "SESSIONPOOL_ACCOUNT_REST_SECS: expected a number >= 0 and <= 31,536,000, got -1"),
    ("ACCOUNT_MAX_BLOCKS", 0, "SESSIONPOOL_ACCOUNT_MAX_BLOCKS: expected an integer from 1 to 1,000,000, got 0"),
    ("FINGERPRINTS", "yes", "SESSIONPOOL_FINGERPRINTS: expected True or False, got 'yes'"),
    ("BROWSER_ESCALATION", "yes", "SESSIONPOOL_BROWSER_ESCALATION: expected True or False, got 'yes'"),
    ("BROWSER_CHALLENGE_WAIT", 0, "SESSIONPOOL_BROWSER_CHALLENGE_WAIT: expected a number > 0 and <= 600, got 0"),
    ("FINGERPRINT_BROWSERS", [""], "SESSIONPOOL_FINGERPRINT_BROWSERS: expected a list of non-empty strings, got ['']"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_bad_settings_give_one_clear_line(name, value, message):
    with pytest.raises(SettingsError) as info:
        read(**{name: value})
    text = str(info.value)
    # the table's text, then at most the value given or a detail in brackets
    assert text == message or re.fullmatch(re.escape(message) + r"(, got .+| \(.+\)(, got .+)?)", text), text
    assert "\n" not in text
    assert re.match(r"SESSIONPOOL_\w+", text)


def test_the_table_covers_every_setting():
    from scrapy_sessionpool.settings import _documented

    covered = {f"SESSIONPOOL_{name}" for name, _, _ in BAD}
    assert set(_documented()) - covered == set()


def test_redis_alone_takes_redis_url_as_scrapy_redis_does():
    cfg = PoolSettings.from_settings(
        Settings({"SESSIONPOOL_PERSIST_STATE_STORE": "redis", "REDIS_URL": "redis://cache:6380/2"})
    )
    assert cfg.redis_url == "redis://cache:6380/2"
    with pytest.raises(SettingsError, match=r"^REDIS_URL: expected a Redis URL"):
        PoolSettings.from_settings(Settings({"SESSIONPOOL_PERSIST_STATE_STORE": "redis", "REDIS_URL": "nope"}))


def test_reading_no_settings_gives_the_table_defaults():
    cfg = PoolSettings.from_settings(Settings())
    # only the defaults that are classes differ from a PoolSettings built in code: they are imported on reading
    imported = {"block_exceptions": cfg.block_exceptions, "ban_policy": BanPolicy, "judge": Judge}
    assert cfg == replace(PoolSettings(), **imported)
    assert {name for name, row in TABLE.items() if row.read(name, None) != getattr(PoolSettings(), name)} == set(
        imported
    )


def test_the_table_has_a_row_per_field_but_the_derived_redis_url():
    assert set(TABLE) == {f.name for f in fields(PoolSettings)} - {"redis_url", "redis_params"}
    assert _documented() == sorted(f"SESSIONPOOL_{name.upper()}" for name in TABLE)


BOUNDED = [name for name, row in TABLE.items() if row.parse in (_int, _number, _positive)]


def given(name, value):
    """The settings read with ``name`` set to ``value`` (the backoff pair kept in order)."""
    keep = {"proxy_backoff_base": {"PROXY_BACKOFF_MAX": 7 * 86400}, "proxy_backoff_max": {"PROXY_BACKOFF_BASE": 0.001}}
    return read(**{name.upper(): value, **keep.get(name, {})})


@pytest.mark.parametrize("name", BOUNDED)
def test_numbers_keep_the_bounds_of_their_row(name):
    row, setting = TABLE[name], f"SESSIONPOOL_{name.upper()}"
    if row.parse is _int:
        expected = (
            f"an integer from {row.minimum} to {row.maximum:,.0f}" if row.maximum else f"an integer >= {row.minimum}"
        )
    else:
        expected = f"a number {'>' if row.parse is _positive else '>='} {row.minimum:g}"
        expected += f" and <= {row.maximum:,.0f}" if row.maximum else ""
    lowest, too_low = (row.minimum + 0.001, row.minimum) if row.parse is _positive else (row.minimum, row.minimum - 1)
    assert getattr(given(name, lowest), name) == lowest
    with pytest.raises(SettingsError) as info:
        given(name, too_low)
    assert str(info.value) == f"{setting}: expected {expected}, got {too_low!r}"
    if row.maximum is not None:
        assert getattr(given(name, row.maximum), name) == row.maximum
        with pytest.raises(SettingsError) as info:
            given(name, row.maximum + 1)
        assert str(info.value) == f"{setting}: expected {expected}, got {row.maximum + 1!r}"


#: A value other than the default for each field a named pool may override.
OVERRIDES = {
    "max_pool_size": 3,
    "max_age_secs": 7.0,
    "max_usage_count": 4,
    "max_error_score": 2.0,
    "error_score_decrement": 0.25,
    "reuse_strategy": "round_robin",
    "proxies": ("http://p:1",),
    "user_agents": ("agent",),
    "accounts": (Account("a", {"username": "a"}),),
}


def test_a_named_pool_overrides_exactly_the_fields_the_table_says():
    assert set(OVERRIDES) == {name for name, row in TABLE.items() if row.per_pool}
    cfg = read(POOLS={"p": OVERRIDES})
    pool = cfg.for_pool("p")
    for name in TABLE:
        if name in OVERRIDES:
            assert getattr(pool, name) == OVERRIDES[name] != getattr(cfg, name), name
        elif name != "pools":
            assert getattr(pool, name) == getattr(cfg, name), name


@pytest.mark.parametrize("name", [name for name, row in TABLE.items() if not row.per_pool])
def test_a_named_pool_cannot_override_the_other_fields(name):
    with pytest.raises(SettingsError, match=rf"^SESSIONPOOL_POOLS\['p'\]: cannot override '{name}'; expected some of "):
        read(POOLS={"p": {name: TABLE[name].default}})


def test_a_named_pool_given_none():
    pool = read(MAX_POOL_SIZE=5, PROXIES=["http://p:1"], POOLS={"p": {"max_pool_size": None, "proxies": None}})
    # None keeps the spider's pool size, and means no proxies (as at the top level, where None is unset)
    assert (pool.for_pool("p").max_pool_size, pool.for_pool("p").proxies) == (5, ())
    with pytest.raises(SettingsError, match=r"^SESSIONPOOL_POOLS\['p'\].max_age_secs: expected a number > 0"):
        read(POOLS={"p": {"max_age_secs": None}})


def test_empty_import_paths_and_pools_are_unset():
    cfg = read(BAN_POLICY="", JUDGE="", POOLS="")
    assert (cfg.ban_policy, cfg.judge, cfg.pools) == (BanPolicy, Judge, {})


def test_classes_are_taken_as_they_are_and_import_paths_loaded():
    cfg = read(
        BAN_POLICY=BanPolicy,
        JUDGE="scrapy_sessionpool.core.blame.Judge",
        BLOCK_EXCEPTIONS=[KeyError, "builtins.OSError"],
    )
    assert (cfg.ban_policy, cfg.judge, cfg.block_exceptions) == (BanPolicy, Judge, (KeyError, OSError))


def redis_settings(**settings):
    return PoolSettings.from_settings(Settings({"SESSIONPOOL_PERSIST_STATE_STORE": "redis", **settings}))


def test_redis_takes_the_connection_as_scrapy_redis_does():
    cfg = redis_settings(REDIS_URL="redis://h:6379/0?socket_timeout=5&health_check_interval=2")
    assert cfg.redis_url == "redis://h:6379/0?socket_timeout=5&health_check_interval=2" and cfg.redis_params == {}
    assert redis_settings(REDIS_URL="unix:///run/redis.sock?db=3").redis_url == "unix:///run/redis.sock?db=3"
    cfg = redis_settings(REDIS_HOST="cache.internal", REDIS_PORT="6380", REDIS_DB=2)
    assert cfg.redis_url == "redis://cache.internal:6380" and cfg.redis_params == {"db": 2}
    assert redis_settings().redis_url == "redis://localhost:6379"  # scrapy-redis's default
    assert redis_settings(REDIS_HOST="::1").redis_url == "redis://[::1]:6379"
    params = {"password": "hunter2", "socket_timeout": 3, "redis_cls": "redis.StrictRedis"}
    cfg = redis_settings(REDIS_URL="redis://h:6379", REDIS_PARAMS=params)
    assert cfg.redis_params == {"password": "hunter2", "socket_timeout": 3}  # redis_cls is scrapy-redis's
    assert redis_settings(REDIS_PARAMS='{"db": 4}').redis_params == {"db": 4}  # as Scrapy's getdict takes it
    # an explicit URL is ours alone: scrapy-redis's settings do not apply to it
    cfg = PoolSettings.from_settings(
        Settings({"SESSIONPOOL_PERSIST_STATE_STORE": "redis://h:1/5", "REDIS_PARAMS": {"db": 9}, "REDIS_DB": 8})
    )
    assert cfg.redis_url == "redis://h:1/5" and cfg.redis_params == {}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"REDIS_URL": "nope"},
            (
                "REDIS_URL: expected a Redis URL such as redis://host:6379/0, rediss://user:pass@host:6380 or "
                "unix:///path/redis.sock (Redis URL must specify one of the following schemes (redis://, rediss://, "
                "unix://)), got 'nope'"
            ),
        ),
        (
            {"REDIS_URL": "redis://u:hunter2@h:6379?socket_timeout=soon"},
            (
                "REDIS_URL: expected a Redis URL such as redis://host:6379/0, rediss://user:pass@host:6380 or "
                "unix:///path/redis.sock (Invalid value for 'socket_timeout' in connection URL.), "
                "got 'redis://u:***@h:6379?socket_timeout=soon'"
            ),
        ),
        ({"REDIS_PORT": "http"}, "REDIS_PORT: expected an integer from 1 to 65,535, got 'http'"),
        ({"REDIS_DB": -1}, "REDIS_DB: expected an integer >= 0, got -1"),
        ({"REDIS_HOST": "a b"}, "REDIS_HOST: expected a host name or address, got 'a b'"),
        (
            {"REDIS_PARAMS": "{nope"},
            "REDIS_PARAMS: expected a dict of redis-py client options (or its JSON), got '{nope'",
        ),
        ({"REDIS_PARAMS": {"pasword": "x"}}, "REDIS_PARAMS: expected redis-py client options"),
    ],
)
def test_a_wrong_redis_connection_setting_is_one_clear_line(settings, message):
    with pytest.raises(SettingsError) as caught:
        redis_settings(**settings)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_redis_cluster_takes_the_options_of_redis_py_s_cluster_client():
    cfg = redis_settings(
        SESSIONPOOL_REDIS_CLUSTER="true", REDIS_URL="redis://h:7000", REDIS_PARAMS={"require_full_coverage": False}
    )
    assert (cfg.redis_cluster, cfg.redis_url) == (True, "redis://h:7000")
    assert cfg.redis_params == {"require_full_coverage": False}
    with pytest.raises(SettingsError, match=r"^REDIS_PARAMS: expected redis-py client options"):  # a cluster's own
        redis_settings(REDIS_URL="redis://h:7000", REDIS_PARAMS={"require_full_coverage": False})
    assert redis_settings(SESSIONPOOL_REDIS_CLUSTER=True, REDIS_URL="redis://h:7000/0", REDIS_DB=3).redis_cluster
    assert not read(REDIS_CLUSTER=True).redis_url  # no Redis store: nothing to check


CLUSTER_DB = "SESSIONPOOL_REDIS_CLUSTER: a Redis Cluster has database 0 only, got database"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"REDIS_URL": "redis://u:hunter2@h:7000/2"}, f"{CLUSTER_DB} 2 from the URL 'redis://u:***@h:7000/2'"),
        ({"REDIS_URL": "redis://h:7000?db=3"}, f"{CLUSTER_DB} 3 from the URL 'redis://h:7000?db=3'"),
        ({"REDIS_URL": "redis://h:7000", "REDIS_DB": 1}, f"{CLUSTER_DB} 1 from REDIS_DB or REDIS_PARAMS"),
        ({"REDIS_PARAMS": {"db": 4}}, f"{CLUSTER_DB} 4 from REDIS_DB or REDIS_PARAMS"),
        ({"SESSIONPOOL_PERSIST_STATE_STORE": "redis://h:7000/5"}, f"{CLUSTER_DB} 5 from the URL 'redis://h:7000/5'"),
        (
            {"REDIS_URL": "unix:///run/redis.sock"},
            (
                "SESSIONPOOL_REDIS_CLUSTER: a Redis Cluster is reached over TCP (redis:// or rediss://), "
                "got 'unix:///run/redis.sock'"
            ),
        ),
        (
            {"REDIS_URL": "redis://u:hunter2@:7000"},
            "SESSIONPOOL_REDIS_CLUSTER: redis-py's cluster client refuses the connection (",
        ),
        (
            {"REDIS_PARAMS": {"retry_on_timeout": True}},  # scrapy-redis's, but not the cluster client's
            "REDIS_PARAMS: expected redis-py client options (",
        ),
    ],
)
def test_a_redis_cluster_has_database_0_only_and_a_wrong_option_is_one_clear_line(settings, message):
    with pytest.raises(SettingsError) as caught:
        redis_settings(SESSIONPOOL_REDIS_CLUSTER=True, **settings)
    text = str(caught.value)
    assert (text == message or (message.endswith("(") and text.startswith(message))) and "\n" not in text
    assert "hunter2" not in text
