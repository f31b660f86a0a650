"""Run by test_storage_redis: one crawler process of several that share a Redis pool."""

import json
import sys

import scrapy
from scrapy.crawler import CrawlerProcess

SITE, REDIS, PREFIX, FIRST, COUNT = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])


class Shared(scrapy.Spider):
    name = "shared"

    async def start(self):
        for n in range(FIRST, FIRST + COUNT):
            yield scrapy.Request(f"{SITE}/items/{n}", dont_filter=True)

    def parse(self, response):
        pass


process = CrawlerProcess(
    {
        "ADDONS": {"scrapy_sessionpool.Addon": 300},
        "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
        "SESSIONPOOL_PERSIST_STATE_STORE": REDIS,
        "SESSIONPOOL_REDIS_PREFIX": PREFIX,
        "SESSIONPOOL_MAX_POOL_SIZE": 3,
        "CONCURRENT_REQUESTS": 4,
        "DOWNLOAD_DELAY": 0.01,
    }
)
crawler = process.create_crawler(Shared)
process.crawl(crawler)
process.start()
print(
    json.dumps(
        {
            k.removeprefix("sessionpool/"): v
            for k, v in crawler.stats.get_stats().items()
            if k.startswith("sessionpool/") or k == "response_received_count"
        },
        default=str,
    )
)
