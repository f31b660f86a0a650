"""The challenge site of :mod:`tests.support.challenge_site`: plain HTTP clients (urllib) that never run its script,
one that computes the token in Python, and a real Chromium (through Playwright) that runs it."""

from __future__ import annotations

import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from tests.clock import FakeClock
from tests.support.challenge_site import ChallengeSite, challenge_token
from tests.support.proxy import ForwardingProxy

UA = "Mozilla/5.0 (X11; Linux x86_64) ChallengeTest/1.0"
OTHER_UA = "Mozilla/5.0 (Macintosh) ChallengeTest/2.0"
CHROMIUM = "/usr/bin/chromium"
T = TypeVar("T")


def solve(nonce: str, rounds: int) -> str:
    """The challenge page's script, written again in Python: FNV-1a of the nonce, then ``rounds`` mixing rounds."""
    h = 2166136261
    for byte in nonce.encode():
        h = (h ^ byte) * 16777619 % 2**32
    for i in range(rounds):
        h = (h ^ (h >> 15) ^ i) * 2246822507 % 2**32
    return f"{nonce}.{h:08x}"


def challenge_of(text: str) -> tuple[str, int]:
    """The nonce and the rounds of a challenge page, read from its script."""
    match = re.search(r'solve\("([0-9a-f]+)", (\d+)\)', text)
    assert match, text
    return match[1], int(match[2])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str
    set_cookies: list[str]

    @property
    def challenged(self) -> bool:
        return "<title>Just a moment...</title>" in self.text and "Checking your browser" in self.text


@dataclass
class Client:
    """A plain HTTP client (urllib, no JavaScript): a User-Agent, an exit (a proxy, or none) and a cookie dict."""

    site: ChallengeSite
    user_agent: str = UA
    proxy: ForwardingProxy | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    def get(self, path: str) -> Answer:
        request = urllib.request.Request(self.site.url(path), headers={"User-Agent": self.user_agent})
        if self.cookies:
            request.add_header("Cookie", "; ".join(f"{name}={value}" for name, value in self.cookies.items()))
        if self.proxy is not None:
            request.set_proxy(f"127.0.0.1:{self.proxy.port}", "http")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxies from the environment
        try:
            with opener.open(request, timeout=5) as response:
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, error.headers, error.read()
        set_cookies = headers.get_all("Set-Cookie") or []
        for set_cookie in set_cookies:
            name, _, value = set_cookie.split(";")[0].partition("=")
            self.cookies[name] = value
        return Answer(status, dict(headers.items()), body.decode(), set_cookies)

    def pass_challenge(self, path: str = "/items/0", cookie_name: str = "challenge") -> Answer:
        """Get the challenge page, compute its token, send it back: the real page."""
        challenge = self.get(path)
        assert challenge.challenged
        self.cookies[cookie_name] = solve(*challenge_of(challenge.text))
        answer = self.get(path)
        assert not answer.challenged, answer.text
        return answer


def events(site: ChallengeSite) -> list[str | None]:
    return [hit.event for hit in site.hits]


def test_plain_http_clients_only_ever_get_the_challenge_page():
    with ChallengeSite(items=5) as site:
        client = Client(site)
        nonces = []
        for path in ("/", "/items/3", "/items/3", "/nope"):
            answer = client.get(path)
            assert answer.status == 200 and answer.challenged
            assert answer.headers["cf-mitigated"] == "challenge" and answer.headers["Cache-Control"] == "no-store"
            assert answer.set_cookies == [] and 'class="name"' not in answer.text
            assert 'document.cookie = "challenge=" + token + "; path=/; max-age=60; SameSite=Lax"' in answer.text
            assert "location.reload()" in answer.text and "/c.js" not in answer.text
            nonce, rounds = challenge_of(answer.text)
            assert rounds == site.rounds == 5000
            assert solve(nonce, rounds).split(".")[1] not in answer.text  # the page holds the nonce, not the token
            nonces.append(nonce)
        assert len(set(nonces)) == 4  # a fresh nonce a challenge page
        assert [hit.nonce for hit in site.hits] == nonces
        assert events(site) == ["challenge"] * 4 and len(site.challenges()) == 4
        assert site.pages_served() == set() and site.solves() == [] and site.clearances() == 0


def test_the_token_computed_from_the_nonce_passes():
    clock = FakeClock()
    with ChallengeSite(items=5, clock=clock) as site:
        client = Client(site)
        challenge = client.get("/items/3")
        nonce, rounds = challenge_of(challenge.text)
        token = solve(nonce, rounds)
        assert token == challenge_token(nonce, rounds) == site.token_for(nonce)  # the test's hash is the site's
        client.cookies["challenge"] = token
        page = client.get("/items/3")
        assert page.status == 200 and not page.challenged and page.set_cookies == []
        assert '<h1 class="name">Item 3</h1>' in page.text
        index = client.get("/")
        assert re.findall(r'href="/items/(\d+)"', index.text) == ["0", "1", "2", "3", "4"]
        assert client.get("/items/5").status == 404  # past the items, with a clearance: a plain 404
        assert client.get("/items/4").status == 200
        assert events(site) == ["challenge", "solved", "page", "page", "page"]
        first, solved = site.hits[:2]
        assert (first.time, first.method, first.path, first.exit, first.user_agent) == (
            clock.now,
            "GET",
            "/items/3",
            "direct",
            UA,
        )
        assert (first.cookie, first.status, first.token, first.nonce) == (None, 200, None, nonce)
        assert (solved.cookie, solved.token, solved.nonce, solved.status) == (f"challenge={token}", token, None, 200)
        assert site.solves() == [solved] and site.challenges() == [first] and site.clearances() == 1
        assert site.pages_served() == {3, 4}


def test_favicon_is_never_challenged():
    with ChallengeSite() as site:
        assert Client(site).get("/favicon.ico").status == 404
        assert events(site) == [None] and site.challenges() == []


def test_made_up_tokens_are_refused():
    with ChallengeSite() as site:
        client = Client(site)
        nonce, rounds = challenge_of(client.get("/").text)
        good = solve(nonce, rounds)
        never_issued = solve("0123456789abcdef", rounds)
        for bad in ("", "x", f"{nonce}.00000000", f"{nonce}.{good[-8:][::-1]}", never_issued, solve(nonce, rounds + 1)):
            client.cookies["challenge"] = bad
            assert client.get("/").challenged
        client.cookies["challenge"] = good  # the issued nonce's token still works
        assert not client.get("/").challenged
        assert events(site) == ["challenge"] * 7 + ["solved"] and site.clearances() == 1


def test_the_cookie_is_bound_to_the_exit_and_the_user_agent(make_proxies):
    proxy0, proxy1 = make_proxies(2)
    with ChallengeSite() as site:
        owner = Client(site, proxy=proxy0)
        challenge = owner.get("/items/1")
        token = solve(*challenge_of(challenge.text))
        early = Client(site, proxy=proxy1, cookies={"challenge": token})
        assert early.get("/items/1").challenged  # replayed elsewhere before the owner used it: refused
        owner.cookies["challenge"] = token
        assert not owner.get("/items/1").challenged  # and the owner still gets through
        for replay in (
            Client(site, user_agent=OTHER_UA, proxy=proxy0),  # same exit, another User-Agent
            Client(site, proxy=proxy1),  # same User-Agent, another exit
            Client(site),  # direct
            Client(site, user_agent=OTHER_UA, proxy=proxy1),
        ):
            replay.cookies["challenge"] = token
            answer = replay.get("/items/2")
            assert answer.challenged and answer.status == 200
        assert not owner.get("/items/2").challenged
        assert events(site) == [
            "challenge",
            "mismatch",
            "solved",
            "mismatch",
            "mismatch",
            "mismatch",
            "mismatch",
            "page",
        ]
        assert [hit.exit for hit in site.hits] == [
            "proxy0",
            "proxy1",
            "proxy0",
            "proxy0",
            "proxy1",
            "direct",
            "proxy1",
            "proxy0",
        ]
        assert [hit.user_agent for hit in site.hits][3:5] == [OTHER_UA, UA]
        assert all(hit.token == token for hit in site.hits[1:])
        assert site.pages_served() == {1, 2} and site.clearances() == 1 and len(site.challenges()) == 6
        assert [forwarded.url for forwarded in proxy0.log][:1] == [site.url("/items/1")]


def test_a_clearance_expires_clearance_secs_after_it_was_solved():
    clock = FakeClock()
    with ChallengeSite(clearance_secs=60, clock=clock) as site:
        client = Client(site)
        challenge = client.get("/items/1")
        clock.advance(300)  # solved late: the clearance counts from its first use, not from the challenge
        client.cookies["challenge"] = solve(*challenge_of(challenge.text))
        assert not client.get("/items/1").challenged
        solved_at = clock.now
        clock.advance(59.9)
        assert not client.get("/items/2").challenged
        clock.advance(0.1)
        expired = client.get("/items/3")
        assert expired.challenged
        clock.advance(1)
        assert client.get("/items/3").challenged  # an expired token stays expired
        assert site.pages_served() == {1, 2}
        client.cookies["challenge"] = solve(*challenge_of(expired.text))  # solve the new challenge
        assert not client.get("/items/3").challenged
        assert events(site) == ["challenge", "solved", "page", "expired", "expired", "solved"]
        assert site.solves()[0].time == solved_at and site.hits[3].time == solved_at + 60
        assert site.clearances() == 2 and site.pages_served() == {1, 2, 3}


def test_a_503_challenge_a_cookie_name_and_a_max_age():
    with ChallengeSite(challenge_status=503, cookie_name="cf_clearance", clearance_secs=90.5) as site:
        client = Client(site)
        challenge = client.get("/")
        assert challenge.status == 503 and challenge.challenged
        assert '"cf_clearance=" + token + "; path=/; max-age=91; SameSite=Lax"' in challenge.text
        client.cookies["challenge"] = solve(*challenge_of(challenge.text))  # the right token, under the wrong name
        assert client.get("/").status == 503
        assert client.pass_challenge("/", cookie_name="cf_clearance").status == 200
        assert [hit.status for hit in site.hits] == [503, 503, 503, 200]


def test_with_subresource_cookie_every_page_needs_both_cookies():
    with ChallengeSite(subresource_cookie=True) as site:
        client = Client(site)
        challenge = client.get("/items/1")
        assert '<script src="/c.js"></script>' in challenge.text
        client.cookies["challenge"] = solve(*challenge_of(challenge.text))
        assert client.get("/items/1").challenged  # the clearance alone is not enough
        script = client.get("/c.js")
        assert script.status == 200 and script.headers["Content-Type"] == "application/javascript"
        visitor = client.cookies["visitor"]
        assert script.set_cookies == [f"visitor={visitor}; Path=/; HttpOnly; SameSite=Strict"]  # not Secure
        assert not client.get("/items/1").challenged
        other = Client(site, user_agent=OTHER_UA)
        other_challenge = other.get("/items/2")
        other.cookies["challenge"] = solve(*challenge_of(other_challenge.text))
        other.cookies["visitor"] = visitor  # the first client's visitor cookie, from another User-Agent
        assert other.get("/items/2").challenged
        client.cookies["visitor"] = "0123456789abcdef"  # a visitor id the site never gave
        assert client.get("/items/1").challenged
        assert events(site) == ["challenge", "challenge", "script", "solved", "challenge", "mismatch", "challenge"]
        assert site.pages_served() == {1}


def test_reset_forgets_the_clearances():
    with ChallengeSite() as site:
        client = Client(site)
        client.pass_challenge()
        site.reset()
        assert site.hits == [] and site.pages_served() == set()
        assert client.get("/items/0").challenged


# A real browser. ----------------------------------------------------------------------------------------------------


class Chromium:
    """Debian's Chromium under Playwright's sync API, driven from a thread of its own: the sync API refuses to run
    where an asyncio loop runs, as the tests' asyncio reactor (pytest-twisted) does in the main thread. Playwright's
    objects belong to that thread, so the tests hand it functions (:meth:`run`) that return plain data."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")
        self._playwright: Any = None
        self._browser: Any = None

    def start(self) -> Chromium:
        def start() -> None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, headless=True)

        self._thread.submit(start).result(timeout=60)
        return self

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(browser, *args)``, called in the browser's thread."""
        return self._thread.submit(function, self._browser, *args).result(timeout=60)

    def stop(self) -> None:
        def stop() -> None:
            if self._browser is not None:
                self._browser.close()
            if self._playwright is not None:
                self._playwright.stop()

        try:
            self._thread.submit(stop).result(timeout=60)
        finally:
            self._thread.shutdown()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """Debian's Chromium driven by Playwright; skipped without either (but not in CI)."""
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install playwright): real-browser challenge tests skipped"
    else:
        if shutil.which(CHROMIUM) is None:
            reason = f"no Chromium at {CHROMIUM} (apt-get install chromium): real-browser challenge tests skipped"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    browser = Chromium().start()
    yield browser
    browser.stop()


@dataclass(frozen=True)
class Visit:
    heading: str  #: the text of the real page's h1
    user_agent: str  #: the browser's navigator.userAgent
    cookies: dict[str, dict[str, Any]]  #: context.cookies() by name


def browse(browser: Any, url: str, context_options: dict[str, Any] | None = None) -> Visit:
    """Open ``url`` in a fresh context and wait for the real page (run in the browser's thread)."""
    context = browser.new_context(**(context_options or {}))
    try:
        page = context.new_page()
        page.goto(url, wait_until="commit")
        heading = page.wait_for_selector("h1.name", timeout=15_000).inner_text()
        user_agent = page.evaluate("navigator.userAgent")
        return Visit(heading, user_agent, {cookie["name"]: cookie for cookie in context.cookies()})
    finally:
        context.close()


def page_events(site: ChallengeSite) -> list[str | None]:
    return [hit.event for hit in site.hits if hit.path != "/favicon.ico"]


@pytest.mark.parametrize("status", [200, 503])
def test_a_browser_runs_the_challenge_and_gets_the_page(chromium, status):
    with ChallengeSite(challenge_status=status) as site:
        visit = chromium.run(browse, site.url("/items/3"))
        assert visit.heading == "Item 3"
        assert page_events(site) == ["challenge", "solved"]
        challenge, solved = (hit for hit in site.hits if hit.path != "/favicon.ico")
        assert challenge.status == status and solved.status == 200 and site.pages_served() == {3}
        assert challenge.user_agent == solved.user_agent == visit.user_agent and solved.exit == "direct"
        assert list(visit.cookies) == ["challenge"]
        cookie = visit.cookies["challenge"]
        assert cookie["value"] == solved.token == solve(challenge.nonce, site.rounds)
        assert (cookie["domain"], cookie["path"]) == ("127.0.0.1", "/")
        assert (cookie["sameSite"], cookie["httpOnly"], cookie["secure"]) == ("Lax", False, False)
        assert abs(cookie["expires"] - (time.time() + 60)) < 10  # max-age=60


NONCES = ["0123456789abcdef", "ffffffffffffffff", "0000000000000000", "a1b2c3d4e5f60789"]


def time_solve(browser: Any, source: str, rounds: int) -> list[tuple[str, float]]:
    """The page script's ``solve`` run in a blank page for each of NONCES: its token and milliseconds."""
    page = browser.new_page()
    try:
        return page.evaluate(
            """([source, nonces, rounds]) => {
                const solve = new Function(source + "; return solve;")();
                return nonces.map((nonce) => {
                    const start = performance.now();
                    const token = solve(nonce, rounds);
                    return [token, performance.now() - start];
                });
            }""",
            [source, NONCES, rounds],
        )
    finally:
        page.close()


def test_the_script_is_fast_in_a_browser_and_computes_what_python_does(chromium):
    with ChallengeSite() as site:
        text = Client(site).get("/").text
    function = re.search(r"function solve\(nonce, rounds\) \{.*?\n\}", text, re.DOTALL)
    assert function
    results = chromium.run(time_solve, function[0], site.rounds)
    assert [token for token, _ in results] == [solve(nonce, site.rounds) for nonce in NONCES]
    assert all(millis < 50 for _, millis in results), results


def test_a_browser_through_a_proxy_then_plain_http_with_the_cookie_it_earned(chromium, make_proxies):
    proxy0, proxy1 = make_proxies(2)
    with ChallengeSite() as site:
        visit = chromium.run(browse, site.url("/items/2"), {"proxy": {"server": proxy0.url}})
        assert visit.heading == "Item 2" and page_events(site) == ["challenge", "solved"]
        assert {hit.exit for hit in site.hits} == {"proxy0"}  # the browser went through the proxy
        cookies = {name: cookie["value"] for name, cookie in visit.cookies.items()}
        crawler = Client(site, user_agent=visit.user_agent, proxy=proxy0, cookies=dict(cookies))
        for n in (0, 1, 4):
            answer = crawler.get(f"/items/{n}")
            assert not answer.challenged and f'<h1 class="name">Item {n}</h1>' in answer.text
        assert Client(site, user_agent=visit.user_agent, proxy=proxy1, cookies=dict(cookies)).get("/items/5").challenged
        assert Client(site, proxy=proxy0, cookies=dict(cookies)).get("/items/6").challenged
        assert page_events(site)[2:] == ["page", "page", "page", "mismatch", "mismatch"]
        assert site.pages_served() == {0, 1, 2, 4} and site.clearances() == 1 and len(site.solves()) == 1


def test_a_browser_keeps_the_cookie_that_a_subresource_set(chromium):
    with ChallengeSite(subresource_cookie=True) as site:
        visit = chromium.run(browse, site.url("/items/1"))
        assert visit.heading == "Item 1"
        assert page_events(site) == ["challenge", "script", "solved"]
        assert set(visit.cookies) == {"challenge", "visitor"}
        visitor = visit.cookies["visitor"]
        assert (visitor["path"], visitor["httpOnly"], visitor["secure"], visitor["sameSite"]) == (
            "/",
            True,
            False,
            "Strict",
        )
        assert visitor["expires"] == -1  # a session cookie
        both = {name: cookie["value"] for name, cookie in visit.cookies.items()}
        assert not Client(site, user_agent=visit.user_agent, cookies=both).get("/items/2").challenged
        only_clearance = {"challenge": both["challenge"]}
        assert Client(site, user_agent=visit.user_agent, cookies=only_clearance).get("/items/3").challenged
        assert site.pages_served() == {1, 2}
