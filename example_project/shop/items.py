"""What the spiders scrape: a dataclass, which itemadapter (and so Scrapy's feeds) handles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Product:
    number: int
    name: str
    price: float
    sku: str
    url: str
    member_price: float | None = None  #: what a signed-in customer pays (the account spider)
