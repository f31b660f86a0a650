"""Property test: over random visits of several hosts by several sessions (and by plain Scrapy
requests outside the pool), no cookie goes out with another session's request, to a host or
path its Domain and Path do not match, over plain HTTP when it is Secure (request cookies given
on https are), to another host than its own when its Domain is a public suffix, or to or from a
URL without a host.

The requests and responses go through the real SessionPoolMiddleware and Scrapy's
CookiesMiddleware, in the order Scrapy runs them; only the network is left out.
"""

from __future__ import annotations

import inspect
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st
from scrapy import Request
from scrapy.downloadermiddlewares.cookies import CookiesMiddleware
from scrapy.http import HtmlResponse

from scrapy_sessionpool.middleware import SessionPoolMiddleware
from tests.crawling import ListSpider, make_crawler

HOSTS = [
    "shop.example",
    "www.shop.example",
    "a.www.shop.example",
    "other.example",
    "127.0.0.1",
    "evil.blogspot.com",
    "victim.blogspot.com",
    "a.co.uk",
    "b.co.uk",
    "co.uk",
]
PUBLIC_SUFFIXES = {"blogspot.com", "co.uk"}
PATHS = ["/", "/cart", "/cart/items", "/account", "/carton"]
SESSIONS = [0, 1, 2, None]  # None: outside the pool (sessionpool_enabled=False)

cookie_attributes = st.fixed_dictionaries(
    {
        "domain": st.sampled_from(
            [
                None,
                "shop.example",
                ".shop.example",
                "www.shop.example",
                "other.example",
                "example",
                "blogspot.com",
                "co.uk",
            ]
        ),
        "path": st.sampled_from([None, "/", "/cart", "/account"]),
        "secure": st.sampled_from(
            [None, False, True]
        ),  # None: not said (Set-Cookie: not Secure; request cookie: https)
    }
)
visit = st.tuples(
    st.sampled_from(SESSIONS),
    st.sampled_from(["http", "https", "file", "data"]),
    st.sampled_from(HOSTS),
    st.sampled_from(PATHS),
    st.one_of(st.none(), cookie_attributes),
    st.one_of(st.none(), cookie_attributes),
)


#: Scrapy releases before 2.14 fail a hostless request that carries cookies outside the pool (an assert).
SCRAPY_FAILS_HOSTLESS = "assert hostname is not None" in inspect.getsource(CookiesMiddleware._process_cookies)


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

    for n, (who, scheme, host, path, set_cookie, request_cookie) in enumerate(visits):
        if scheme == "data":
            host, path, url = "", "", "data:,hello"
        elif scheme == "file":
            host, url = "", f"file:///tmp{path}"
        else:
            url = f"{scheme}://{host}{path}"
        meta = (
            {"sessionpool_enabled": False}
            if who is None
            else ({"sessionpool_session_id": session_ids[who]} if who in session_ids else {})
        )
        if who is None and not host and SCRAPY_FAILS_HOSTLESS:
            request_cookie = set_cookie = None
        cookies = []
        if request_cookie is not None:  # Request(cookies=...): the request's own cookie, kept by its jar
            cookies = [
                {"name": f"r{n}", "value": f"g{n}", **{k: v for k, v in request_cookie.items() if v is not None}}
            ]
        request = Request(url, meta=meta, cookies=cookies)
        call(pool_mw.process_request, request=request, spider=spider)
        call(cookies_mw.process_request, request=request, spider=spider)
        owner = "global" if who is None else request.meta["sessionpool_session_id"]
        if who is not None:
            session_ids.setdefault(who, owner)
        if request_cookie is not None:
            attrs = {
                **request_cookie,
                "secure": scheme == "https" if request_cookie["secure"] is None else request_cookie["secure"],
            }
            origins[f"r{n}"] = (owner, host, attrs, default_path(urlsplit(url).path))

        for part in (request.headers.get("Cookie") or b"").decode().split(";"):
            name = part.strip().partition("=")[0]
            if not name:
                continue
            set_by, set_host, attrs, cookie_default_path = origins[name]
            assert set_by == owner, f"{name} of {set_by} went out with a request of {owner}"
            assert host and set_host, f"{name} went from {set_host or 'a hostless URL'} to {host or url}"
            if (attrs["domain"] or "").lstrip(".") in PUBLIC_SUFFIXES:
                assert host == set_host, f"{name} for the public suffix {attrs['domain']} of {set_host} went to {host}"
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
            set_cookie = {**set_cookie, "secure": bool(set_cookie["secure"])}
            headers["Set-Cookie"] = line
            origins[name] = (owner, host, set_cookie, default_path(urlsplit(url).path))
        response = HtmlResponse(url, body=b"<html></html>", headers=headers, request=request)
        response = call(cookies_mw.process_response, request=request, response=response, spider=spider)
        call(pool_mw.process_response, request=request, response=response, spider=spider)
