import email.utils

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse, Response
from scrapy.settings import Settings
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError, DNSLookupError, TimeoutError
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseNeverReceived

from scrapy_sessionpool.core.verdict import VerdictKind
from scrapy_sessionpool.policy import BanPolicy, parse_retry_after
from scrapy_sessionpool.settings import PoolSettings

REQUEST = Request("http://shop.example/items/1")


def policy(**settings):
    cfg = PoolSettings.from_settings(Settings({f"SESSIONPOOL_{k}": v for k, v in settings.items()}))
    return BanPolicy(cfg, (ConnectionRefusedError, TimeoutError, DNSLookupError))


def verdict(status=200, body=b"<html>ok</html>", headers=None, **settings):
    response = HtmlResponse(REQUEST.url, status=status, body=body, headers=headers or {}, request=REQUEST)
    return policy(**settings).response_verdict(REQUEST, response)


@pytest.mark.parametrize(
    ("status", "headers", "kind", "reason"),
    [
        (200, None, VerdictKind.GOOD, ""),
        (302, {"Location": "/x"}, VerdictKind.NEUTRAL, "redirect"),
        (304, None, VerdictKind.GOOD, ""),
        (404, None, VerdictKind.GOOD, ""),
        (403, None, VerdictKind.BLOCKED, "status_403"),
        (401, None, VerdictKind.BLOCKED, "status_401"),
        (429, None, VerdictKind.BLOCKED, "status_429"),
        (429, {"Retry-After": "7"}, VerdictKind.BLOCKED, "status_429"),
        (503, {"Retry-After": "7"}, VerdictKind.BLOCKED, "status_503"),
        (503, None, VerdictKind.BLOCKED, "status_503"),
        (500, None, VerdictKind.BAD, "status_500"),
        (502, None, VerdictKind.BAD, "status_502"),
    ],
)
def test_status_verdicts(status, headers, kind, reason):
    v = verdict(status, headers=headers)
    assert (v.kind, v.reason) == (kind, reason)


def test_retry_after_is_carried():
    assert verdict(503, headers={"Retry-After": "7"}).retry_after == 7
    assert verdict(403, headers={"Retry-After": "3"}).retry_after == 3
    assert verdict(429).retry_after is None


def test_redirects_to_a_block_page_are_blocks_when_configured():
    assert verdict(302, headers={"Location": "/login?next=/x"}).kind is VerdictKind.NEUTRAL
    v = verdict(302, headers={"Location": "/login?next=/x"}, BLOCK_REDIRECT_PATTERNS=[r"/login\b"])
    assert (v.kind, v.reason) == (VerdictKind.BLOCKED, "redirect")


def test_a_redirect_to_a_page_that_was_a_ban_page_is_a_block():
    p = policy(BAN_PATTERNS=["solve the captcha"])
    redirect = HtmlResponse(REQUEST.url, status=302, headers={"Location": "/denied?from=1"}, request=REQUEST)
    assert p.response_verdict(REQUEST, redirect).kind is VerdictKind.NEUTRAL
    followed = Request("http://shop.example/denied?from=1", meta={"redirect_urls": [REQUEST.url]})
    page = HtmlResponse(followed.url, body=b"<p>Please solve the captcha</p>", request=followed)
    assert p.response_verdict(followed, page).kind is VerdictKind.BLOCKED
    again = HtmlResponse(REQUEST.url, status=302, headers={"Location": "/denied?from=2"}, request=REQUEST)
    assert (p.response_verdict(REQUEST, again).kind, p.response_verdict(REQUEST, again).reason) == (
        VerdictKind.BLOCKED,
        "redirect",
    )
    elsewhere = HtmlResponse(REQUEST.url, status=302, headers={"Location": "/items/2"}, request=REQUEST)
    assert p.response_verdict(REQUEST, elsewhere).kind is VerdictKind.NEUTRAL


def test_challenge_patterns_win_over_status_and_ban_patterns():
    page = b'<html><head><meta http-equiv="refresh" content="2"></head>Checking your browser</html>'
    v = verdict(503, page, CHALLENGE_PATTERNS=["Checking your browser"], BAN_PATTERNS=["browser"])
    assert (v.kind, v.delay, v.url) == (VerdictKind.CHALLENGE, 2.0, REQUEST.url)


def test_a_page_that_sets_a_cookie_and_refreshes_to_itself_is_a_challenge():
    page = b'<html><head><meta http-equiv="refresh" content="0;url=/items/1"></head>One moment</html>'
    assert verdict(200, page, headers={"Set-Cookie": "pass=1"}).kind is VerdictKind.CHALLENGE
    assert verdict(200, page).kind is VerdictKind.GOOD  # no cookie: a plain meta refresh
    elsewhere = b'<html><head><meta http-equiv="refresh" content="0;url=/other"></head></html>'
    assert verdict(200, elsewhere, headers={"Set-Cookie": "pass=1"}).kind is VerdictKind.GOOD


def test_blocked_status_codes_are_configurable():
    assert verdict(403, BLOCKED_STATUS_CODES=[418]).kind is VerdictKind.GOOD
    assert verdict(418, BLOCKED_STATUS_CODES=[418]).kind is VerdictKind.BLOCKED


def test_ban_patterns_mark_a_200_page_as_a_block():
    page = b"<html><title>Captcha</title>Please solve the captcha</html>"
    assert verdict(200, page).kind is VerdictKind.GOOD
    v = verdict(200, page, BAN_PATTERNS=["solve the captcha"])
    assert (v.kind, v.reason) == (VerdictKind.BLOCKED, "ban_pattern")


def test_ban_patterns_skip_binary_responses():
    response = Response(REQUEST.url, body=b"solve the captcha", request=REQUEST)
    assert policy(BAN_PATTERNS=["captcha"]).response_verdict(REQUEST, response).kind is VerdictKind.GOOD


@pytest.mark.parametrize(
    ("exception", "kind"),
    [
        (TimeoutError(), VerdictKind.BAD),
        (DNSLookupError(), VerdictKind.BAD),
        (ConnectionRefusedError(), VerdictKind.BAD),
        (ResponseNeverReceived([]), VerdictKind.BLOCKED),
        (ConnectionLost(), VerdictKind.BLOCKED),
        (IgnoreRequest(), VerdictKind.NEUTRAL),
        (ValueError(), VerdictKind.NEUTRAL),
    ],
)
def test_exception_verdicts(exception, kind):
    assert policy().exception_verdict(REQUEST, exception).kind is kind


def test_wrapped_connection_errors_are_judged_by_what_they_wrap():
    class DownloadFailedError(Exception):  # as Scrapy 2.14+ wraps Twisted's errors
        pass

    wrapped = DownloadFailedError("Connection was closed cleanly.")
    wrapped.__cause__ = ResponseNeverReceived([Failure(ConnectionDone())])  # raise ... from ...
    verdict = policy().exception_verdict(REQUEST, wrapped)
    assert verdict.kind is VerdictKind.BLOCKED and verdict.reason == "ResponseNeverReceived"
    plain = policy(BLOCK_EXCEPTIONS=["twisted.internet.error.ConnectionDone"]).exception_verdict(REQUEST, wrapped)
    assert plain.reason == "ConnectionDone"


def test_block_exceptions_are_configurable():
    assert policy(BLOCK_EXCEPTIONS=[]).exception_verdict(REQUEST, ConnectionLost()).kind is VerdictKind.NEUTRAL
    v = policy(BLOCK_EXCEPTIONS=["twisted.internet.error.TimeoutError"]).exception_verdict(REQUEST, TimeoutError())
    assert (v.kind, v.reason) == (VerdictKind.BLOCKED, "TimeoutError")


def test_parse_retry_after():
    assert parse_retry_after(b"120") == 120
    assert parse_retry_after(None) is None and parse_retry_after(b"soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == 30
    assert parse_retry_after(email.utils.formatdate(999_000, usegmt=True), now=1_000_000) == 0
