"""Run by test_crawl_distributed: one scrapy-redis worker of several sharing a queue and a pool.

    python process_scrapy_redis_worker.py SITE REDIS_URL WORKER OUT_FILE [SETTINGS_JSON]

It takes listing URLs from Redis (``workers:start_urls``), follows their item links through
scrapy-redis's scheduler and dupefilter, writes one JSON line per item to OUT_FILE and, when
it closes, a line ``stats {...}`` on stdout.
"""

import json
import sys

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy_redis.spiders import RedisSpider

SITE, REDIS, WORKER, OUT = sys.argv[1:5]
EXTRA = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}


class Workers(RedisSpider):
    name = "workers"

    def make_request_from_data(self, data):
        return scrapy.Request(data.decode(), callback=self.parse)

    def parse(self, response):
        yield from response.follow_all(css="a.item", callback=self.parse_item)
        yield from response.follow_all(css="a.list", callback=self.parse)

    def parse_item(self, response):
        yield {"n": int(response.css("p.item::text").get()), "worker": WORKER}


settings = {
    "ADDONS": {"scrapy_sessionpool.Addon": 300},
    "LOG_LEVEL": "INFO",
    "TELNETCONSOLE_ENABLED": False,
    "REMOTE_CONTROL_ENABLED": False,
    "ROBOTSTXT_OBEY": False,
    "RETRY_ENABLED": False,
    # scrapy-redis: the queue and the dupefilter in Redis, kept when a worker closes
    "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
    "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
    "SCHEDULER_PERSIST": True,
    "REDIS_URL": REDIS,
    "MAX_IDLE_TIME_BEFORE_CLOSE": 6,  # more than the 5 s between the looks of an idle engine for work
    # the pool in the same Redis, connected as scrapy-redis connects
    "SESSIONPOOL_PERSIST_STATE_STORE": "redis",
    "SESSIONPOOL_MAX_POOL_SIZE": 4,
    "CONCURRENT_REQUESTS": 4,
    "DEFAULT_REQUEST_HEADERS": {"X-Worker": WORKER},
    "FEEDS": {OUT: {"format": "jsonlines"}},
    **EXTRA,
}
process = CrawlerProcess(settings)
crawler = process.create_crawler(Workers)
process.crawl(crawler)
process.start()
stats = {k: v for k, v in crawler.stats.get_stats().items() if k.startswith(("sessionpool/", "item_scraped"))}
print("stats " + json.dumps(stats), flush=True)
