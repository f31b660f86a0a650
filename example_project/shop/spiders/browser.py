"""The whole catalogue of a shop behind a JavaScript challenge: a session that meets the challenge passes
it once in its own headless browser (scrapy-playwright), then crawls over plain HTTP with the cookie it
earned, through the same proxy and with the same User-Agent. Needs ``pip install
'scrapy-sessionpool[browser]'`` and Chromium (Debian's ``chromium`` package)."""

from __future__ import annotations

import shutil

from shop.spiders.catalogue import CatalogueSpider

PLAYWRIGHT = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"


class BrowserSpider(CatalogueSpider):
    """``scrapy crawl browser -a site=http://127.0.0.1:PORT``"""

    name = "browser"
    custom_settings = {
        "DOWNLOAD_HANDLERS": {"http": PLAYWRIGHT, "https": PLAYWRIGHT},
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": shutil.which("chromium") or "/usr/bin/chromium"},
        "SESSIONPOOL_CHALLENGE_PATTERNS": [r"Just a moment\.\.\."],
        "SESSIONPOOL_BROWSER_ESCALATION": True,
        "SESSIONPOOL_MAX_CHALLENGE_REFETCHES": 0,  # no use fetching a JavaScript challenge again over HTTP
    }
