"""Full crawls of a site behind a login: each session logs in with its own account before it serves a request."""

from __future__ import annotations

import json
import logging
import time

import pytest
import pytest_twisted
import scrapy
from form2request import form2request
from scrapy import Request

from tests.crawling import make_crawler, stats
from tests.support.login_site import LoginSite

ACCOUNTS = {f"user{i}": f"secret-{i}-pw" for i in range(4)}
LOGGED_IN = b'class="who"'


class MemberSpider(scrapy.Spider):
    """Fetches every member page; its sessions log in through ``init_session``."""

    name = "members"

    def __init__(self, site: LoginSite, pages: int, **kwargs):
        super().__init__(**kwargs)
        self.site = site
        self.pages = pages
        self.seen: dict[int, str] = {}
        self.inits: list[str] = []
        self.failures: list = []

    async def start(self):
        for n in range(self.pages):
            yield Request(self.site.url(f"/members/{n}"), cb_kwargs={"n": n}, errback=self.failures.append)

    async def init_session(self, init):
        self.inits.append(init.session.id)
        form = await init.fetch(Request(self.site.url("/login"), dont_filter=True))
        if form.status != 200 or b'id="login"' not in form.body:
            return False
        account = init.account
        login = form2request(form.css("form#login"), {"username": account["username"], "password": account["password"]})
        answer = await init.fetch(login.to_scrapy(callback=None, dont_filter=True))
        return LOGGED_IN in answer.body

    def check_session(self, response, request):
        """Still logged in? The site sends a logged-out member page to /login."""
        location = response.headers.get(b"Location", b"")
        return not (300 <= response.status < 400 and b"/login" in location)

    def parse(self, response, n):
        assert LOGGED_IN in response.body, response.url
        self.seen[n] = response.css("p.who::text").get()


def accounts(names=ACCOUNTS):
    return [{"username": u, "password": p} for u, p in names.items()]


def crawl_settings(**extra):
    return {
        "SESSIONPOOL_ACCOUNTS": accounts(),
        "SESSIONPOOL_MAX_POOL_SIZE": 10,
        "CONCURRENT_REQUESTS": 8,
        "SESSIONPOOL_SUSPECT_WAIT": 0.2,
        **extra,
    }


@pytest_twisted.inlineCallbacks
def test_each_session_logs_in_with_its_own_account_before_any_request(caplog):
    caplog.set_level(logging.DEBUG)
    with LoginSite(ACCOUNTS, pages=40) as site:
        crawler = make_crawler(MemberSpider, crawl_settings())
        yield crawler.crawl(site=site, pages=40)
        spider = crawler.spider
        assert sorted(spider.seen) == list(range(40))
        assert site.requests_before_login() == []
        assert site.kicks() == []
        logins = site.logins()
        assert len(logins) == len(ACCOUNTS)  # the pool is never larger than the accounts
        assert {hit.username for hit in logins} == set(ACCOUNTS)
        assert set(spider.seen.values()) <= set(ACCOUNTS)
        got = stats(crawler)
        assert got["init/succeeded"] == len(ACCOUNTS)
        assert "init/failed" not in got
    for secret in ACCOUNTS.values():
        assert secret not in caplog.text
        assert secret not in json.dumps(crawler.stats.get_stats(), default=str)


#: Hidden page counts after which each account is banned: apart, so that the judge sees one session
#: blocked while the others fare well (at once, it would blame the site).
BAN_AFTER = {"user0": 3, "user1": 6, "user2": 9, "user3": 12}


@pytest.mark.parametrize("signal", ["403", "captcha", "login_redirect"])
@pytest_twisted.inlineCallbacks
def test_banned_accounts_rest_then_log_in_again_and_every_page_comes(signal, caplog):
    """Accounts are banned after a hidden number of pages, by a signal the ban policy knows or by a
    silent log-out (which the spider's check sees); the site forgives after a while. Their sessions
    retire, the accounts rest, and a rested account logs in again."""
    settings = crawl_settings(
        SESSIONPOOL_ACCOUNT_REST_SECS=1.0,
        SESSIONPOOL_ACCOUNT_MAX_BLOCKS=3,
        SESSIONPOOL_BAN_PATTERNS=["captcha"],
        SESSIONPOOL_SUSPECT_WAIT=0.1,
        CONCURRENT_REQUESTS=2,
    )
    # 30 pages before every account is banned: the rest come from accounts back from their rest
    with LoginSite(ACCOUNTS, pages=60, ban_after=BAN_AFTER, ban_signal=signal, ban_secs=1.0) as site:
        crawler = make_crawler(MemberSpider, settings)
        yield crawler.crawl(site=site, pages=60)
        spider = crawler.spider
        got = stats(crawler)
        print(got, [(h.username, h.time) for h in site.logins()], site.bans())
        assert sorted(spider.seen) == list(range(60)), got
        assert site.requests_before_login() == []
        assert [h for h in site.hits if h.event == "kicked"] == []  # a new login only logs out a retired session
        assert got["accounts/rests"] >= 1
        assert len(site.logins()) <= len(ACCOUNTS) * (got["accounts/rests"] + 1)
    for secret in ACCOUNTS.values():
        assert secret not in caplog.text


@pytest_twisted.inlineCallbacks
def test_accounts_banned_for_good_retire_while_a_good_one_finishes_the_crawl(caplog):
    """Bans for good: a banned account rests, logs in again (the site refuses it) and retires at the
    second block; the crawl goes on with the account the site never bans."""
    # short waits and enough pages: a fast local crawl must not end before the banned accounts'
    # second blocks (each takes a suspect wait, a rest and a login)
    settings = crawl_settings(
        SESSIONPOOL_ACCOUNT_REST_SECS=0.05,
        SESSIONPOOL_ACCOUNT_MAX_BLOCKS=2,
        SESSIONPOOL_SUSPECT_WAIT=0.02,
        CONCURRENT_REQUESTS=2,
    )
    with LoginSite(ACCOUNTS, pages=200, ban_after={**BAN_AFTER, "user3": 10**6}) as site:
        crawler = make_crawler(MemberSpider, settings)
        yield crawler.crawl(site=site, pages=200)
        got = stats(crawler)
        assert sorted(crawler.spider.seen) == list(range(200)), got
        assert got.get("accounts/retired") == 3, str(got)
        assert got["accounts/usable"] == 1
        assert len(site.logins()) <= 3 * 2 + 1
        assert site.requests_before_login() == []
    assert "Account 'user0' is retired" in caplog.text


@pytest_twisted.inlineCallbacks
def test_the_crawl_ends_when_every_account_is_retired(caplog):
    wrong = dict.fromkeys(ACCOUNTS, "not-the-password")
    settings = crawl_settings(
        SESSIONPOOL_ACCOUNTS=accounts(wrong),
        SESSIONPOOL_MAX_BAD_INITS=100,
        SESSIONPOOL_ACCOUNT_REST_SECS=0.05,
        SESSIONPOOL_ACCOUNT_MAX_BLOCKS=2,
    )
    with LoginSite(ACCOUNTS, pages=10) as site:
        crawler = make_crawler(MemberSpider, settings)
        yield crawler.crawl(site=site, pages=10)
        got = stats(crawler)
        assert crawler.stats.get_value("finish_reason") == "accounts_exhausted", got
        assert got["init/failed"] == 2 * len(ACCOUNTS)
        assert got["accounts/retired"] == len(ACCOUNTS)
        assert site.pages_served() == set()
    assert "Every account of pool default is retired" in caplog.text


@pytest_twisted.inlineCallbacks
def test_wrong_passwords_stop_the_spider_after_max_bad_inits(caplog):
    wrong = dict.fromkeys(ACCOUNTS, "not-the-password")
    settings = crawl_settings(
        SESSIONPOOL_ACCOUNTS=accounts(wrong),
        SESSIONPOOL_MAX_BAD_INITS=3,
        SESSIONPOOL_ACCOUNT_REST_SECS=0,
        SESSIONPOOL_ACCOUNT_MAX_BLOCKS=100,
    )
    with LoginSite(ACCOUNTS, pages=10) as site:
        crawler = make_crawler(MemberSpider, settings)
        yield crawler.crawl(site=site, pages=10)
        assert crawler.stats.get_value("finish_reason") == "bad_session_inits"
        assert site.pages_served() == set()
        assert site.requests_before_login() == []
        got = stats(crawler)
        assert got["init/failed"] >= 3
        assert got.get("retired/init_failed", 0) >= 3
    assert "SESSIONPOOL_MAX_BAD_INITS" in caplog.text
    assert "not-the-password" not in caplog.text


class PagesSpider(MemberSpider):
    """Member pages with a class hook (no init_session of its own)."""

    name = "pages"
    init_session = None
    check_session = None

    def __init__(self, site, pages, **kwargs):
        super().__init__(site, 0, **kwargs)
        self.page_numbers = list(pages)

    async def start(self):
        for n in self.page_numbers:
            yield Request(self.site.url(f"/members/{n}"), cb_kwargs={"n": n}, errback=self.failures.append)


class ConsentAndLogin:
    """The init as a class (``SESSIONPOOL_SESSION_INIT``): accept the consent page, then log in."""

    def __init__(self, crawler):
        self.site = crawler.spider.site

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def init(self, init):
        page = await init.fetch(Request(self.site.url("/login"), dont_filter=True))
        if page.css("form#consent"):  # the site wants consent first: accept it, back to the login form
            consent = form2request(page.css("form#consent"), {"consent": "yes"})
            page = await init.fetch(consent.to_scrapy(callback=None, dont_filter=True))
        account = init.account
        login = form2request(page.css("form#login"), {"username": account["username"], "password": account["password"]})
        await init.fetch(login.to_scrapy(callback=None, dont_filter=True))
        # None: check() decides on the last answer

    def check(self, response, request):
        if response.url.endswith(("/login", "/consent")) or "/login?" in response.url:
            return False
        return LOGGED_IN in response.body or response.url.rsplit("/", 2)[-2] != "members"


@pytest_twisted.inlineCallbacks
def test_a_class_hook_passes_a_consent_page_and_a_second_run_logs_in_no_one_again(tmp_path):
    """Run 1: each session accepts consent and logs in; user0 is banned and rests. Run 2 (same store,
    same site): the restored sessions serve at once, and user0 still rests: not one login."""
    settings = crawl_settings(
        SESSIONPOOL_SESSION_INIT=ConsentAndLogin,
        SESSIONPOOL_PERSIST_STATE=True,
        SESSIONPOOL_PERSIST_STATE_STORE=str(tmp_path),
        # user0's session must be tested again (and found guilty) before the 70 pages are done: a
        # fast local crawl ends within 0.1 s of its first block now and then
        SESSIONPOOL_SUSPECT_WAIT=0.01,
        CONCURRENT_REQUESTS=2,
    )
    with LoginSite(ACCOUNTS, pages=100, consent=True, ban_after={"user0": 3}) as site:
        first = make_crawler(PagesSpider, settings)
        yield first.crawl(site=site, pages=range(70))
        assert sorted(first.spider.seen) == list(range(70)), stats(first)
        assert {hit.username for hit in site.logins()} == set(ACCOUNTS)
        assert stats(first).get("accounts/rests") == 1, str(stats(first))
        assert any(hit.event == "consent" for hit in site.hits)
        logins = len(site.logins())

        second = make_crawler(PagesSpider, settings)
        yield second.crawl(site=site, pages=range(70, 100))
        got = stats(second)
        assert sorted(second.spider.seen) == list(range(70, 100)), got
        assert len(site.logins()) == logins  # nobody logged in again
        assert "init/started" not in got
        assert got["restored"] == len(ACCOUNTS) - 1
        assert "user0" not in set(second.spider.seen.values())  # it still rests
        assert site.requests_before_login() == []
    state = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert state["accounts"]["user0"]["blocks"] == 1
    assert all(s["initialized"] for s in state["sessions"])
    assert not any(secret in json.dumps(state) for secret in ACCOUNTS.values())


class StuckSpider(MemberSpider):
    """Its init never ends (a login page that never comes, say)."""

    name = "stuck"

    async def init_session(self, init):
        from scrapy.utils.defer import maybe_deferred_to_future
        from twisted.internet.defer import Deferred

        await maybe_deferred_to_future(Deferred())


@pytest_twisted.inlineCallbacks
def test_a_crawl_closes_promptly_while_requests_wait_for_an_init_that_never_ends():
    with LoginSite(ACCOUNTS, pages=5) as site:
        crawler = make_crawler(StuckSpider, crawl_settings(CLOSESPIDER_TIMEOUT=1))
        started = time.monotonic()
        yield crawler.crawl(site=site, pages=5)
        assert time.monotonic() - started < 5
        assert crawler.stats.get_value("finish_reason") == "closespider_timeout"
        got = stats(crawler)
        assert got["waits/closed"] == 5
        assert "init/failed" not in got  # not counted against the site
        assert site.pages_served() == set()


class AlwaysOutSpider(MemberSpider):
    """Its init says ready, but its check never passes (a check that does not fit the site)."""

    name = "always_out"

    def check_session(self, response, request):
        return False


@pytest_twisted.inlineCallbacks
def test_a_check_that_never_passes_counts_as_bad_inits_and_stops_the_spider():
    settings = crawl_settings(SESSIONPOOL_MAX_BAD_INITS=3, SESSIONPOOL_ACCOUNT_REST_SECS=0)
    with LoginSite(ACCOUNTS, pages=10) as site:
        crawler = make_crawler(AlwaysOutSpider, settings)
        yield crawler.crawl(site=site, pages=10)
        got = stats(crawler)
        assert crawler.stats.get_value("finish_reason") == "bad_session_inits", got
        assert got["init/started"] <= 3 + 4  # not a re-init per request
        assert got["retired/init_failed"] >= 3
