"""Browser sessions without a browser: cookies between the jar and Playwright, proxies, detection, imports."""

from __future__ import annotations

import subprocess
import sys
import time
from http.cookiejar import CookieJar

import pytest
from scrapy.utils.test import get_crawler

from scrapy_sessionpool.browser import _proxy, browser_cookie, jar_cookie, uses_playwright
from scrapy_sessionpool.core.cookies import make_cookie

HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"


def cookie(name="a", value="1", *, rest=None, **kwargs):
    made = make_cookie(name, value, **{"domain": "shop.test", **kwargs})
    made._rest = dict(rest or {})
    return made


@pytest.mark.parametrize(
    ("made", "shown"),
    [
        (cookie(), {"domain": "shop.test", "path": "/", "expires": -1, "httpOnly": False, "secure": False}),
        (cookie(domain=".shop.test"), {"domain": ".shop.test"}),  # a domain cookie keeps its dot
        (cookie(path="/cart", expires=2_000_000_000), {"path": "/cart", "expires": 2_000_000_000.0}),
        (cookie(secure=True, rest={"HttpOnly": None}), {"secure": True, "httpOnly": True}),
        (cookie(rest={"samesite": "strict"}), {"sameSite": "Strict"}),
        (cookie(rest={"SameSite": "None"}, secure=True), {"sameSite": "None", "secure": True}),
    ],
)
def test_a_jar_cookie_keeps_its_attributes_in_the_browser_and_back(made, shown):
    given = browser_cookie(made)
    for key, value in shown.items():
        assert given[key] == value, key
    if "sameSite" not in shown:
        assert "sameSite" not in given  # unsaid: the browser's default applies
    back = jar_cookie(given)
    assert (back.name, back.value, back.domain, back.path, back.expires, back.secure) == (
        made.name,
        made.value,
        made.domain,
        made.path,
        made.expires,
        made.secure,
    )
    assert back.domain_specified == made.domain_specified  # host-only stays host-only
    assert browser_cookie(back) == given
    jar = CookieJar()
    jar.set_cookie(back)
    assert len(jar) == 1


def test_the_browser_default_samesite_does_not_become_an_attribute_of_a_cookie_that_had_none():
    kept = cookie(value="old")
    shown = {**browser_cookie(kept), "sameSite": "Lax"}  # how Chromium reports a cookie given no SameSite
    assert jar_cookie(shown, kept) is kept  # unchanged: the jar's own copy stays
    changed = jar_cookie({**shown, "value": "new"}, kept)
    assert changed.value == "new" and "SameSite" not in changed._rest
    assert jar_cookie({**shown, "value": "new"})._rest == {"SameSite": "Lax"}  # a new cookie: as the browser says


def test_a_proxy_url_becomes_playwright_proxy_settings():
    assert _proxy("http://10.0.0.1:8000") == {"server": "http://10.0.0.1:8000"}
    assert _proxy("http://us%40er:p%3Ass@10.0.0.1:8000") == {
        "server": "http://10.0.0.1:8000",
        "username": "us@er",
        "password": "p:ss",
    }


def test_browser_sessions_are_on_with_scrapy_playwright_handler_only():
    pytest.importorskip("scrapy_playwright")
    assert not uses_playwright(get_crawler(settings_dict={}))
    assert uses_playwright(get_crawler(settings_dict={"DOWNLOAD_HANDLERS": {"https": HANDLER}}))
    assert uses_playwright(get_crawler(settings_dict={"DOWNLOAD_HANDLERS": {"http": HANDLER}}))


def test_without_a_browser_request_nothing_imports_playwright():
    code = (
        "import sys; import scrapy_sessionpool, scrapy_sessionpool.middleware, scrapy_sessionpool.browser; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('playwright', 'scrapy_playwright')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_escalation_without_scrapy_playwright_is_a_settings_error():
    from scrapy import Spider

    from scrapy_sessionpool.middleware import SessionPoolMiddleware
    from scrapy_sessionpool.settings import SettingsError

    crawler = get_crawler(
        Spider,
        {"SESSIONPOOL_ENABLED": True, "SESSIONPOOL_PERSIST_STATE": False, "SESSIONPOOL_BROWSER_ESCALATION": True},
    )
    with pytest.raises(SettingsError, match=r"^SESSIONPOOL_BROWSER_ESCALATION: expected scrapy-playwright"):
        SessionPoolMiddleware.from_crawler(crawler)


def test_expiry_seconds_stay_whole_in_the_jar():
    soon = int(time.time()) + 60
    assert (
        jar_cookie({"name": "c", "value": "v", "domain": "shop.test", "path": "/", "expires": soon + 0.75}).expires
        == soon
    )
