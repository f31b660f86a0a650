"""The core's persistence: open_session_pool, persist_state, teardown, sync and asyncio (no Scrapy)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from scrapy_sessionpool import StateError
from scrapy_sessionpool.core.persistence import PoolKeeper, open_session_pool
from scrapy_sessionpool.stores import FileStore, MemoryStore
from tests.clock import FakeClock


def run(coroutine):
    """Run a coroutine on a fresh event loop of its own (the test process's reactor owns the main one)."""
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, coroutine).result()


def saved_ids(store, key="SDK_SESSION_POOL_STATE"):
    state = store.load(key)
    return None if state is None else sorted(s["id"] for s in state["sessions"])


def test_the_apify_example_in_python(tmp_path):
    store = FileStore(tmp_path)
    with open_session_pool(max_pool_size=25, store=store, persist_state_key="my-pool") as pool:
        session = pool.get_session()
        session.user_data["token"] = "t"
        session.mark_good()
        made = session.id
    assert stat.S_IMODE(os.stat(store.path("my-pool")).st_mode) == 0o600
    with open_session_pool(max_pool_size=25, store=store, persist_state_key="my-pool") as again:
        assert again.get_session(made).user_data == {"token": "t"}
        assert again.usable_sessions_count == 1 and again.retired_sessions_count == 0


def test_without_a_store_nothing_is_saved():
    pool = open_session_pool(max_pool_size=2)
    pool.get_session()
    assert pool.persist_state() is False and pool.teardown() is False and pool.keeper is None


def test_periodic_saves_happen_in_get_session_by_the_pools_clock():
    clock, store = FakeClock(), MemoryStore()
    pool = open_session_pool(max_pool_size=3, store=store, persist_state_interval=60, clock=clock)
    first = pool.get_session()
    assert saved_ids(store) is None
    clock.advance(59)
    pool.get_session()
    assert saved_ids(store) is None  # not due yet
    clock.advance(1)
    second = pool.get_session()  # due: saves what was there before this call
    assert saved_ids(store) is not None and first.id in saved_ids(store) and second.id not in saved_ids(store)
    clock.advance(30)
    pool.get_session()
    assert second.id not in saved_ids(store)  # the next save is 60 s after the last one
    pool.persist_state()  # on demand: saved at once, and the period starts over
    assert second.id in saved_ids(store)


def test_no_interval_saves_only_on_demand_and_at_teardown():
    clock, store = FakeClock(), MemoryStore()
    pool = open_session_pool(store=store, persist_state_interval=None, clock=clock)
    pool.get_session()
    clock.advance(2000)  # long after any interval, before the sessions' max age
    pool.get_session()
    assert saved_ids(store) is None
    pool.teardown()
    assert len(saved_ids(store)) == 2


def test_an_unusable_state_is_set_aside_or_stops(tmp_path, caplog):
    store = FileStore(tmp_path)
    store.path("k").write_text(json.dumps({"version": 999, "sessions": []}))
    with pytest.raises(StateError, match="on_state_error is 'stop'"):
        open_session_pool(store=store, persist_state_key="k", on_state_error="stop")
    assert store.path("k").exists()  # left as it was
    pool = open_session_pool(store=store, persist_state_key="k")
    assert pool.usable_sessions_count == 0 and "is unusable" in caplog.text
    kept = list(tmp_path.glob("k.json.bad-*")) + list(tmp_path.glob("k*.bad*"))
    assert kept and json.loads(kept[0].read_text())["version"] == 999


def test_a_bad_session_is_left_out_alone_and_the_state_copied_first(tmp_path, caplog):
    store = FileStore(tmp_path)
    with open_session_pool(store=store, persist_state_key="k") as pool:
        good = pool.get_session()
    state = store.load("k")
    state["sessions"].append({"id": "broken"})
    store.save("k", state)
    counted = []
    pool = open_session_pool(store=store, persist_state_key="k", stats=lambda key, n=1, **kw: counted.append(key))
    assert [s.id for s in pool] == [good.id]
    assert "state/dropped_sessions" in counted and "restored" in counted
    assert "left out 1 unusable part(s)" in caplog.text
    copies = [p for p in tmp_path.iterdir() if ".bad-" in p.name]
    assert copies and "broken" in copies[0].read_text()


def test_a_failed_save_is_logged_and_counted_never_raised(caplog):
    class Broken(MemoryStore):
        def save(self, key, state):
            raise OSError("disk full")

    counted = []
    pool = open_session_pool(store=Broken(), stats=lambda key, n=1, **kw: counted.append(key))
    pool.get_session()
    assert pool.persist_state() is False
    assert counted.count("persist_failed") == 1 and "disk full" in caplog.text


def test_options_are_checked():
    with pytest.raises(ValueError, match="on_state_error: expected one of 'start_fresh', 'stop'"):
        open_session_pool(store=MemoryStore(), on_state_error="retry")
    with pytest.raises(ValueError, match="persist_state_interval: expected a number of seconds > 0"):
        open_session_pool(store=MemoryStore(), persist_state_interval=0)


def test_asyncio_a_task_saves_periodically_and_teardown_waits_for_it():
    store = MemoryStore()
    writes = []

    class Slow(MemoryStore):
        def save(self, key, state):
            writes.append(len(state["sessions"]))
            store.save(key, state)

    async def main():
        async with open_session_pool(store=Slow(), persist_state_interval=0.05) as pool:
            pool.get_session()
            await asyncio.sleep(0.13)  # two periodic saves
            pool.get_session()
        return pool

    pool = run(main())
    assert writes[:2] == [1, 1] and writes[-1] == 2 and len(writes) in (3, 4)
    assert pool.keeper._task is None  # the task is gone


def test_asyncio_saves_run_in_the_given_thread_runner():
    ran = []

    async def run_in_thread(func):
        ran.append(func)
        return await asyncio.to_thread(func)

    async def main():
        pool = open_session_pool(store=MemoryStore(), persist_state_interval=None)
        pool.get_session()
        assert await pool.persist_state_async(run_in_thread) is True
        assert await pool.teardown_async(run_in_thread) is True

    run(main())
    assert len(ran) == 2


def test_a_keeper_over_any_store_object():
    from scrapy_sessionpool import SessionPool

    pool = SessionPool(max_pool_size=2)
    keeper = PoolKeeper(pool, MemoryStore(), "x")
    pool.keep_in(keeper)
    assert pool.initialize() == 0 and pool.keeper is keeper
    pool.get_session()
    assert pool.persist_state() is True and len(keeper.store.load("x")["sessions"]) == 1
