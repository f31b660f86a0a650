"""The example project's guarded demo shop and its proxies, exercised with http.client only."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.clock import FakeClock
from tests.example import EXAMPLE, imported


@pytest.fixture(scope="module")
def demo() -> Iterator[ModuleType]:
    """The example project's ``demo.shop``, importable for this module's tests only."""
    with imported("demo.shop") as module:
        yield module


QUIET = {"flagged": 0.0, "rate_limit": None, "exit_block_after": None, "slow": 0.0, "flaky": 0.0}


def fetch(port: int, target: str, headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.msg, response.read().decode()
    finally:
        conn.close()


def new_session(shop: Any, exit_ip: str | None = None) -> dict[str, str]:
    """Visit once without a cookie; return the headers that carry the session (and the exit)."""
    via = {"X-Proxy-Name": exit_ip} if exit_ip else {}
    status, headers, _ = fetch(shop.port, "/", via)
    assert status == 200 and "Set-Cookie" in headers
    return {**via, "Cookie": headers["Set-Cookie"].split(";")[0]}


def test_a_first_visit_gets_a_cookie_then_pages_are_served(demo):
    with demo.DemoShop(items=30, categories=2, per_page=10, **QUIET) as shop:
        status, headers, _ = fetch(shop.port, "/category/garden?page=2")
        assert status == 200
        assert re.fullmatch(r"shop_session=[\w.-]+; Path=/; HttpOnly", headers["Set-Cookie"])
        session = {"Cookie": headers["Set-Cookie"].split(";")[0]}

        status, _, home = fetch(shop.port, "/", session)
        assert status == 200 and re.findall(r'class="category" href="([^"]+)"', home) == [
            "/category/books",
            "/category/garden",
        ]
        _, _, page1 = fetch(shop.port, "/category/garden", session)
        assert re.findall(r'class="item" href="/item/(\d+)"', page1) == [str(n) for n in range(2, 21, 2)]
        assert 'class="next" href="/category/garden?page=2"' in page1
        _, _, page2 = fetch(shop.port, "/category/garden?page=2", session)
        assert len(re.findall(r'class="item"', page2)) == 5 and 'class="next"' not in page2
        assert fetch(shop.port, "/category/garden?page=3", session)[0] == 404

        item = shop.catalogue[7]
        status, _, body = fetch(shop.port, "/item/7", session)
        assert status == 200
        assert f'<h1 class="name">{item.name}</h1>' in body
        assert f'<span class="price">{item.price}</span>' in body and f'<span class="sku">{item.sku}</span>' in body
        assert fetch(shop.port, "/item/31", session)[0] == 404
        assert "Set-Cookie" in fetch(shop.port, "/item/7", {"Cookie": "shop_session=forged"})[1]


def test_a_session_is_blocked_for_good_after_its_budget(demo):
    for kind, status in (("403", 403), ("429", 429)):
        with demo.DemoShop(items=10, budget=(3, 3), block_kinds=(kind,), **QUIET) as shop:
            session = new_session(shop)
            assert [fetch(shop.port, f"/item/{n}", session)[0] for n in (1, 2, 3)] == [200] * 3
            for n in (4, 1):
                got, headers, _ = fetch(shop.port, f"/item/{n}", session)
                assert got == status and "Retry-After" not in headers
            assert fetch(shop.port, "/item/4", new_session(shop))[0] == 200
            assert shop.summary()["items_missing"] == [5, 6, 7, 8, 9, 10]


def test_the_captcha_block_is_a_200_page(demo):
    with demo.DemoShop(items=10, budget=(1, 1), block_kinds=("captcha",), **QUIET) as shop:
        session = new_session(shop)
        assert fetch(shop.port, "/item/1", session)[0] == 200
        status, _, body = fetch(shop.port, "/item/2", session)
        assert status == 200 and "<title>Are you human?</title>" in body and "Please complete the captcha" in body
        assert shop.summary()["items_served"] == 1


def test_flagged_sessions_are_blocked_within_three_requests(demo):
    with demo.DemoShop(items=10, block_kinds=("403",), **{**QUIET, "flagged": 1.0}) as shop:
        session = new_session(shop)
        statuses = [fetch(shop.port, f"/item/{n}", session)[0] for n in range(1, 5)]
        assert statuses[0] == 200 and statuses[3] == 403
        assert shop.summary()["sessions_flagged"] == 1


def test_each_exit_is_rate_limited(demo):
    clock = FakeClock()
    with demo.DemoShop(items=10, **{**QUIET, "rate_limit": 3}, clock=clock) as shop:
        session = new_session(shop, "proxy0")  # the first visit counts too
        assert [fetch(shop.port, "/", session)[0] for _ in range(3)] == [200, 200, 503]
        status, headers, _ = fetch(shop.port, "/", session)
        assert status == 503 and headers["Retry-After"] == "2"
        assert fetch(shop.port, "/", {**session, "X-Proxy-Name": "proxy1"})[0] == 200
        clock.advance(1.01)
        assert fetch(shop.port, "/", session)[0] == 200
        assert shop.summary()["rate_limited"] == 2


def test_an_exit_with_too_many_blocked_sessions_is_blocked_for_a_while(demo):
    clock = FakeClock()
    options = {**QUIET, "budget": (1, 1), "block_kinds": ("403",), "exit_block_after": 2, "exit_block_secs": 20.0}
    with demo.DemoShop(items=10, clock=clock, **options) as shop:
        for _ in range(2):
            session = new_session(shop, "proxy0")
            assert [fetch(shop.port, "/", session)[0] for _ in range(2)] == [200, 403]
        clock.advance(5)
        status, headers, _ = fetch(shop.port, "/", {"X-Proxy-Name": "proxy0"})
        assert status == 503 and headers["Retry-After"] == "15"
        assert fetch(shop.port, "/", {"X-Proxy-Name": "proxy1"})[0] == 200
        clock.advance(15)
        assert fetch(shop.port, "/", {"X-Proxy-Name": "proxy0"})[0] == 200
        summary = shop.summary()
        assert (summary["sessions_blocked"], summary["exit_blocks"], summary["exit_blocked"]) == (2, 1, 1)


def test_stats_count_what_was_served(demo):
    with demo.DemoShop(items=10, budget=(2, 2), block_kinds=("429",), **QUIET) as shop:
        session = new_session(shop)
        for n in (1, 2, 3, 4):
            fetch(shop.port, f"/item/{n}", session)
        fetch(shop.port, "/item/5", new_session(shop, "proxy0"))
        status, headers, body = fetch(shop.port, "/__stats")
        assert status == 200 and headers["Content-Type"] == "application/json"
        stats = json.loads(body)
        assert stats == shop.summary()
        assert 0 < stats.pop("busy_secs") < 60  # from the first request to the last
        assert stats == {
            "items": 10,
            "items_served": 3,
            "items_missing": [3, 4, 6, 7, 8, 9, 10],
            "requests": 7,
            "sessions_issued": 2,
            "sessions_flagged": 0,
            "sessions_known": 2,
            "sessions_blocked": 1,
            "blocks": {"403": 0, "429": 2, "captcha": 0},
            "rate_limited": 0,
            "exit_blocks": 0,
            "exit_blocked": 0,
            "server_errors": 0,
            "requests_by_exit": {"direct": 5, "proxy0": 2},
        }


def test_slow_and_failing_items_are_fixed_by_the_seed(demo):
    # no flagged sessions and no rate limit: a session's hidden traits follow from its random cookie
    options = {**QUIET, "items": 100, "slow": 0.05, "flaky": 0.05, "slow_secs": (0.1, 0.2)}
    one, again, other = (
        demo.DemoShop(seed=1, **options),
        demo.DemoShop(seed=1, **options),
        demo.DemoShop(seed=2, **options),
    )
    assert len(one.slow_items) == len(one.flaky_items) == 5
    assert all(0.1 <= delay <= 0.2 for delay in one.slow_items.values())
    assert (one.slow_items, one.flaky_items, one.catalogue) == (again.slow_items, again.flaky_items, again.catalogue)
    assert (one.slow_items, one.flaky_items) != (other.slow_items, other.flaky_items)

    with one as shop:
        session = new_session(shop)
        flaky = min(shop.flaky_items)
        assert [fetch(shop.port, f"/item/{flaky}", session)[0] for _ in range(2)] == [500, 200]
        slow, delay = next((n, delay) for n, delay in shop.slow_items.items() if n not in shop.flaky_items)
        started = time.monotonic()
        assert fetch(shop.port, f"/item/{slow}", session)[0] == 200
        assert time.monotonic() - started >= delay
        assert shop.summary()["server_errors"] == 1


def test_latency_is_added_to_every_answer(demo, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(demo.time, "sleep", slept.append)
    options = {**QUIET, "items": 10, "slow": 0.1, "slow_secs": (0.5, 0.5)}
    with demo.DemoShop(latency=0.25, **options) as shop:
        session = new_session(shop)
        slow = min(shop.slow_items)
        fast = min(set(shop.catalogue) - set(shop.slow_items))
        assert fetch(shop.port, f"/item/{fast}", session)[0] == 200
        assert fetch(shop.port, f"/item/{slow}", session)[0] == 200
    assert slept == [0.25, 0.25, 0.75]  # the first visit, an item, a slow item


def test_start_demo_serves_the_shop_through_named_proxies(demo):
    shop, proxies = demo.start_demo(items=10, proxies=2, seed=1, **QUIET)
    try:
        via = proxies[1]
        status, headers, _ = fetch(via.port, f"{shop.url}/item/3")
        assert status == 200 and "Set-Cookie" in headers
        cookie = {"Cookie": headers["Set-Cookie"].split(";")[0]}
        assert fetch(via.port, f"{shop.url}/item/3", cookie)[0] == 200
        assert shop.summary()["requests_by_exit"] == {"proxy1": 2}
    finally:
        for server in (shop, *proxies):
            server.stop()


def test_the_demo_runs_as_a_command_until_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "demo.shop", "--port", "0", "--items", "20", "--proxies", "2", "--seed", "3"],
        cwd=EXAMPLE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        started = json.loads(process.stdout.readline())
        assert list(started) == ["site", "proxies"] and len(started["proxies"]) == 2
        port = int(started["site"].rsplit(":", 1)[1])
        assert json.loads(fetch(port, "/__stats")[2])["items"] == 20
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        assert process.stdout.read() == ""
    finally:
        process.kill()
        process.stdout.close()


def test_a_signed_cookie_from_an_earlier_run_is_still_known(demo):
    with demo.DemoShop(items=10, **QUIET) as shop:
        _, headers, _ = fetch(shop.port, "/")
        cookie = {"Cookie": headers["Set-Cookie"].split(";")[0]}
    with demo.DemoShop(items=10, **QUIET) as again:  # a restart with the same seed
        status, headers, _ = fetch(again.port, "/", cookie)
        assert status == 200 and "Set-Cookie" not in headers
        assert again.summary()["sessions_issued"] == 0
    with demo.DemoShop(items=10, seed=2, **QUIET) as other:
        assert "Set-Cookie" in fetch(other.port, "/", cookie)[1]


def post(port: int, target: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, http.client.HTTPMessage]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        body = urllib.parse.urlencode(form)
        conn.request("POST", target, body, {**headers, "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        return response.status, response.msg
    finally:
        conn.close()


def test_customers_sign_in_with_a_csrf_token_one_session_per_account(demo):
    with demo.DemoShop(items=10, accounts={"ann": "pw-ann"}, **QUIET) as shop:
        first = new_session(shop)
        status, _, page = fetch(shop.port, "/login", first)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        assert (
            post(shop.port, "/login", {"csrf_token": "forged", "username": "ann", "password": "pw-ann"}, first)[0]
            == 403
        )
        _, _, page = fetch(shop.port, "/login", first)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        status, headers = post(
            shop.port, "/login", {"csrf_token": token, "username": "ann", "password": "pw-ann"}, first
        )
        assert (status, headers["Location"]) == (302, "/account")
        assert "Signed in as ann" in fetch(shop.port, "/account", first)[2]
        assert "member-price" in fetch(shop.port, "/item/1", first)[2]
        second = new_session(shop)
        _, _, page = fetch(shop.port, "/item/2", second)  # asked before its login
        assert "member-price" not in page
        _, _, page = fetch(shop.port, "/login", second)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        post(shop.port, "/login", {"csrf_token": token, "username": "ann", "password": "wrong"}, second)
        _, _, page = fetch(shop.port, "/login", second)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        assert (
            post(shop.port, "/login", {"csrf_token": token, "username": "ann", "password": "pw-ann"}, second)[0] == 302
        )
        assert "member-price" not in fetch(shop.port, "/item/1", first)[2]  # signed out by the second login
        summary = shop.summary()
        assert (summary["logins"], summary["logins_failed"], summary["kicked"]) == (2, 1, 1)
        assert (summary["member_prices_served"], summary["requests_before_login"]) == (1, 1)
