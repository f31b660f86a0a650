"""Login benchmark: a crawl behind a login with many accounts, each banned after a hidden number of pages.

Run: ``make bench-logins`` (or ``python benchmarks/bench_logins.py [--pages 300] [--accounts 8] [--seed 1]``).

The site (``tests.support.login_site.LoginSite``, on 127.0.0.1) has a csrf login form, one session
per account (a login logs the account's other session out), member pages for logged-in sessions
only, and bans an account after a hidden number of pages (drawn from ``--seed``) for ``--ban-secs``;
a banned account's pages and logins get ``--signal``. Crawled by:

* ``pool``: the session pool with ``SESSIONPOOL_ACCOUNTS`` (one session per account) and the spider's
  ``init_session`` (GET the form, POST it, check the answer);
* ``plain``: plain Scrapy as one would write it without the pool: each account logs in once in its
  own ``cookiejar`` and the pages are spread over the accounts (no re-login, no rest).

Printed side by side: member pages obtained, logins, the aim's bound (each account logs in at most
its blocks + 1 times: accounts + blocks in all),
sessions that sent a member request before their login finished (from the site's log), kicks
(a login that logged out a session still in use) and seconds.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COMMON = {
    "LOG_LEVEL": "ERROR",
    "TELNETCONSOLE_ENABLED": False,
    "REMOTE_CONTROL_ENABLED": False,
    "ROBOTSTXT_OBEY": False,
    "RETRY_ENABLED": False,
    "CONCURRENT_REQUESTS": 8,
    "COOKIES_DEBUG": False,
}


def spiders() -> tuple[type, type]:
    import scrapy
    from form2request import form2request

    def login_request(form: Any, account: dict[str, str], **kwargs: Any) -> Any:
        fields = {"username": account["username"], "password": account["password"]}
        return form2request(form.css("form#login"), fields).to_scrapy(dont_filter=True, **kwargs)

    class PoolSpider(scrapy.Spider):
        name = "pool"

        def __init__(self, site: Any, pages: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.site, self.pages, self.seen = site, pages, set()

        async def start(self):
            for n in range(self.pages):
                yield scrapy.Request(self.site.url(f"/members/{n}"), cb_kwargs={"n": n})

        async def init_session(self, init):
            form = await init.fetch(scrapy.Request(self.site.url("/login"), dont_filter=True))
            if not form.css("form#login"):
                return False
            answer = await init.fetch(login_request(form, dict(init.account), callback=None))
            return bool(answer.css("p.who"))

        def check_session(self, response, request):
            return not (300 <= response.status < 400 and b"/login" in response.headers.get(b"Location", b""))

        def parse(self, response, n):
            if response.css("p.who"):
                self.seen.add(n)

    class PlainSpider(PoolSpider):
        name = "plain"
        init_session = None
        check_session = None

        def __init__(self, accounts: list[dict[str, str]], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.accounts = accounts

        async def start(self):
            for jar, account in enumerate(self.accounts):
                yield scrapy.Request(
                    self.site.url("/login"),
                    callback=self.form,
                    meta={"cookiejar": jar},
                    cb_kwargs={"account": account},
                    dont_filter=True,
                )

        def form(self, response, account):
            jar = response.meta["cookiejar"]
            yield login_request(response, account, callback=self.logged_in, meta={"cookiejar": jar})

        def logged_in(self, response):
            jar = response.meta["cookiejar"]
            for n in range(jar, self.pages, len(self.accounts)):
                yield scrapy.Request(self.site.url(f"/members/{n}"), cb_kwargs={"n": n}, meta={"cookiejar": jar})

    return PoolSpider, PlainSpider


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from scrapy.crawler import CrawlerRunner
    from scrapy.utils.reactor import install_reactor

    install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")
    from twisted.internet import defer, reactor

    from tests.support.login_site import LoginSite

    rng = random.Random(args.seed)
    passwords = {f"user{i}": f"pw-{i}-{rng.randrange(10**6)}" for i in range(args.accounts)}
    ban_after = {name: rng.randint(args.ban_min, args.ban_max) for name in passwords}
    accounts = [{"username": u, "password": p} for u, p in passwords.items()]
    pool_spider, plain_spider = spiders()
    rows: list[dict[str, Any]] = []

    @defer.inlineCallbacks
    def crawl_all() -> Any:
        for mode in args.modes.split(","):
            site = LoginSite(
                passwords, pages=args.pages, ban_after=ban_after, ban_signal=args.signal, ban_secs=args.ban_secs
            ).start()
            try:
                if mode == "pool":
                    settings = {
                        **COMMON,
                        "ADDONS": {"scrapy_sessionpool.Addon": 300},
                        "SESSIONPOOL_PERSIST_STATE": False,
                        "SESSIONPOOL_ACCOUNTS": accounts,
                        "SESSIONPOOL_ACCOUNT_REST_SECS": args.ban_secs,
                        "SESSIONPOOL_ACCOUNT_MAX_BLOCKS": 5,
                        "SESSIONPOOL_BAN_PATTERNS": ["captcha"],
                        "SESSIONPOOL_SUSPECT_WAIT": 0.5,
                    }
                    crawler = CrawlerRunner(settings).create_crawler(pool_spider)
                    started = time.monotonic()
                    yield crawler.crawl(site=site, pages=args.pages)
                else:
                    crawler = CrawlerRunner(COMMON).create_crawler(plain_spider)
                    started = time.monotonic()
                    yield crawler.crawl(site=site, pages=args.pages, accounts=accounts)
                rows.append(_row(mode, crawler, site, args, time.monotonic() - started))
            finally:
                site.stop()
        reactor.stop()

    reactor.callWhenRunning(crawl_all)
    reactor.run()
    return rows


def _row(mode: str, crawler: Any, site: Any, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    stats = crawler.stats.get_stats()
    if mode == "pool" and args.verbose:
        print({k: v for k, v in stats.items() if k.startswith("sessionpool/") or k == "finish_reason"})
    blocks = stats.get("sessionpool/accounts/rests", 0) + stats.get("sessionpool/accounts/retired", 0)
    early = {hit.sid for hit in site.requests_before_login()}
    return {
        "mode": mode,
        "pages": f"{len(crawler.spider.seen)}/{args.pages}",
        "logins": len(site.logins()),
        "bound": f"{args.accounts + blocks}" if mode == "pool" else "-",
        "account blocks": blocks if mode == "pool" else "-",
        "early sessions": len(early),
        "kicks": sum(hit.event == "kicked" for hit in site.hits),
        "seconds": f"{seconds:.1f}",
        "finish reason": stats.get("finish_reason"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--accounts", type=int, default=8)
    parser.add_argument("--ban-min", type=int, default=15)
    parser.add_argument("--ban-max", type=int, default=45)
    parser.add_argument("--ban-secs", type=float, default=2.0)
    parser.add_argument("--signal", default="403", choices=("403", "429", "captcha", "login_redirect"))
    parser.add_argument("--modes", default="pool,plain")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="print the pool crawl's stats")
    args = parser.parse_args()
    rows = run(args)
    keys = list(rows[0])
    print(
        f"\n{args.pages} member pages, {args.accounts} accounts banned after {args.ban_min}-{args.ban_max} pages "
        f"for {args.ban_secs:g} s ({args.signal}); seed {args.seed}"
    )
    print("  ".join(f"{k:>14}" for k in keys))
    for row in rows:
        print("  ".join(f"{row[k]!s:>14}" for k in keys))
    print("\naim: pool gets every page with logins <= bound (the sum over accounts of blocks + 1) and 0 early sessions")


if __name__ == "__main__":
    main()
