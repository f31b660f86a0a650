"""The tests' own servers (:mod:`tests.support`), exercised with http.client and sockets only."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from base64 import b64encode
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.clock import FakeClock
from tests.support.blocksite import BlockSite
from tests.support.proxy import Forwarded, ForwardingProxy
from tests.support.redis_server import RedisServer
from tests.support.site import GuardedSite, Hit


def fetch(
    port: int, target: str, headers: dict[str, str] | None = None, method: str = "GET", body: bytes | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.msg, response.read()
    finally:
        conn.close()


def sid_of(headers: http.client.HTTPMessage) -> str:
    (set_cookie,) = headers.get_all("Set-Cookie")
    assert set_cookie.endswith("; Path=/; HttpOnly")
    return set_cookie.split(";")[0].removeprefix("sid=")


def as_sid(sid: str) -> dict[str, str]:
    return {"Cookie": f"other=1; sid={sid}"}


def test_first_visit_gets_a_sid_and_the_page():
    with GuardedSite() as site:
        status, headers, body = fetch(site.port, "/items/7", {"User-Agent": "ua/1"})
        assert status == 200
        assert body == b'<html><title>Item 7</title><body><p class="item">item-7</p></body></html>'
        sid = sid_of(headers)
        assert site.issued_sids == {sid} and site.served_items == {7}
        assert site.requests == [Hit("/items/7", None, None, "ua/1", None, 200, False)]
        assert site.url("/x") == f"http://127.0.0.1:{site.port}/x"


def test_an_unknown_sid_counts_as_none():
    with GuardedSite() as site:
        status, headers, _ = fetch(site.port, "/items/1", as_sid("forged"))
        assert status == 200 and sid_of(headers) != "forged"
        assert site.hits()[0].sid == "forged"


@pytest.mark.parametrize(
    ("block", "status", "marker"),
    [("403", 403, b"Forbidden"), ("429", 429, b"Too Many Requests"), ("captcha", 200, b"<title>Captcha</title>")],
)
def test_a_sid_is_blocked_for_good_after_its_budget(block, status, marker):
    with GuardedSite(budget=2, block=block) as site:
        sid = sid_of(fetch(site.port, "/items/1")[1])
        assert fetch(site.port, "/items/2", as_sid(sid))[0] == 200
        for n in (3, 4):
            got, headers, body = fetch(site.port, f"/items/{n}", as_sid(sid))
            assert got == status and marker in body
            assert "Set-Cookie" not in headers and "Retry-After" not in headers
        if block == "captcha":
            assert b"solve the captcha" in body
        assert site.blocked_sids == {sid} and site.served_items == {1, 2}
        assert [hit.blocked for hit in site.hits("/items")] == [False, False, True, True]
        assert fetch(site.port, "/items/5")[0] == 200  # a fresh sid is welcome again


def test_mixed_blocks_cycle_across_sids():
    with GuardedSite(budget=1, block="mixed") as site:
        answers = []
        for _ in range(4):
            sid = sid_of(fetch(site.port, "/items/1")[1])
            status, _, body = fetch(site.port, "/items/1", as_sid(sid))
            answers.append("captcha" if b"<title>Captcha</title>" in body else status)
        assert answers == [403, 429, "captcha", 403]


def test_no_budget_never_blocks():
    with GuardedSite(budget=None) as site:
        sid = sid_of(fetch(site.port, "/items/0")[1])
        assert {fetch(site.port, f"/items/{n}", as_sid(sid))[0] for n in range(20)} == {200}
        assert site.blocked_sids == set()


def test_private_pages_need_a_live_sid():
    with GuardedSite(budget=2) as site:
        status, headers, _ = fetch(site.port, "/private/1")
        assert status == 403 and "Set-Cookie" not in headers and site.issued_sids == set()
        sid = sid_of(fetch(site.port, "/items/1")[1])
        status, _, body = fetch(site.port, "/private/1", as_sid(sid))
        assert status == 200 and b"private-1" in body
        assert fetch(site.port, "/private/2", as_sid(sid))[0] == 403  # third request: over budget
        assert site.blocked_sids == {sid}


def test_redirect_sets_a_sid_and_counts_as_a_visit():
    with GuardedSite(budget=1) as site:
        status, headers, _ = fetch(site.port, "/redirect?to=/items/1")
        assert status == 302 and headers["Location"] == "/items/1"
        sid = sid_of(headers)
        assert fetch(site.port, "/items/1", as_sid(sid))[0] == 403


def test_status_cookies_echo_and_404_are_outside_the_sid_rules():
    with GuardedSite(budget=0) as site:
        status, headers, _ = fetch(site.port, "/status/503?retry_after=7")
        assert (status, headers["Retry-After"], "Set-Cookie" in headers) == (503, "7", False)
        assert "Retry-After" not in fetch(site.port, "/status/429")[1]
        assert fetch(site.port, "/status/204")[::2] == (204, b"")

        query = "name=a&value=b&path=/x&domain=localhost&secure=1&max_age=9"
        status, headers, body = fetch(site.port, f"/cookies/set?{query}")
        assert (status, body) == (200, b"ok")
        assert headers.get_all("Set-Cookie") == ["a=b; Path=/x; Domain=localhost; Secure; Max-Age=9"]
        assert fetch(site.port, "/cookies/set?name=c&value=d")[1]["Set-Cookie"] == "c=d; Path=/"

        status, _, body = fetch(site.port, "/echo?q=1", {"Cookie": "sid=x", "User-Agent": "ua", "X-Proxy-Name": "p1"})
        assert json.loads(body) == {"cookie": "sid=x", "user_agent": "ua", "path": "/echo?q=1", "proxy": "p1"}
        assert json.loads(fetch(site.port, "/echo")[2])["cookie"] is None

        assert fetch(site.port, "/nowhere")[0] == 404
        assert fetch(site.port, "/items/x")[0] == 404
        assert site.issued_sids == set() and not any(hit.blocked for hit in site.requests)


def test_exit_ips_are_rate_limited_over_a_sliding_window():
    clock = FakeClock()
    with GuardedSite(budget=None, ip_limit=2, ip_window=1.0, retry_after=3, clock=clock) as site:
        via = {"X-Proxy-Name": "p1"}
        assert [fetch(site.port, "/items/1", via)[0] for _ in range(2)] == [200, 200]
        status, headers, _ = fetch(site.port, "/items/1", via)
        assert (status, headers["Retry-After"]) == (503, "3")
        assert fetch(site.port, "/items/1")[0] == 200  # "direct" has its own window
        assert fetch(site.port, "/echo", via)[0] == 200  # only /items and /private are limited
        clock.advance(0.5)
        assert fetch(site.port, "/private/1", via)[0] == 503
        clock.advance(0.6)  # the first three requests left the window; the 503 at 0.5 still counts
        assert fetch(site.port, "/items/1", via)[0] == 200
        assert fetch(site.port, "/items/1", via)[0] == 503
        clock.advance(1.0)
        assert fetch(site.port, "/items/1", via)[0] == 200
        assert site.rate_limited == {"p1": 3}
        assert [hit.blocked for hit in site.hits("/items")] == [False, False, True, False, False, True, False]


def test_keep_alive_and_content_length():
    with GuardedSite() as site:
        conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=5)
        for target in ("/items/1", "/status/404", "/echo"):
            conn.request("GET", target)
            response = conn.getresponse()
            assert int(response.headers["Content-Length"]) == len(response.read())
            assert not response.will_close
        conn.request("HEAD", "/items/1")
        response = conn.getresponse()
        assert response.read() == b"" and int(response.headers["Content-Length"]) > 0
        conn.close()


def test_reset_forgets_everything():
    with GuardedSite(budget=0, ip_limit=5) as site:
        sid = sid_of(fetch(site.port, "/items/1")[1])
        site.reset()
        assert (site.requests, site.issued_sids, site.blocked_sids, site.served_items) == ([], set(), set(), set())
        assert fetch(site.port, "/items/1", as_sid(sid))[1]["Set-Cookie"]  # the old sid is unknown now


def test_stop_is_prompt_and_cuts_idle_keep_alive_connections():
    site = GuardedSite().start()
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=5)
    conn.request("GET", "/items/1")
    conn.getresponse().read()
    started = time.monotonic()
    site.stop()
    assert time.monotonic() - started < 3  # does not wait for the idle connection (that would hang)
    conn.request("GET", "/items/2")
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        conn.getresponse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", site.port), timeout=1)
    site.stop()  # idempotent


def test_the_proxy_forwards_tags_and_logs():
    with GuardedSite() as site, ForwardingProxy("p1") as proxy:
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"
        status, _, body = fetch(proxy.port, site.url("/echo?a=1"), {"Cookie": "sid=x", "User-Agent": "ua"})
        assert status == 200
        assert json.loads(body) == {"cookie": "sid=x", "user_agent": "ua", "path": "/echo?a=1", "proxy": "p1"}
        assert proxy.log == [Forwarded("p1", "GET", site.url("/echo?a=1"), "sid=x")]

        status, headers_back, _ = fetch(proxy.port, site.url("/items/3"))
        assert status == 200 and sid_of(headers_back) in site.issued_sids
        assert site.hits("/items")[0].proxy == "p1"

        assert fetch(proxy.port, site.url("/echo"), method="POST", body=b"payload")[0] == 200
        assert fetch(proxy.port, site.url("/status/429?retry_after=2"))[1]["Retry-After"] == "2"
        proxy.reset()
        assert proxy.log == []


def test_the_proxy_keeps_the_client_connection_alive():
    with GuardedSite() as site, ForwardingProxy("p1") as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        for target in ("/cookies/set?name=a&value=1", "/items/1", "/status/404"):
            conn.request("GET", site.url(target))
            response = conn.getresponse()
            assert int(response.headers["Content-Length"]) == len(response.read())
            assert not response.will_close and "Connection" not in response.headers
        conn.close()
        assert [hit.status for hit in site.requests] == [200, 200, 404]


def test_the_proxy_relays_repeated_headers_and_drops_hop_by_hop_ones():
    upstream = socket.create_server(("127.0.0.1", 0))
    received = []

    def answer_once() -> None:
        conn, _ = upstream.accept()
        with conn:
            received.append(conn.recv(65536))
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nConnection: close, X-Drop\r\n"
                b"X-Drop: 1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
            )

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    with upstream, ForwardingProxy("p1") as proxy:
        url = f"http://127.0.0.1:{upstream.getsockname()[1]}/x?y=1"
        sent = {"Proxy-Connection": "keep-alive", "Proxy-Authorization": "Basic eDp5", "X-Mine": "1"}
        status, headers, body = fetch(proxy.port, url, sent)
        thread.join(5)
    assert (status, body) == (200, b"ok")
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert headers["Content-Length"] == "2"
    assert "X-Drop" not in headers and "Transfer-Encoding" not in headers
    request = received[0].decode().lower()
    assert request.startswith("get /x?y=1 http/1.1\r\n")
    assert "x-mine: 1" in request and "x-proxy-name: p1" in request
    assert "proxy-connection" not in request and "proxy-authorization" not in request


def test_the_proxy_requires_matching_credentials():
    with GuardedSite() as site, ForwardingProxy("p1", "user", "pa:ss") as proxy:
        assert proxy.url == f"http://user:pa%3Ass@127.0.0.1:{proxy.port}"
        status, headers, _ = fetch(proxy.port, site.url("/echo"))
        assert (status, headers["Proxy-Authenticate"]) == (407, 'Basic realm="test"')
        wrong = {"Proxy-Authorization": "Basic " + b64encode(b"user:nope").decode()}
        assert fetch(proxy.port, site.url("/echo"), wrong)[0] == 407
        right = {"Proxy-Authorization": "Basic " + b64encode(b"user:pa:ss").decode()}
        status, _, body = fetch(proxy.port, site.url("/echo"), right)
        assert status == 200 and json.loads(body)["proxy"] == "p1"
        assert len(proxy.log) == 1 and site.hits()[0].proxy == "p1"


def test_the_proxy_answers_502_when_upstream_is_down():
    with GuardedSite() as site:
        dead = site.url("/echo")
    with ForwardingProxy("p1") as proxy:
        assert fetch(proxy.port, dead)[0] == 502
        assert fetch(proxy.port, "/relative")[0] == 400


def test_the_proxy_replaces_an_exit_name_the_client_sent_and_forwards_head():
    with GuardedSite() as site, ForwardingProxy("p1") as proxy:
        status, _, body = fetch(proxy.port, site.url("/echo"), {"X-Proxy-Name": "spoofed"})
        assert status == 200 and json.loads(body)["proxy"] == "p1"
        status, headers, body = fetch(proxy.port, site.url("/items/1"), method="HEAD")
        assert (status, body) == (200, b"") and int(headers["Content-Length"]) > 0
        assert [(f.method, f.url) for f in proxy.log] == [("GET", site.url("/echo")), ("HEAD", site.url("/items/1"))]


def test_the_proxy_logs_every_request_of_concurrent_clients():
    with GuardedSite(budget=None) as site, ForwardingProxy("p1") as proxy:
        urls = [site.url(f"/echo?n={n}") for n in range(40)]
        with ThreadPoolExecutor(8) as clients:
            statuses = list(clients.map(lambda url: fetch(proxy.port, url)[0], urls))
        assert statuses == [200] * 40
        assert sorted(f.url for f in proxy.log) == sorted(urls)
        assert len(site.requests) == 40 and {hit.proxy for hit in site.requests} == {"p1"}


def test_the_proxy_tunnels_nothing():
    with ForwardingProxy("p1") as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("CONNECT", "shop.test:443")
        response = conn.getresponse()
        assert response.status == 501  # the tests' sites are plain http://: no CONNECT, no TLS
        conn.close()
        assert proxy.log == []


def test_the_proxy_hangs_up_when_the_site_hangs_up():
    quiet = {"items": 5, "budget": (1, 1), "challenge": False, "slow": 0.0, "flaky": 0.0}
    with BlockSite("session/budget/drop", **quiet) as site, ForwardingProxy("p1") as proxy:
        status, headers, _ = fetch(site.port, "/item/1")
        assert status == 200
        sid = {"Cookie": headers["Set-Cookie"].split(";")[0]}
        with pytest.raises(http.client.RemoteDisconnected):  # over its budget: dropped, no answer
            fetch(site.port, "/item/2", sid)
        with pytest.raises(http.client.RemoteDisconnected):  # through the proxy, the same
            fetch(proxy.port, f"{site.url}/item/3", sid)
        assert [(hit.path, hit.exit, hit.status, hit.blocked) for hit in site.hits] == [
            ("/item/1", "direct", 200, False),
            ("/item/2", "direct", 0, True),
            ("/item/3", "p1", 0, True),
        ]
        assert [f.url for f in proxy.log] == [f"{site.url}/item/3"]


def test_the_proxy_starts_once_stops_promptly_and_cuts_its_client_connections():
    proxy = ForwardingProxy("p1")
    with pytest.raises(RuntimeError, match="never started"):
        _ = proxy.port
    with GuardedSite() as site:
        proxy.start()
        with pytest.raises(RuntimeError, match="already running"):
            proxy.start()
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("GET", site.url("/items/1"))
        conn.getresponse().read()
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 3
        conn.request("GET", site.url("/items/2"))
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
            conn.getresponse()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1)
        proxy.stop()  # idempotent
        assert [hit.path for hit in site.requests] == ["/items/1"]


def test_the_block_site_serves_its_catalogue_and_records_the_exit():
    with BlockSite("exit/budget/403", items=3, categories=1, challenge=False, slow=0.0, flaky=0.0) as site:
        status, _, body = fetch(site.port, "/")
        assert status == 200 and b'href="/category/0"' in body
        status, _, body = fetch(site.port, "/category/0")
        assert [f"/item/{n}".encode() in body for n in (1, 2, 3)] == [True] * 3
        assert fetch(site.port, "/item/2", {"X-Proxy-Name": "p1"})[0] == 200
        assert fetch(site.port, "/nowhere")[0] == 404
        assert [(hit.path, hit.exit, hit.status) for hit in site.hits] == [
            ("/", "direct", 200),
            ("/category/0", "direct", 200),
            ("/item/2", "p1", 200),
            ("/nowhere", "direct", 404),
        ]
        assert site.model.served == {2} and site.url == f"http://127.0.0.1:{site.port}"


def redis_says(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(command + b"\r\n")
        return conn.recv(1024)


def test_the_redis_server_keeps_its_data_across_a_restart(redis_server, tmp_path):
    server = RedisServer(tmp_path).start()  # one of this test's own (redis_server: skipped without the binary)
    try:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert redis_says(server.port, b"SET kept yes") == b"+OK\r\n"
        server.stop()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1)
        server.start()
        assert redis_says(server.port, b"GET kept") == b"$3\r\nyes\r\n"
    finally:
        server.stop()


def test_the_support_servers_import_nothing_from_the_example_project():
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys\n"
        "import tests.support.blocksite, tests.support.proxy, tests.support.redis_server, tests.support.site\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('demo', 'shop')], sorted(sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_example_project_is_importable_only_in_its_own_tests():
    assert not [m for m in sys.modules if m.split(".")[0] == "demo"]  # test_demo_shop's modules went with it
    assert not [p for p in sys.path if "example_project" in p]


def test_the_site_runs_as_a_subprocess_until_sigterm():
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.site", "--port", "0", "--budget", "1"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        sid = sid_of(fetch(port, "/items/1")[1])
        assert fetch(port, "/items/2", as_sid(sid))[0] == 403
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.stdout.close()
