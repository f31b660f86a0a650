"""The login site of :mod:`tests.support.login_site`, driven with http.client and a cookie dict."""

from __future__ import annotations

import http.client
import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from tests.clock import FakeClock
from tests.support.login_site import LoginSite

ACCOUNTS = {"alice": "a-pass", "bob": "b-pass", "carol": "c-pass", "dave": "d-pass"}


class Browser:
    """Keeps the cookies it is given and follows no redirects."""

    def __init__(self, site: LoginSite) -> None:
        self.site = site
        self.cookies: dict[str, str] = {}
        self.set_cookies: list[str] = []

    @property
    def sid(self) -> str | None:
        return self.cookies.get("sid")

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.site.port, timeout=5)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
        finally:
            conn.close()
        for set_cookie in response.msg.get_all("Set-Cookie") or []:
            self.set_cookies.append(set_cookie)
            name, _, value = set_cookie.split(";")[0].partition("=")
            self.cookies[name] = value
        return response.status, dict(response.msg.items()), text

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, str], str]:
        return self.request("POST", path, form)

    def token(self, path: str = "/login") -> str:
        status, _, text = self.get(path)
        assert status == 200 and '<form id="login" method="post" action="/login">' in text
        match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', text)
        assert match
        return match[1]

    def login(self, username: str, password: str | None = None) -> tuple[int, dict[str, str], str]:
        token = self.token()
        return self.post(
            "/login", {"username": username, "password": password or ACCOUNTS[username], "csrf_token": token}
        )


def test_login_flow_with_csrf_and_next():
    with LoginSite(ACCOUNTS, pages=3) as site:
        browser = Browser(site)
        status, headers, _ = browser.get("/members/2")
        assert (status, headers["Location"]) == (302, "/login?next=%2Fmembers%2F2")
        assert browser.set_cookies == [f"sid={browser.sid}; Path=/; HttpOnly"]
        status, _, text = browser.get(headers["Location"])
        assert status == 200 and 'name="username"' in text and 'name="password"' in text
        assert '<input type="hidden" name="next" value="/members/2">' in text
        token = re.search(r'name="csrf_token" value="(\w+)"', text)[1]
        form = {"username": "alice", "password": "a-pass", "csrf_token": token, "next": "/members/2"}
        status, headers, _ = browser.post("/login", form)
        assert (status, headers["Location"]) == (302, "/members/2")
        status, _, text = browser.get("/members/2")
        assert status == 200 and "<h1>Member page 2</h1>" in text and '<p class="who">alice</p>' in text
        assert "/members/" not in text.split("</p>")[-1]  # the last page links to no next one
        sid = browser.sid
        assert len(browser.set_cookies) == 1  # one sid for the whole visit
        assert [hit.event for hit in site.hits] == ["redirect_to_login", "form", "login", "member_page"]
        assert [(hit.sid, hit.account) for hit in site.hits] == [(None, None), (sid, None), (sid, None), (sid, "alice")]
        login = site.hits[2]
        assert site.logins() == site.logins("alice") == [login] and site.logins("bob") == []
        assert login.username == "alice" and login.method == "POST" and site.first_login_time(sid) == login.time
        assert site.first_login_time("nope") is None
        assert site.requests_before_login() == [site.hits[0]]
        assert site.pages_served() == {2} and site.kicks() == [] and site.bans() == set()
        assert site.hits_by_sid() == {sid: site.hits}
        assert site.url("/x") == f"http://127.0.0.1:{site.port}/x" and site.port != 0


def test_login_defaults_to_the_first_member_page_and_ignores_foreign_next():
    with LoginSite(ACCOUNTS) as site:
        browser = Browser(site)
        assert browser.login("bob")[1]["Location"] == "/members/0"
        token = browser.token()
        status, headers, _ = browser.post(
            "/login?next=//evil.example/", {"username": "bob", "password": "b-pass", "csrf_token": token}
        )
        assert (status, headers["Location"]) == (302, "/members/0")
        assert browser.get("/members/0")[0] == 200


def test_csrf_tokens_are_per_get_per_sid_and_single_use():
    with LoginSite(ACCOUNTS) as site:
        browser, other = Browser(site), Browser(site)
        old, new = browser.token(), browser.token()
        assert old != new
        credentials = {"username": "alice", "password": "a-pass"}
        for token in (old, other.token()):  # a superseded token, another sid's token
            status, _, text = browser.post("/login", {**credentials, "csrf_token": token})
            assert status == 403 and "CSRF token invalid" in text
        assert browser.post("/login", credentials)[0] == 403  # no token at all
        assert browser.post("/login", {**credentials, "csrf_token": new})[0] == 302
        assert browser.post("/login", {**credentials, "csrf_token": new})[0] == 403  # used once already
        assert Browser(site).post("/login", {**credentials, "csrf_token": new})[0] == 403  # no sid
        events = [hit.event for hit in site.hits if hit.method == "POST"]
        assert events == ["csrf_failed"] * 3 + ["login", "csrf_failed", "csrf_failed"]


@pytest.mark.parametrize("status", [200, 401])
def test_wrong_password_or_unknown_user_shows_the_form_again(status):
    with LoginSite(ACCOUNTS, login_status_on_failure=status) as site:
        browser = Browser(site)
        for username, password in (("alice", "wrong"), ("mallory", "a-pass")):
            answer, _, text = browser.login(username, password)
            assert answer == status and "Wrong username or password" in text
            assert '<form id="login" method="post" action="/login">' in text and 'name="csrf_token"' in text
        token = re.search(r'name="csrf_token" value="(\w+)"', text)[1]
        assert browser.post("/login", {"username": "alice", "password": "a-pass", "csrf_token": token})[0] == 302
        assert [hit.event for hit in site.hits if hit.method == "POST"] == ["login_failed", "login_failed", "login"]
        assert [hit.username for hit in site.hits if hit.method == "POST"] == ["alice", "mallory", "alice"]


def test_member_pages_need_a_login_and_logout_ends_it():
    with LoginSite(ACCOUNTS, pages=2) as site:
        browser = Browser(site)
        assert browser.get("/members/0")[0] == 302
        assert browser.get("/")[0] == 200 and browser.get("/members/2")[0] == 404
        browser.login("carol")
        assert browser.get("/members/1")[0] == 200
        assert browser.get("/logout")[1]["Location"] == "/login"
        status, headers, _ = browser.get("/members/1")
        assert (status, headers["Location"]) == (302, "/login?next=%2Fmembers%2F1")
        assert [hit.event for hit in site.hits][-3:] == ["member_page", "logout", "redirect_to_login"]
        assert len(site.requests_before_login()) == 2  # the first member page and the 404 one
        sid = browser.sid
        browser.cookies["sid"] = "forged"
        assert browser.get("/members/0")[0] == 302 and browser.sid != "forged"  # an unknown sid is a new visitor
        assert site.hits[-1].sid == "forged" and site.hits[-1].issued == browser.sid != sid


def test_a_login_elsewhere_kicks_the_previous_session():
    with LoginSite(ACCOUNTS) as site:
        first, second = Browser(site), Browser(site)
        first.login("alice")
        first.login("alice")  # again on the same sid: no kick
        first.login("bob")  # another account on the same sid: no kick either
        first.login("alice")
        assert site.kicks() == []
        second.login("alice")
        (kick,) = site.kicks()
        assert (kick.sid, kick.kicked, kick.username) == (second.sid, first.sid, "alice")
        status, headers, _ = first.get("/members/0")
        assert status == 302 and headers["Location"].startswith("/login?next=")
        assert site.hits[-1].event == "kicked" and site.hits[-1].account is None
        assert second.get("/members/0")[0] == 200
        first.login("alice")  # and back: kicks the second
        assert [k.kicked for k in site.kicks()] == [first.sid, second.sid]
        assert first.get("/members/0")[0] == 200 and site.hits[-1].event == "member_page"


def answers_ban(kind: str, status: int, headers: dict[str, str], text: str) -> bool:
    if kind == "403":
        return status == 403
    if kind == "429":
        return status == 429 and headers["Retry-After"] == "30"
    if kind == "captcha":
        return status == 200 and "captcha" in text and '<form id="captcha"' in text
    return status == 302 and headers["Location"] == "/login"


@pytest.mark.parametrize("kind", ["403", "429", "captcha", "login_redirect"])
def test_an_account_is_banned_after_its_pages_over_all_its_logins(kind):
    with LoginSite(ACCOUNTS, ban_after=3, ban_signal=kind) as site:
        alice, bob = Browser(site), Browser(site)
        alice.login("alice")
        assert [alice.get(f"/members/{n}")[0] for n in (0, 1)] == [200, 200]
        alice.get("/logout")
        alice.login("alice")
        assert alice.get("/members/2")[0] == 200
        assert site.bans() == {"alice"}  # as soon as the third page is served
        assert answers_ban(kind, *alice.get("/members/3"))
        assert site.hits[-1].event == "banned" and site.hits[-1].account == "alice"
        assert answers_ban(kind, *alice.login("alice"))  # logging in again does not help
        assert site.hits[-1].event == "banned" and site.hits[-1].username == "alice"
        if kind == "login_redirect":  # the ban logged the sid out
            assert alice.get("/members/3")[0] == 302 and site.hits[-1].event == "redirect_to_login"
        bob.login("bob")
        assert bob.get("/members/3")[0] == 200
        assert site.pages_served() == {0, 1, 2, 3} and site.bans() == {"alice"}


def test_ban_after_zero_bans_at_once_and_a_failed_login_shows_no_ban():
    with LoginSite(ACCOUNTS, ban_after=0) as site:
        browser = Browser(site)
        assert browser.login("alice", "wrong")[0] == 200
        assert browser.login("alice")[0] == 403
        assert site.bans() == {"alice"} and site.logins() == []


def test_a_ban_keyed_by_sid_spares_the_account_elsewhere():
    with LoginSite(ACCOUNTS, ban_after=1, ban_key="sid") as site:
        first, second = Browser(site), Browser(site)
        first.login("alice")
        assert [first.get("/members/0")[0], first.get("/members/1")[0]] == [200, 403]
        assert first.login("alice")[0] == 403
        second.login("alice")
        assert second.get("/members/1")[0] == 200
        assert site.bans() == {first.sid, second.sid}


def test_a_ban_ends_after_ban_secs_on_the_sites_clock():
    clock = FakeClock()
    with LoginSite(ACCOUNTS, ban_after=1, ban_secs=60, ban_signal="429", clock=clock) as site:
        browser = Browser(site)
        browser.login("alice")
        assert browser.get("/members/0")[0] == 200  # starts the ban
        clock.advance(59.9)
        assert browser.get("/members/1")[0] == 429
        clock.advance(0.1)
        assert browser.get("/members/1")[0] == 200  # and a new count, so the next one is banned again
        assert browser.get("/members/2")[0] == 429
        clock.advance(60)
        assert browser.login("alice")[0] == 302
        assert [hit.time - clock.now for hit in site.hits[-3:]] == [-60, 0, 0]
        assert site.bans() == {"alice"}


def test_the_login_form_needs_consent_first():
    with LoginSite(ACCOUNTS, consent=True) as site:
        browser = Browser(site)
        status, headers, _ = browser.get("/login?next=/members/4")
        assert (status, headers["Location"]) == (302, "/consent?next=%2Flogin%3Fnext%3D%2Fmembers%2F4")
        status, _, text = browser.get(headers["Location"])
        assert status == 200 and '<form id="consent" method="post" action="/consent">' in text
        assert '<input type="hidden" name="consent" value="yes">' in text
        assert '<input type="hidden" name="next" value="/login?next=/members/4">' in text
        assert browser.post("/consent", {"next": "/login?next=/members/4"})[0] == 200  # no consent given
        status, headers, _ = browser.post("/consent", {"consent": "yes", "next": "/login?next=/members/4"})
        assert (status, headers["Location"]) == (302, "/login?next=/members/4")
        assert browser.cookies["consent"] == "yes" and "consent=yes; Path=/" in browser.set_cookies
        token = browser.token(headers["Location"])
        form = {"username": "dave", "password": "d-pass", "csrf_token": token, "next": "/members/4"}
        assert browser.post("/login", form)[1]["Location"] == "/members/4"
        assert [hit.event for hit in site.hits] == ["consent"] * 4 + ["form", "login"]
        del browser.cookies["consent"]
        assert browser.get("/login")[0] == 302  # never shown without the cookie


def test_a_new_sid_on_login():
    with LoginSite(ACCOUNTS, new_sid_on_login=True) as site:
        browser = Browser(site)
        browser.token()
        before = browser.sid
        browser.login("alice")
        login = site.logins("alice")[0]
        assert (login.sid, login.issued) == (before, browser.sid) and before != browser.sid
        assert site.first_login_time(browser.sid) == login.time and site.first_login_time(before) is None
        assert browser.get("/members/0")[0] == 200 and site.requests_before_login() == []
        browser.cookies["sid"] = before
        assert browser.get("/members/0")[0] == 302  # the old sid is gone


def test_concurrent_sessions_each_with_its_account():
    with LoginSite(ACCOUNTS, pages=20) as site:

        def crawl(account: str) -> list[str]:
            browser = Browser(site)
            browser.login(account)
            return [re.search(r'class="who">(\w+)<', browser.get(f"/members/{n}")[2])[1] for n in range(10)]

        with ThreadPoolExecutor(4) as pool:
            whos = dict(zip(ACCOUNTS, pool.map(crawl, ACCOUNTS), strict=True))
        assert whos == {account: [account] * 10 for account in ACCOUNTS}
        assert site.kicks() == [] and site.requests_before_login() == [] and site.pages_served() == set(range(10))
        assert len(site.logins()) == 4 and len(site.hits_by_sid()) == 4


def test_two_sites_get_their_own_free_ports_and_bad_arguments_are_refused():
    with LoginSite(ACCOUNTS) as one, LoginSite(ACCOUNTS) as two:
        assert one.port != two.port and 0 not in (one.port, two.port)
    with pytest.raises(ValueError, match="ban_signal"):
        LoginSite(ACCOUNTS, ban_signal="teapot")
    with pytest.raises(ValueError, match="ban_key"):
        LoginSite(ACCOUNTS, ban_key="ip")
