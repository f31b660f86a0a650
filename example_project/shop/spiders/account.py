"""One category, browsed the way a signed-in customer would: a warm-up visit per session, then
follow-up pages pinned to that session. Overrides the pool through ``custom_settings``."""

from __future__ import annotations

import time

import scrapy

from scrapy_sessionpool import get_session
from shop.spiders.catalogue import CatalogueSpider


class AccountSpider(CatalogueSpider):
    """``scrapy crawl account -a site=http://127.0.0.1:PORT -a category=garden``"""

    name = "account"
    custom_settings = {
        "SESSIONPOOL_POOLS": {"account": {"max_pool_size": 4, "max_usage_count": 40}},
        "SESSIONPOOL_BAN_PATTERNS": [r"Please complete the captcha", r"Are you human\?"],
        "SESSIONPOOL_MAX_SESSION_ROTATIONS": 5,
    }
    meta = {"sessionpool_pool": "account"}

    def __init__(self, category: str = "garden", **kwargs):
        super().__init__(**kwargs)
        self.category = category

    async def start(self):
        # The warm-up: the home page gives the session its cookie; we note it in user_data.
        yield scrapy.Request(f"{self.site}/", callback=self.warmed_up, meta=dict(self.meta))

    def warmed_up(self, response):
        session = get_session(response, self)
        session.user_data.setdefault("warmed_up_at", time.time())
        session.user_data["categories"] = response.css("a.category::attr(href)").getall()
        pinned = {**self.meta, "sessionpool_session_id": session.id}
        yield response.follow(f"/category/{self.category}", callback=self.parse_category, meta=pinned)

    def parse_category(self, response):
        # Follow-ups stay on the session that fetched this page (retries too, until it is retired).
        pinned = {**self.meta, "sessionpool_session_id": response.meta["sessionpool_session_id"]}
        yield from response.follow_all(css="a.item", callback=self.parse_item, meta=pinned)
        yield from response.follow_all(css="a.next", callback=self.parse_category, meta=pinned)
