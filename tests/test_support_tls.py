"""The tests' TLS servers (:mod:`tests.support.tls`): curl_cffi's impersonation targets and Python's ssl,
each through the recording CONNECT proxy to the local HTTPS server; all on 127.0.0.1."""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from importlib.util import find_spec

import pytest

from tests.support.proxy import Forwarded
from tests.support.site import GuardedSite
from tests.support.tls import (
    ClientHello,
    HTTPSServer,
    TunnelProxy,
    is_grease,
    make_certificate,
    parse_client_hello,
)

needs_curl_cffi = pytest.mark.skipif(
    find_spec("curl_cffi") is None, reason="curl_cffi is not installed (the impersonate extra)"
)

CHROME, FIREFOX = "chrome146", "firefox147"
TLS13, TLS12 = 0x0304, 0x0303
PRE_SHARED_KEY = 41


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def site(certificate) -> Iterator[HTTPSServer]:
    cert_path, key_path, _ = certificate
    with HTTPSServer(cert_path, key_path, set_cookies=["sid=s1; Path=/"]) as server:
        yield server


@pytest.fixture
def proxy() -> Iterator[TunnelProxy]:
    with TunnelProxy("tunnel") as server:
        yield server


def curl_get(target: str, url: str, proxy: TunnelProxy, ca_path, **kwargs):
    """One request of a new curl_cffi session (so a new connection and a full handshake)."""
    from curl_cffi import requests

    with requests.Session(impersonate=target) as session:
        return session.get(url, proxy=proxy.url, verify=str(ca_path), timeout=5, **kwargs)


def python_get(url: str, proxy: TunnelProxy, ca_path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca_path))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"https": proxy.url}), urllib.request.HTTPSHandler(context=context)
    )
    with opener.open(url, timeout=5) as response:
        return response.read()


@needs_curl_cffi
def test_impersonation_targets_have_their_own_stable_client_hello(site, proxy, certificate):
    ca_path = certificate[2]
    for target in (CHROME, CHROME, FIREFOX, FIREFOX):
        response = curl_get(target, site.url("/page"), proxy, ca_path, headers={"X-Test": target}, cookies={"c": "1"})
        assert response.status_code == 200 and response.text == "ok"
    tunnels = proxy.tunnels
    assert [tunnel.target for tunnel in tunnels] == [f"127.0.0.1:{site.port}"] * 4
    chrome, chrome_again, firefox, firefox_again = (tunnel.hello for tunnel in tunnels)
    assert chrome.ja3n() == chrome_again.ja3n()  # Chrome permutes its extensions: JA3 itself may differ
    assert firefox.ja3n() == firefox_again.ja3n() and firefox.ja3() == firefox_again.ja3()
    assert chrome.ja3n() != firefox.ja3n()
    assert chrome.cipher_suites != firefox.cipher_suites
    assert set(chrome.extensions) != set(firefox.extensions)
    for hello in (chrome, firefox):
        assert hello.version == TLS13 and hello.legacy_version == TLS12
        assert hello.alpn == ("h2", "http/1.1")
        assert hello.server_name is None  # no SNI for an IP address
        assert not any(map(is_grease, hello.cipher_suites + hello.extensions + hello.supported_groups))
    assert 0xFE0D in chrome.extensions  # Chrome's ECH (GREASE'd): not in Firefox's JA3N


@needs_curl_cffi
def test_the_server_sees_the_requests_headers_and_cookies(site, proxy, certificate):
    headers = {"User-Agent": "agent/1", "Accept-Language": "de", "X-Test": "yes"}
    response = curl_get(CHROME, site.url("/a?b=1"), proxy, certificate[2], headers=headers, cookies={"c": "1"})
    assert response.cookies.get("sid") == "s1"
    (received,) = site.log
    assert (received.method, received.path, received.cookies) == ("GET", "/a?b=1", {"c": "1"})
    for name, value in headers.items():
        assert received.header(name) == value
    assert received.header("sec-ch-ua-platform") is not None  # curl_cffi's own default headers for the target
    assert received.header("Host") == f"127.0.0.1:{site.port}"


@needs_curl_cffi
def test_a_resumed_session_adds_a_pre_shared_key(certificate, proxy):
    from curl_cffi import requests

    cert_path, key_path, ca_path = certificate
    with HTTPSServer(cert_path, key_path, keep_alive=False) as site, requests.Session(impersonate=CHROME) as session:
        for _ in range(2):
            assert session.get(site.url(), proxy=proxy.url, verify=str(ca_path), timeout=5).status_code == 200
    first, resumed = (tunnel.hello for tunnel in proxy.tunnels)
    assert set(resumed.extensions) == {*first.extensions, PRE_SHARED_KEY}
    assert resumed.ja3n() != first.ja3n()


@needs_curl_cffi
def test_pythons_ssl_has_another_client_hello(site, proxy, certificate):
    ca_path = certificate[2]
    assert python_get(site.url("/py", host="localhost"), proxy, ca_path) == b"ok"
    curl_get(CHROME, site.url(), proxy, ca_path)
    curl_get(FIREFOX, site.url(), proxy, ca_path)
    python, chrome, firefox = (tunnel.hello for tunnel in proxy.tunnels)
    assert python.ja3n() not in {chrome.ja3n(), firefox.ja3n()}
    assert python.server_name == "localhost"
    assert python.version == TLS13
    assert site.log[0].header("User-Agent").startswith("Python-urllib/")


def test_python_alone_through_the_tunnel(site, proxy, certificate):
    assert python_get(site.url("/one"), proxy, certificate[2]) == b"ok"
    (tunnel,) = proxy.tunnels
    assert isinstance(tunnel.hello, ClientHello) and tunnel.hello.ja3n().startswith("771,")
    assert [r.path for r in site.log] == ["/one"]
    proxy.reset()
    assert proxy.tunnels == [] and proxy.log == []


def test_a_client_refusing_the_certificate_gets_no_answer(site, proxy, tmp_path):
    other_ca = make_certificate(tmp_path)[2]
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        python_get(site.url(), proxy, other_ca)
    assert site.log == [] and len(proxy.tunnels) == 1


def test_the_tunnel_proxy_still_forwards_plain_http():
    with GuardedSite() as shop, TunnelProxy("p1") as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        connection.request("GET", shop.url("/items/1"))
        assert connection.getresponse().status == 200
        connection.close()
        assert proxy.log == [Forwarded("p1", "GET", shop.url("/items/1"), None)]
        assert proxy.tunnels == []


def _connect(proxy: TunnelProxy, target: str, authorization: str | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        extra = f"Proxy-Authorization: {authorization}\r\n" if authorization else ""
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extra}\r\n".encode())
        return sock.recv(4096)


def test_connect_asks_for_the_proxys_credentials(site):
    with TunnelProxy("p2", username="user", password="pw") as proxy:
        target = f"127.0.0.1:{site.port}"
        assert _connect(proxy, target).startswith(b"HTTP/1.1 407 ")
        good = "Basic " + b64encode(b"user:pw").decode()
        assert _connect(proxy, target, good).startswith(b"HTTP/1.1 200 ")
        assert _connect(proxy, "nowhere").startswith(b"HTTP/1.1 407 ")
        assert _connect(proxy, "127.0.0.1:1", good).startswith(b"HTTP/1.1 502 ")
        assert _connect(proxy, "no-port", good).startswith(b"HTTP/1.1 400 ")


def test_grease_values():
    assert all(is_grease(value) for value in (0x0A0A, 0x1A1A, 0x7A7A, 0xFAFA))
    assert not any(is_grease(value) for value in (0x0A1A, 0x1301, 0x0000, 0x001D, 0xFE0D))


def test_parse_client_hello_rejects_what_is_not_one():
    with pytest.raises(ValueError, match="truncated"):
        parse_client_hello(b"\x16\x03\x01\x00\x10\x01\x00")
    with pytest.raises(ValueError):
        parse_client_hello(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ValueError, match="not a ClientHello"):
        parse_client_hello(b"\x16\x03\x03\x00\x04\x02\x00\x00\x00")  # a ServerHello's type
