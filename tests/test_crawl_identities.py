"""Full crawls with consistent identities: a header profile per session (browserforge) and, through
scrapy-impersonate's download handler, the TLS handshake of the same browser, over local HTTPS
through authenticated CONNECT proxies."""

from __future__ import annotations

import json
from collections import defaultdict
from importlib.util import find_spec

import pytest
import pytest_twisted
import scrapy

from scrapy_sessionpool.fingerprints import impersonate_target
from tests.crawling import make_crawler, stats
from tests.support.tls import HTTPSServer, TunnelProxy, make_certificate

curl = pytest.importorskip("curl_cffi.requests", reason="curl_cffi is not installed (the impersonate extra)")

pytestmark = pytest.mark.skipif(
    find_spec("browserforge") is None or find_spec("scrapy_impersonate") is None,
    reason="browserforge and scrapy-impersonate are not installed (the fingerprints and impersonate extras)",
)

IMPERSONATE = {
    "DOWNLOAD_HANDLERS": {
        "http": "scrapy_impersonate.ImpersonateDownloadHandler",
        "https": "scrapy_impersonate.ImpersonateDownloadHandler",
    },
}


class PagesSpider(scrapy.Spider):
    name = "pages"

    def __init__(self, urls, meta=None, **kwargs):
        super().__init__(**kwargs)
        self.urls, self.meta = urls, meta or {}
        self.responses = []

    async def start(self):
        for item in self.urls:
            url, headers = (item, None) if isinstance(item, str) else item
            yield scrapy.Request(url, headers=headers, meta=dict(self.meta), dont_filter=True)

    def parse(self, response):
        self.responses.append(response)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


def _by_session(received):
    """The requests the site got, by the sid cookie they sent (the first of each session sent none)."""
    sessions = defaultdict(list)
    for request in received:
        sessions[request.cookies.get("sid")].append(request)
    return sessions


@pytest.mark.parametrize("browser", ["chrome", "firefox", "safari"])
@pytest_twisted.inlineCallbacks
def test_each_session_keeps_one_identity_and_the_tls_handshake_of_its_browser(browser, certificate, caplog):
    cert, key, ca = certificate
    proxy = TunnelProxy("p0", username="u", password="proxy-pw").start()
    try:
        with HTTPSServer(cert, key, new_sid=True) as site:
            settings = {
                **IMPERSONATE,
                "SESSIONPOOL_FINGERPRINTS": True,
                "SESSIONPOOL_FINGERPRINT_BROWSERS": [browser],
                "SESSIONPOOL_MAX_POOL_SIZE": 4,
                "SESSIONPOOL_PROXIES": [proxy.url],  # with its credentials
                "CONCURRENT_REQUESTS": 1,  # tunnels and requests in the same order
            }
            crawler = make_crawler(PagesSpider, settings)
            yield crawler.crawl(
                urls=[site.url(f"/page/{i}") for i in range(16)], meta={"impersonate_args": {"verify": str(ca)}}
            )
            spider = crawler.spider
            assert len(spider.responses) == 16, stats(crawler)
            assert all("impersonate" in r.flags for r in spider.responses)
            received = site.log
            tunnels = proxy.tunnels
            proxy.reset()
            # the reference: curl_cffi itself, impersonating each target, through the same proxy
            references = {}
            for target in {impersonate_target(r.header("User-Agent")) for r in received}:
                assert target is not None
                curl.get(site.url("/reference"), impersonate=target, proxy=proxy.url, verify=str(ca), timeout=5)
                references[target] = proxy.tunnels[-1].hello.ja3n()
        assert len(tunnels) == len(received) == 16
        assert all(target.startswith(browser) for target in references)
        sessions = _by_session(received)
        assert 1 <= len([sid for sid in sessions if sid]) <= 4
        for sid, requests in sessions.items():
            if sid is not None:  # one session: one identity for all its requests
                assert (
                    len(
                        {(r.header("User-Agent"), r.header("Accept-Language"), r.header("sec-ch-ua")) for r in requests}
                    )
                    == 1
                )
        assert not any((r.header("User-Agent") or "Scrapy").startswith("Scrapy") for r in received)
        for tunnel, request in zip(tunnels, received, strict=True):  # the handshake of the browser its User-Agent names
            assert tunnel.hello.ja3n() == references[impersonate_target(request.header("User-Agent"))]
    finally:
        proxy.stop()
    assert "proxy-pw" not in caplog.text


@pytest_twisted.inlineCallbacks
def test_profiles_are_kept_across_runs_and_a_request_own_headers_win(site, tmp_path):
    settings = {
        "SESSIONPOOL_FINGERPRINTS": True,
        "SESSIONPOOL_MAX_POOL_SIZE": 2,
        "SESSIONPOOL_PERSIST_STATE": True,
        "SESSIONPOOL_PERSIST_STATE_STORE": str(tmp_path),
    }
    urls = [site.url(f"/items/{i}") for i in range(6)]
    own = [(site.url("/items/6"), {"Accept-Language": "x-own"}), (site.url("/items/7"), {"User-Agent": "own-agent"})]
    crawler = make_crawler(PagesSpider, settings)
    yield crawler.crawl(urls=urls)
    state = json.loads(next(tmp_path.glob("*.json")).read_text())
    profiles = {s["id"]: s["headers"] for s in state["sessions"]}
    assert profiles and all(p["User-Agent"] and p["Accept-Language"] for p in profiles.values())
    assert {hit.user_agent for hit in site.requests} <= {p["User-Agent"] for p in profiles.values()}
    second = make_crawler(PagesSpider, settings)
    yield second.crawl(urls=own)
    agents = [hit.user_agent for hit in site.requests][-2:]
    assert "own-agent" in agents
    again = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert {s["id"]: s["headers"] for s in again["sessions"]} == profiles
    assert stats(second)["restored"] == len(profiles)
