"""Run by test_crawl_closing: a crawler process whose requests end up waiting (a blocked exit);
prints "waiting" once it was blocked and a request waits, then, after the signal the test sends, its close
reason and stats."""

import json
import sys

from scrapy import signals
from scrapy.crawler import CrawlerProcess

SITE, PROXY, STORE, EXTRA = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])

process = CrawlerProcess(
    {
        "ADDONS": {"scrapy_sessionpool.Addon": 300},
        "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "SESSIONPOOL_PROXIES": [PROXY] if PROXY else [],
        "SESSIONPOOL_PERSIST_STATE_STORE": STORE,
        **EXTRA,
    }
)
from tests.support.blocksite import CatalogueSpider  # noqa: E402

crawler = process.create_crawler(CatalogueSpider)
closed = {}
crawler.signals.connect(lambda spider, reason: closed.update(reason=reason), signal=signals.spider_closed, weak=False)


def report_waiting():
    get = crawler.stats.get_value if crawler.stats else lambda key: None
    if get("sessionpool/blocks") and get("sessionpool/waits"):  # blocked for good now: whatever comes waits
        print("waiting", flush=True)
        watch["loop"].stop()


def engine_started():
    from twisted.internet import task  # not before: it would install a reactor other than Scrapy's

    watch["loop"] = task.LoopingCall(report_waiting)
    watch["loop"].start(0.1)


watch = {}
crawler.signals.connect(engine_started, signal=signals.engine_started)
process.crawl(crawler, site=SITE)
process.start()
print(
    json.dumps(
        {
            "reason": closed.get("reason"),
            "stats": {
                k.removeprefix("sessionpool/"): v
                for k, v in crawler.stats.get_stats().items()
                if k.startswith("sessionpool/")
            },
        },
        default=str,
    )
)
