"""The extension: periodic and final persistence, the periodic log line, JOBDIR-safe meta."""

from __future__ import annotations

import pickle

import pytest_twisted

from scrapy_sessionpool import get_pool
from scrapy_sessionpool.extension import SessionPoolExtension
from tests.crawling import make_crawler, stats


def extension(crawler) -> SessionPoolExtension:
    return next(e for e in crawler.extensions.middlewares if isinstance(e, SessionPoolExtension))


@pytest_twisted.inlineCallbacks
def test_persists_periodically_and_once_at_close_then_stops_its_loops(site, caplog):
    caplog.set_level("INFO")
    site.budget = None
    crawler = make_crawler(
        settings={
            "SESSIONPOOL_PERSIST_INTERVAL": 0.2,
            "SESSIONPOOL_LOG_INTERVAL": 0.2,
            "DOWNLOAD_DELAY": 0.15,
            "CONCURRENT_REQUESTS": 1,
            "SESSIONPOOL_MAX_POOL_SIZE": 1,
        }
    )
    ext = extension(crawler)
    saves = []
    real_save = ext.store.save
    ext.store.save = lambda key, state: (
        saves.append((key, crawler.engine.running if crawler.engine else None)),
        real_save(key, state),
    )
    yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(8)])
    s = stats(crawler)
    assert s["persisted"] == len(saves) >= 3
    assert all(key == "list" for key, _ in saves)
    final = ext.store.load("list")
    assert final == get_pool(crawler).get_state()
    assert final["sessions"][0]["usage_count"] == 8
    assert ext._loops == []
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Session pool:")]
    assert len(lines) >= 3
    assert lines[-1].startswith(
        "Session pool: 1 usable, 1 created, 0 retired, 0 blocks/min (blamed on session 0, exit 0, "
        "site 0), 0 proxies in backoff"
    )


@pytest_twisted.inlineCallbacks
def test_requests_stay_picklable_for_jobdir_disk_queues(site, tmp_path):
    site.budget = 2
    crawler = make_crawler(
        settings={"JOBDIR": str(tmp_path / "job"), "SESSIONPOOL_MAX_POOL_SIZE": 2, "SESSIONPOOL_SUSPECT_WAIT": 0.2}
    )
    yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(10)])
    assert len(crawler.spider.responses) == 10
    assert crawler.stats.get_value("scheduler/unserializable") is None
    assert crawler.stats.get_value("scheduler/enqueued/disk") >= 10 + stats(crawler)["rotations/count"]
    for response in crawler.spider.responses:
        pickle.dumps(response.request.to_dict(spider=crawler.spider))
