"""The whole catalogue, with the pool as ``settings.py`` configures it."""

from __future__ import annotations

import scrapy

from shop.items import Product


class CatalogueSpider(scrapy.Spider):
    """``scrapy crawl catalogue -a site=http://127.0.0.1:PORT``"""

    name = "catalogue"
    #: Priority of the listing pages (the categories and their next pages) over the items they list.
    listing_priority = 0

    def __init__(self, site: str = "http://127.0.0.1:8000", **kwargs):
        super().__init__(**kwargs)
        self.site = site.rstrip("/")

    async def start(self):
        yield scrapy.Request(f"{self.site}/", callback=self.parse)

    def parse(self, response):
        yield from response.follow_all(css="a.category", callback=self.parse_category, priority=self.listing_priority)

    def parse_category(self, response):
        yield from response.follow_all(css="a.item", callback=self.parse_item)
        yield from response.follow_all(css="a.next", callback=self.parse_category, priority=self.listing_priority)

    def parse_item(self, response):
        name = response.css("h1.name::text").get()
        if name is None:  # not a product page: nothing to take
            return
        yield Product(
            number=int(response.url.rsplit("/", 1)[1]),
            name=name,
            price=float(response.css("span.price::text").get()),
            sku=response.css("span.sku::text").get(),
            url=response.url,
        )
