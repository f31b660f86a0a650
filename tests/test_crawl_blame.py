"""Real crawls through real local proxies over representative cells of the block matrix: every item
is fetched, no session the site never banned is retired for a block, no block or challenge page
reaches the spider (the whole matrix runs simulated in test_blame_matrix, and for real in
``make bench-blocks``)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from scrapy import signals

from scrapy_sessionpool import get_pool
from scrapy_sessionpool.core.cookies import jar_cookies
from scrapy_sessionpool.manager import PoolManager
from tests.crawling import BASE_SETTINGS, make_crawler, stats
from tests.support.blocking import BAN_TEXT, CHALLENGE_TEXT
from tests.support.blocksite import BlockSite, CatalogueSpider

ITEMS = 200
#: Block reasons that are not a judgement of the session's guilt.
WEAR = ("max_usage_count", "expired", "error_score", "new_session_refused")


def _sid(session: Any) -> str | None:
    return next((c.value for c in jar_cookies(session.cookie_jar) if c.name == "sid"), None)


@pytest.fixture
def retired(monkeypatch) -> list[tuple[str | None, str]]:
    """(the site's sid cookie, reason) of every session the pool retires."""
    seen: list[tuple[str | None, str]] = []
    original = PoolManager.session_retired

    def record(self: PoolManager, session: Any) -> None:
        seen.append((_sid(session), session.retired_reason or "unknown"))
        original(self, session)

    monkeypatch.setattr(PoolManager, "session_retired", record)
    return seen


def crawl_settings(proxies: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        **BASE_SETTINGS,
        "RETRY_ENABLED": True,  # the site fails some pages once with 500: Scrapy's retries take those
        "SESSIONPOOL_PROXIES": [p.url for p in proxies],
        "SESSIONPOOL_BAN_PATTERNS": [BAN_TEXT],
        "SESSIONPOOL_CHALLENGE_PATTERNS": [CHALLENGE_TEXT],
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def run(site: BlockSite, settings: dict[str, Any]):
    crawler = make_crawler(CatalogueSpider, settings, base=None)
    errors: list[str] = []
    crawler.signals.connect(
        lambda failure, response, spider: errors.append(str(failure.value)), signal=signals.spider_error, weak=False
    )
    return crawler, errors


def innocents(site: BlockSite, retired: list[tuple[str | None, str]]) -> list[tuple[str | None, str]]:
    """Sessions retired for a block that worked (a good answer) and that the site never banned."""
    worked = {hit.sid for hit in site.hits if hit.status == 200 and not hit.blocked and not hit.challenge}
    sessions = site.model._sessions
    return [
        (sid, reason)
        for sid, reason in retired
        if reason not in WEAR and sid in worked and sid in sessions and not sessions[sid].banned
    ]


CELLS = [
    # the issue's site: a per-cookie limiter that answers banned sessions with 429 + Retry-After for ever
    ("session/budget/429_retry_after", 4, {"budget": (5, 15), "retry_after": 1}),
    # sessions banned with a plain 403; an exit throttled with a 403 too; the site as a whole with 503s
    ("session/budget/403", 4, {"budget": (5, 15)}),
    ("exit/ip_rate/403", 4, {"ip_rate": 20.0}),
    ("site/site_rate/503", 0, {"site_rate": 40.0}),
    # a redirect to a captcha page; a dropped connection; an IP that gets a bad name
    ("session/budget/redirect", 4, {"budget": (5, 15)}),
    ("exit/ip_reputation/drop", 4, {"budget": (5, 15), "reputation": 2, "ip_rate": 1000.0}),
    ("exit/new_sessions/ban_page", 4, {"new_session_cap": 2}),
]


@pytest.mark.parametrize(("cell", "proxies", "options"), CELLS, ids=[c[0] for c in CELLS])
@pytest_twisted.inlineCallbacks
def test_a_crawl_gets_every_item_and_retires_only_the_guilty(cell, proxies, options, make_proxies, retired):
    with BlockSite(cell, items=ITEMS, seed=3, **options) as site:
        exits = make_proxies(proxies)
        # suspects sit out 1 s (not 5): a short crawl still sees them tested
        crawler, errors = run(site, crawl_settings(exits, CLOSESPIDER_TIMEOUT=120, SESSIONPOOL_SUSPECT_WAIT=1))
        yield crawler.crawl(site=site.url)
    got = len(crawler.spider.items)
    assert got >= 0.99 * ITEMS, (got, stats(crawler), site.model.summary())
    assert not errors  # no block or challenge page reached a callback
    assert not innocents(site, retired), (innocents(site, retired), stats(crawler))
    assert site.model.counts["blocks"], "the cell's trigger never fired"
    banned = {sid for sid, s in site.model._sessions.items() if s.banned}
    kept = [s for s in get_pool(crawler) if _sid(s) in banned and not s.is_suspect]
    assert not kept  # a banned session is retired, or kept aside as a suspect: never handed out as clean
    if cell.startswith("session/"):  # suspected, then retired once blocked again after its wait
        assert stats(crawler).get("blame/pending", 0) >= 1
        # at most one block per strike (SESSIONPOOL_SUSPECT_WAIT doubling up to five strikes), plus the
        # requests already on their way when a ban began: a loose bound (a pool that never retires makes
        # hundreds here); the exact figures are make bench-blocks's
        in_flight = crawler.settings.getint("CONCURRENT_REQUESTS")
        bound = 5 * site.model.counts["session_bans"] + 2 * in_flight
        assert site.model.counts["blocks"] <= bound, site.model.summary()
    else:  # an exit or the site throttles: its sessions are kept (the innocents check above)
        assert stats(crawler).get("blame/exit", 0) + stats(crawler).get("blame/site", 0) >= 1


@pytest_twisted.inlineCallbacks
def test_the_issues_site_a_per_cookie_limiter_that_never_forgives(make_proxies, retired):
    """429 + Retry-After on every request of a banned cookie, for ever: its sessions are retired
    once blocked again after the wait, no exit is slowed for them, every item is fetched."""
    with BlockSite(
        "session/budget/429_retry_after", items=600, seed=5, budget=(10, 30), retry_after=1, challenge=False
    ) as site:
        crawler, errors = run(site, crawl_settings(make_proxies(8)))  # as the issue tried it: 8 proxies, defaults
        yield crawler.crawl(site=site.url)
    s = stats(crawler)
    assert len(crawler.spider.items) == 600 and not errors
    bans = site.model.counts["session_bans"]
    # retired once blocked again after the wait, or still sitting out as suspects when the crawl ended
    sitting_out = sum(1 for session in get_pool(crawler) if session.is_suspect)
    assert bans >= 5 and s["blame/session"] + sitting_out >= bans // 2, (s, sitting_out, site.model.summary())
    assert s.get("blame/exit", 0) + s.get("blame/site", 0) <= max(2, bans // 5)  # coincidences, rarely
    assert not innocents(site, retired)
    # items, pages, a few per ban, server errors and what is in flight (a sanity bound: bench-blocks measures it)
    assert site.model.counts["requests"] <= 600 + 6 + 4 * bans + 16, site.model.summary()


@pytest_twisted.inlineCallbacks
def test_the_interstitial_on_the_first_page_is_passed_with_the_same_session(make_proxies, retired):
    with BlockSite("session/budget/403", items=20, seed=1, budget=(1000, 1000)) as site:
        crawler, errors = run(site, crawl_settings(make_proxies(2)))
        yield crawler.crawl(site=site.url)
    assert len(crawler.spider.items) == 20 and not errors
    home = [hit for hit in site.hits if hit.path == "/"]
    # the refetch went with the cookies the challenge set (its pass and its session), through the same exit
    assert home[0].challenge and not home[1].challenge and home[1].sid and home[0].exit == home[1].exit
    assert stats(crawler)["challenges"] >= 1 and not retired


@pytest_twisted.inlineCallbacks
def test_a_challenge_that_never_lets_a_session_through_counts_as_a_block(make_proxies):
    with BlockSite("session/budget/403", items=5, seed=1) as site:
        site.model._passes = _Never()  # the pass cookie it sets is never accepted
        crawler, errors = run(
            site,
            crawl_settings(make_proxies(1), SESSIONPOOL_MAX_SESSION_ROTATIONS=2, SESSIONPOOL_MAX_CHALLENGE_REFETCHES=2),
        )
        yield crawler.crawl(site=site.url)
    assert not crawler.spider.items and not errors  # the challenge page never reaches the callback
    s = stats(crawler)
    assert s["challenges"] >= 2 and s["rotations_exhausted"] == 1


class _Never(set):
    def __contains__(self, item: object) -> bool:
        return False
