"""Property test: over random visits of several hosts by several sessions (and by plain Scrapy
requests outside the pool), no cookie goes out with another session's request, to a host or
path its Domain and Path do not match, or over plain HTTP when it is Secure.

The requests and responses go through the real SessionPoolMiddleware and Scrapy's
CookiesMiddleware, in the order Scrapy runs them; only the network is left out.
"""

from __future__ import annotations

import inspect
from urllib.parse import urlsplit

from hypothesis import given, settings, strategies as st
from scrapy import Request
from scrapy.downloadermiddlewares.cookies import CookiesMiddleware
from scrapy.http import HtmlResponse

from scrapy_sessionpool.middleware import SessionPoolMiddleware
from tests.crawling import ListSpider, make_crawler

HOSTS = ["shop.example", "www.shop.example", "other.example", "127.0.0.1"]
PATHS = ["/", "/cart", "/cart/items", "/account", "/carton"]
SESSIONS = [0, 1, 2, None]  # None: outside the pool (sessionpool_enabled=False)

visit = st.tuples(
    st.sampled_from(SESSIONS), st.sampled_from(["http", "https"]), st.sampled_from(HOSTS), st.sampled_from(PATHS),
    st.one_of(st.none(), st.fixed_dictionaries({
        "domain": st.sampled_from([None, "shop.example", ".shop.example", "other.example", "example"]),
        "path": st.sampled_from([None, "/", "/cart", "/account"]),
        "secure": st.booleans(),
    })),
)


def call(method, **kwargs):
    """Call a middleware method with or without ``spider``, as the Scrapy version in use wants."""
    parameter = inspect.signature(method).parameters.get("spider")
    if parameter is None or parameter.default is not inspect.Parameter.empty:
        kwargs.pop("spider")
    return method(**kwargs)


def domain_match(host: str, domain: str) -> bool:
    domain = domain.lstrip(".")
    return host == domain or host.endswith("." + domain)


def path_match(path: str, cookie_path: str) -> bool:
    return path == cookie_path or path.startswith(cookie_path.rstrip("/") + "/")


def default_path(path: str) -> str:
    return path[: path.rfind("/")] or "/"


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(visit, min_size=1, max_size=30))
def test_cookies_never_leak(visits):
    crawler = make_crawler(ListSpider, settings={"SESSIONPOOL_MAX_POOL_SIZE": 3, "SESSIONPOOL_WARM_UP": False})
    spider = crawler._create_spider(urls=[])
    crawler.spider = spider
    pool_mw = SessionPoolMiddleware(crawler)
    cookies_mw = call(CookiesMiddleware.from_crawler, crawler=crawler, spider=spider)
    session_ids: dict[int, str] = {}
    origins: dict[str, tuple] = {}  # cookie name -> (owner, host that set it, attributes, default path)

    for n, (who, scheme, host, path, set_cookie) in enumerate(visits):
        url = f"{scheme}://{host}{path}"
        meta = {"sessionpool_enabled": False} if who is None else (
            {"sessionpool_session_id": session_ids[who]} if who in session_ids else {})
        request = Request(url, meta=meta)
        call(pool_mw.process_request, request=request, spider=spider)
        call(cookies_mw.process_request, request=request, spider=spider)
        owner = "global" if who is None else request.meta["sessionpool_session_id"]
        if who is not None:
            session_ids.setdefault(who, owner)

        for part in (request.headers.get("Cookie") or b"").decode().split(";"):
            name = part.strip().partition("=")[0]
            if not name:
                continue
            set_by, set_host, attrs, cookie_default_path = origins[name]
            assert set_by == owner, f"{name} of {set_by} went out with a request of {owner}"
            if attrs["domain"] is None:
                assert host == set_host, f"host-only {name} of {set_host} went to {host}"
            else:
                assert domain_match(host, attrs["domain"]) and domain_match(set_host, attrs["domain"])
            assert path_match(path, attrs["path"] or cookie_default_path), f"{name} path {attrs} sent to {path}"
            assert not attrs["secure"] or scheme == "https", f"Secure {name} sent over http"

        headers = {}
        if set_cookie is not None:
            name = f"c{n}"
            line = f"{name}=v{n}"
            for key in ("domain", "path"):
                if set_cookie[key]:
                    line += f"; {key.title()}={set_cookie[key]}"
            if set_cookie["secure"]:
                line += "; Secure"
            headers["Set-Cookie"] = line
            origins[name] = (owner, host, set_cookie, default_path(urlsplit(url).path))
        response = HtmlResponse(url, body=b"<html></html>", headers=headers, request=request)
        response = call(cookies_mw.process_response, request=request, response=response, spider=spider)
        call(pool_mw.process_response, request=request, response=response, spider=spider)
