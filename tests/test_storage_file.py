"""The file store: atomic 0600 writes, bad files set aside, unwritable directories, resume."""

from __future__ import annotations

import json
import os
import stat

import pytest
import pytest_twisted

from scrapy_sessionpool import Session, SessionPool, StateError, get_pool
from scrapy_sessionpool.stores import FileStore
from tests.crawling import make_crawler, stats


def test_save_and_load_round_trip(tmp_path):
    store = FileStore(tmp_path / "pools")
    pool = SessionPool(max_pool_size=2, seed=1)
    pool.get_session().set_cookie("sid", "v", domain="example.com")
    store.save("spider", pool.get_state())
    assert store.load("spider") == pool.get_state()
    assert store.load("other") is None


def test_files_are_0600_and_the_directory_0700(tmp_path):
    store = FileStore(tmp_path / "pools")
    store.save("spider", {"version": 1, "sessions": []})
    assert stat.S_IMODE(os.stat(store.path("spider")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "pools").st_mode) == 0o700


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    store = FileStore(tmp_path)
    store.save("spider", {"version": 1, "sessions": []})
    with pytest.raises(ValueError):
        store.save("spider", {"version": 1, "sessions": [float("nan")]})
    assert store.load("spider") == {"version": 1, "sessions": []}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spider.json"]


@pytest.mark.parametrize("key", ["../../etc/passwd", "a/b", ".hidden", "spaces and ünïcode", "%(x)s"])
def test_keys_cannot_escape_the_directory(tmp_path, key):
    store = FileStore(tmp_path / "d")
    store.save(key, {"version": 1, "sessions": []})
    (path,) = (tmp_path / "d").iterdir()
    assert path.parent == tmp_path / "d" and not path.name.startswith(".")
    assert store.load(key) == {"version": 1, "sessions": []}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"version": 1, "sess', "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_unparsable_files_raise_state_error(tmp_path, content, message):
    store = FileStore(tmp_path)
    store.path("spider").write_bytes(content)
    with pytest.raises(StateError, match=message):
        store.load("spider")


def test_set_aside_never_overwrites(tmp_path):
    store = FileStore(tmp_path)
    for n in range(3):
        store.path("spider").write_text(f"bad {n}")
        moved = store.set_aside("spider")
        assert moved.read_text() == f"bad {n}"
    assert len(list(tmp_path.glob("spider.json.bad-*"))) == 3
    assert store.set_aside("spider") is None


def persist_settings(directory, **extra):
    return {"SESSIONPOOL_PERSIST_STATE": True, "SESSIONPOOL_PERSIST_STATE_STORE": str(directory), **extra}


@pytest_twisted.inlineCallbacks
def test_a_second_run_resumes_the_pool(site, make_proxies, tmp_path):
    site.budget = None
    proxies = make_proxies(2)
    settings = persist_settings(
        tmp_path,
        SESSIONPOOL_MAX_POOL_SIZE=3,
        SESSIONPOOL_PROXIES=[p.url for p in proxies],
        SESSIONPOOL_USER_AGENTS=["UA-1", "UA-2"],
    )
    first = make_crawler(settings=settings)
    yield first.crawl(urls=[site.url(f"/items/{i}") for i in range(9)])
    before = {s.id: (s.proxy_url, s.user_agent, s.cookies, s.usage_count) for s in get_pool(first)}
    assert len(before) == 3 and stats(first)["created"] == 3
    sids = set(site.issued_sids)

    second = make_crawler(settings=settings)
    yield second.crawl(urls=[site.url(f"/items/{i}") for i in range(9, 18)])
    s = stats(second)
    assert s["restored"] == 3 and "created" not in s
    after = {s.id: (s.proxy_url, s.user_agent, s.cookies) for s in get_pool(second)}
    assert {k: v[:3] for k, v in before.items()} == after  # same sessions, cookies, proxies, agents
    assert site.issued_sids == sids  # the site saw no new session
    assert sum(s.usage_count for s in get_pool(second)) == sum(v[3] for v in before.values()) + 9


@pytest_twisted.inlineCallbacks
def test_a_corrupt_state_file_is_set_aside_and_the_crawl_starts_fresh(site, tmp_path, caplog):
    (tmp_path / "list.json").write_text('{"version": 1, "sessions": {"id": 5}}')
    crawler = make_crawler(settings=persist_settings(tmp_path))
    yield crawler.crawl(urls=[site.url("/items/1")])
    assert len(crawler.spider.responses) == 1
    (kept,) = tmp_path.glob("list.json.bad-*")
    assert kept.read_text() == '{"version": 1, "sessions": {"id": 5}}'
    assert str(tmp_path / "list.json") in caplog.text and str(kept) in caplog.text
    assert json.loads((tmp_path / "list.json").read_text())["sessions"]  # the fresh pool was saved
    assert stats(crawler)["state_rejected"] == 1


@pytest_twisted.inlineCallbacks
def test_a_bad_session_or_cookie_is_left_out_alone_and_the_file_is_kept_first(site, tmp_path, caplog):
    good = Session(id="good")
    good.set_cookie("sid", "keep-me", domain="127.0.0.1")
    cookie = good.to_state()["cookies"][0]
    other = Session(id="other").to_state()
    other["cookies"] = [cookie, {**cookie, "name": "broken", "expires": "tomorrow"}]
    text = json.dumps({"version": 2, "sessions": [good.to_state(), {"id": "bad", "usage_count": -1}, other]})
    (tmp_path / "list.json").write_text(text)
    crawler = make_crawler(settings=persist_settings(tmp_path, SESSIONPOOL_MAX_POOL_SIZE=2))
    yield crawler.crawl(urls=[site.url("/items/1")])
    s = stats(crawler)
    assert s["restored"] == 2 and s["state/dropped_sessions"] == 1 and s["state/dropped_cookies"] == 1
    assert "state_rejected" not in s
    (kept,) = tmp_path.glob("list.json.bad-*")
    assert kept.read_text() == text and kept.stat().st_mode & 0o777 == 0o600
    saved = {x["id"]: x for x in json.loads((tmp_path / "list.json").read_text())["sessions"]}
    assert {"good", "other"} <= set(saved) and [c["name"] for c in saved["other"]["cookies"]] == ["sid"]
    assert "left out 2 unusable part(s)" in caplog.text and "keep-me" not in caplog.text


@pytest_twisted.inlineCallbacks
def test_a_newer_schema_is_set_aside_too(site, tmp_path, caplog):
    (tmp_path / "list.json").write_text('{"version": 99, "sessions": []}')
    crawler = make_crawler(settings=persist_settings(tmp_path))
    yield crawler.crawl(urls=[site.url("/items/1")])
    assert "newer" in caplog.text and len(list(tmp_path.glob("list.json.bad-*"))) == 1


def test_on_error_stop_stops_the_crawl_at_start(tmp_path):
    (tmp_path / "list.json").write_text("not json")
    with pytest.raises(StateError, match="SESSIONPOOL_PERSIST_STATE_ON_ERROR is 'stop'"):
        make_crawler(settings=persist_settings(tmp_path, SESSIONPOOL_PERSIST_STATE_ON_ERROR="stop"))
    assert (tmp_path / "list.json").read_text() == "not json"


@pytest_twisted.inlineCallbacks
def test_an_unwritable_directory_warns_at_every_save_and_the_crawl_goes_on(site, tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")  # fails even for root
    crawler = make_crawler(
        settings=persist_settings(
            blocker / "pools", SESSIONPOOL_PERSIST_INTERVAL=0.1, DOWNLOAD_DELAY=0.1, CONCURRENT_REQUESTS=1
        )
    )
    yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(5)])
    assert len(crawler.spider.responses) == 5
    warnings = [r for r in caplog.records if r.getMessage().startswith("Could not save session pool default")]
    s = stats(crawler)
    assert len(warnings) == s["persist_failed"] >= 2 and "persisted" not in s
    assert str(blocker / "pools" / "list.json") in warnings[0].getMessage()


def test_temporaries_of_interrupted_saves_are_removed_once_stale(tmp_path):
    store = FileStore(tmp_path)
    store.save("spider", {"version": 1, "sessions": []})
    old = tmp_path / ".spider.json.abc123.tmp"
    fresh = tmp_path / ".spider.json.def456.tmp"
    other = tmp_path / ".other.json.abc123.tmp"
    for tmp in (old, fresh, other):
        tmp.write_text("half a state")
    os.utime(old, (0, 0))
    store.load("spider")
    assert not old.exists() and fresh.exists() and other.exists()  # a save in progress elsewhere is left alone
    store.delete("spider")
    assert not fresh.exists() and other.exists()
