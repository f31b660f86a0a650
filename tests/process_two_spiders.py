"""Run by test_crawl_settings: two spiders with their own custom_settings in one CrawlerProcess."""

import json
import sys

import scrapy
from scrapy.crawler import CrawlerProcess

from scrapy_sessionpool import get_pool

SITE = sys.argv[1]
RESULT = {}


class Base(scrapy.Spider):
    async def start(self):
        for i in range(12):
            yield scrapy.Request(f"{SITE}/echo?{self.name}-{i}", dont_filter=True)

    def parse(self, response):
        RESULT.setdefault(self.name, {"agents": set()})["agents"].add(json.loads(response.text)["user_agent"])

    def closed(self, reason):
        pool = get_pool(self)
        RESULT[self.name].update(
            pool_size=pool.max_pool_size,
            pool=id(pool),
            live=pool.usable_sessions_count,
            max_usage=next(iter(pool)).max_usage_count,
        )


class Alpha(Base):
    name = "alpha"
    custom_settings = {"SESSIONPOOL_MAX_POOL_SIZE": 2, "SESSIONPOOL_USER_AGENTS": ["alpha-agent"]}


class Beta(Base):
    name = "beta"
    custom_settings = {
        "SESSIONPOOL_MAX_POOL_SIZE": 5,
        "SESSIONPOOL_MAX_USAGE_COUNT": 7,
        "SESSIONPOOL_USER_AGENTS": ["beta-agent"],
    }


process = CrawlerProcess(
    {"ADDONS": {"scrapy_sessionpool.Addon": 300}, "LOG_LEVEL": "WARNING", "TELNETCONSOLE_ENABLED": False}
)
process.crawl(Alpha)
process.crawl(Beta)
process.start()
print(json.dumps({k: {**v, "agents": sorted(v["agents"])} for k, v in RESULT.items()}))
