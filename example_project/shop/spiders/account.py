"""One category, browsed by signed-in customers: each session of the pool signs in with an account of its
own (``init_session``) before it fetches a page, and gets member prices. Overrides the pool through
``custom_settings``; the accounts come from ``SESSIONPOOL_ACCOUNTS`` (the demo passes a JSON-lines file)."""

from __future__ import annotations

import time

import scrapy
from form2request import form2request

from shop.spiders.catalogue import CatalogueSpider


class AccountSpider(CatalogueSpider):
    """``scrapy crawl account -a site=http://127.0.0.1:PORT -a category=garden -s SESSIONPOOL_ACCOUNTS=a.jsonl``"""

    name = "account"
    custom_settings = {
        "SESSIONPOOL_POOLS": {"account": {"max_pool_size": 4, "max_usage_count": 40}},
        "SESSIONPOOL_BAN_PATTERNS": [r"Please complete the captcha", r"Are you human\?"],
        "SESSIONPOOL_MAX_SESSION_ROTATIONS": 5,
        "SESSIONPOOL_ACCOUNT_REST_SECS": 5,  # the shop blocks sessions, not accounts: a short rest will do
    }
    meta = {"sessionpool_pool": "account"}

    def __init__(self, category: str = "garden", **kwargs):
        super().__init__(**kwargs)
        self.category = category

    async def start(self):
        yield scrapy.Request(f"{self.site}/category/{self.category}", callback=self.parse_category, meta=self.meta)

    async def init_session(self, init):
        """A new session visits the home page, then signs in with its account; ready once signed in."""
        home = await init.fetch(scrapy.Request(f"{self.site}/", dont_filter=True))
        init.session.user_data["warmed_up_at"] = time.time()
        init.session.user_data["categories"] = home.css("a.category::attr(href)").getall()
        page = await init.fetch(scrapy.Request(f"{self.site}/login", dont_filter=True))
        fields = {"username": init.account["username"], "password": init.account["password"]}
        answer = await init.fetch(
            form2request(page.css("form#login"), fields).to_scrapy(callback=None, dont_filter=True)
        )
        return bool(answer.css("p.who"))

    def check_session(self, response, request):
        """Still signed in? An item page shows a signed-in session its member price."""
        return "/item/" not in response.url or response.status != 200 or bool(response.css("span.member-price"))

    def parse_category(self, response):
        yield from response.follow_all(css="a.item", callback=self.parse_item, meta=self.meta)
        yield from response.follow_all(css="a.next", callback=self.parse_category, meta=self.meta)

    def parse_item(self, response):
        for product in super().parse_item(response):
            product.member_price = float(response.css("span.member-price::text").get())
            yield product
