"""``scrapy sessionpool``: the real command, in a subprocess, inside a throwaway project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from scrapy_sessionpool import SessionPool
from scrapy_sessionpool.stores import FileStore

SECRETS = ("COOKIE-VALUE-SECRET", "PROXY-PASSWORD-SECRET", "USER-DATA-SECRET")
PROXY = "http://bob:PROXY-PASSWORD-SECRET@127.0.0.1:3128"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


@pytest.fixture
def project(tmp_path):
    """A project whose spider ``shop`` keeps its pools (default and ``login``) in ``tmp_path/pools``."""
    (tmp_path / "scrapy.cfg").write_text("[settings]\ndefault = proj.settings\n")
    (tmp_path / "proj" / "spiders").mkdir(parents=True)
    (tmp_path / "proj" / "__init__.py").write_text("")
    (tmp_path / "proj" / "settings.py").write_text(
        textwrap.dedent("""
        BOT_NAME = "proj"
        SPIDER_MODULES = ["proj.spiders"]
        ADDONS = {"scrapy_sessionpool.Addon": 300}
    """)
    )
    (tmp_path / "proj" / "spiders" / "__init__.py").write_text("")
    (tmp_path / "proj" / "spiders" / "shop.py").write_text(
        textwrap.dedent(f"""
        import scrapy

        class ShopSpider(scrapy.Spider):
            name = "shop"
            custom_settings = {{
                "SESSIONPOOL_PERSIST_STATE_STORE": {str(tmp_path / "pools")!r},
                "SESSIONPOOL_POOLS": {{"login": {{"max_pool_size": 2}}}},
            }}
    """)
    )
    return tmp_path


def store(project):
    return FileStore(project / "pools")


def save_pools(project):
    """A default pool of two sessions (one retired before) and a ``login`` pool of one."""
    pool = SessionPool(max_pool_size=3, session_options={"max_age_secs": 86400})
    first = pool.make_session(
        id="sess-a",
        proxy_url=PROXY,
        user_agent=UA,
        created_at=time.time() - 720,
        usage_count=4,
        error_score=1.5,
        user_data={"token": "USER-DATA-SECRET"},
    )
    first.set_cookie("sid", "COOKIE-VALUE-SECRET", domain="example.com")
    first.set_cookie("cart", "COOKIE-VALUE-SECRET", domain=".example.com")
    pool.add_session(first)
    pool.add_session(pool.make_session(id="sess-b", created_at=time.time() - 3 * 3600 - 5))
    gone = pool.make_session(id="sess-gone")
    pool.add_session(gone)
    gone.retire()
    store(project).save("shop", pool.get_state())
    login = SessionPool(max_pool_size=2)
    login.add_session(login.make_session(id="sess-login", account="alice"))
    store(project).save("shop.login", login.get_state())


def run(project, *args, stdin=subprocess.DEVNULL):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAPY_")}
    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "sessionpool", *args],
        cwd=project,
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
    return result


def test_lists_sessions_without_secrets(project):
    save_pools(project)
    result = run(project, "shop")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Default pool: {store(project).describe('shop')}" in out
    assert f"Pool 'login': {store(project).describe('shop.login')}" in out
    row_a = next(line for line in out.splitlines() if "sess-a" in line)
    for part in (" 12m ", " 4 ", " 1.5 ", "http://bob:***@127.0.0.1:3128", "Mozilla/5.0", "...", "sid,cart"):
        assert part in row_a
    row_b = next(line for line in out.splitlines() if "sess-b" in line)
    assert " 3h " in row_b and "direct" in row_b
    assert "sess-login" in out and "sess-gone" not in out
    assert " ACCOUNT " in out and " alice " in next(line for line in out.splitlines() if "sess-login" in line)
    assert "2 session(s), 1 retired over the pool's life" in out
    assert "per proxy: direct 1, http://bob:***@127.0.0.1:3128 1" in out


def test_json(project):
    save_pools(project)
    result = run(project, "shop", "--json")
    assert result.returncode == 0, result.stderr
    default, login = json.loads(result.stdout)["pools"]
    assert (default["name"], default["key"], login["name"], login["key"]) == (None, "shop", "login", "shop.login")
    assert default["where"] == store(project).describe("shop")
    assert default["retired_sessions_count"] == 1
    a, b = default["sessions"]
    assert set(a) == {
        "id",
        "created_at",
        "age_secs",
        "usage_count",
        "error_score",
        "proxy",
        "user_agent",
        "account",
        "initialized",
        "cookie_names",
        "user_data_keys",
    }
    assert (a["id"], a["usage_count"], a["error_score"]) == ("sess-a", 4, 1.5)
    assert 720 <= a["age_secs"] < 780
    assert a["proxy"] == "http://bob:***@127.0.0.1:3128" and a["user_agent"] == UA
    assert a["cookie_names"] == ["sid", "cart"] and a["user_data_keys"] == ["token"]
    assert b["proxy"] is None and b["cookie_names"] == []
    assert [(s["id"], s["account"]) for s in login["sessions"]] == [("sess-login", "alice")]


def test_nothing_stored(project):
    result = run(project, "shop")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("nothing stored") == 2


def test_key_without_spider(project):
    save_pools(project)
    result = run(project)
    assert result.returncode == 2 and "give a SPIDER, or --key KEY" in result.stderr
    result = run(project, "--key", "shop", "-s", f"SESSIONPOOL_PERSIST_STATE_STORE={project / 'pools'}")
    assert result.returncode == 0, result.stderr
    assert "sess-a" in result.stdout and "login" not in result.stdout  # project settings: no named pools


def test_bad_settings_and_unknown_spider(project):
    result = run(project, "shop", "-s", "SESSIONPOOL_MAX_POOL_SIZE=-1")
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: SESSIONPOOL_MAX_POOL_SIZE: expected an integer from 1 to 10,000,000, got -1"
    result = run(project, "nope")
    assert result.returncode == 1 and "Spider not found: nope" in result.stderr


def test_corrupt_state_is_reported_and_left_alone(project):
    save_pools(project)
    path = store(project).path("shop")
    path.write_bytes(b'{"version": 1, "sess')
    result = run(project, "shop")
    assert result.returncode == 1
    assert str(path) in result.stderr and "not valid JSON" in result.stderr
    assert "sess-login" in result.stdout  # the other pool still shows
    assert path.read_bytes() == b'{"version": 1, "sess'
    assert sorted(p.name for p in path.parent.iterdir()) == ["shop.json", "shop.login.json"]


def test_clear_yes(project):
    save_pools(project)
    result = run(project, "shop", "--clear", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"Deleted {store(project).describe('shop')}" in result.stdout
    assert list((project / "pools").iterdir()) == []


def test_clear_refuses_without_a_terminal(project):
    save_pools(project)
    result = run(project, "shop", "--clear")
    assert result.returncode == 2 and "--yes" in result.stderr
    assert len(list((project / "pools").iterdir())) == 2


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize(("answer", "deleted"), [("y", True), ("", False)])
def test_clear_asks_on_a_terminal(project, answer, deleted):
    save_pools(project)
    master, slave = os.openpty()
    try:
        os.write(master, answer.encode() + b"\n")
        result = run(project, "shop", "--clear", stdin=slave)
    finally:
        os.close(master)
        os.close(slave)
    assert result.returncode == 0, result.stderr
    assert f"Delete the stored pools at {store(project).describe('shop')}, " in result.stdout
    assert len(list((project / "pools").iterdir())) == (0 if deleted else 2)
