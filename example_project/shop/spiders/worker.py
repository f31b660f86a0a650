"""The catalogue crawled by several scrapy-redis workers that share their queue and their session pool.

Start any number of these, on any hosts, with the same ``REDIS_URL``, then push the start URL::

    scrapy crawl catalogue_worker -s REDIS_URL=redis://redis-host:6379/0
    redis-cli -u redis://redis-host:6379/0 rpush catalogue_worker:start_urls http://shop/

``run_workers.py`` does this for two local workers against the demo shop. Without scrapy-redis
installed this spider is not offered.
"""

from __future__ import annotations

import scrapy

from shop.spiders.catalogue import CatalogueSpider

try:
    from scrapy_redis.spiders import RedisMixin
except ImportError:  # pragma: no cover - scrapy-redis is optional
    RedisMixin = None

#: What scrapy-redis and the pool need to share one crawl between workers.
SHARED_CRAWL_SETTINGS = {
    # scrapy-redis: the request queue and the dupefilter live in Redis, and outlive each worker
    "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
    "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
    "SCHEDULER_PERSIST": True,
    # a worker closes after 10 s with nothing to do (more than the 5 s at which an idle Scrapy engine
    # looks for work again, or a worker starting before the crawl is fed would close at once)
    "MAX_IDLE_TIME_BEFORE_CLOSE": 10,
    # the pool: one live pool in the same Redis (REDIS_URL, or REDIS_HOST/REDIS_PORT, plus REDIS_PARAMS)
    "SESSIONPOOL_PERSIST_STATE_STORE": "redis",
    "SESSIONPOOL_REDIS_LEASE_TTL": 15,  # a worker that dies holds its sessions 15 s at most
}

if RedisMixin is not None:

    class CatalogueWorker(RedisMixin, CatalogueSpider):
        """``scrapy crawl catalogue_worker``: takes its start URLs from ``catalogue_worker:start_urls``."""

        name = "catalogue_worker"
        custom_settings = SHARED_CRAWL_SETTINGS
        # the workers share one queue: listing pages go first, so that it always holds items for all of them
        listing_priority = 1

        @classmethod
        def from_crawler(cls, crawler, *args, **kwargs):
            spider = super().from_crawler(crawler, *args, **kwargs)
            spider.setup_redis(crawler)
            return spider

        async def start(self):
            for request in self.start_requests():  # the start URLs waiting in Redis
                yield request

        def make_request_from_data(self, data):
            return scrapy.Request(data.decode(), callback=self.parse)
