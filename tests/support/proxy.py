"""The tests' forwarding proxy: a plain-HTTP proxy on 127.0.0.1 that tells the site which exit a request took.

A request in absolute form (``GET http://host:port/path``, as Scrapy sends it through an ``http://``
proxy) goes on to its host with ``X-Proxy-Name: <name>`` added (the sites' stand-in for an exit IP)
and without the hop-by-hop headers (``Proxy-Authorization`` among them); the answer comes back
whole, with a ``Content-Length``, over a client connection that stays open. Each request forwarded
is logged as a :class:`Forwarded`.

What else the tests rely on:

- with a ``username``, a request without the matching ``Proxy-Authorization: Basic ...`` gets 407
  and is neither forwarded nor logged;
- a request not in absolute ``http://`` form gets 400; ``CONNECT`` (an ``https://`` URL) gets 501,
  as the tests' sites are plain HTTP;
- an upstream that cannot be reached, or fails, gets 502; an upstream that hangs up without an
  answer makes the proxy hang up too, so that a client sees the dropped connection a site made.
"""

from __future__ import annotations

import http.client
import threading
from base64 import b64encode
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

from tests.support.server import Header, LocalServer, read_body, send

__all__ = ["Forwarded", "ForwardingProxy"]

#: Seconds the proxy waits for an upstream answer before it answers 502.
UPSTREAM_TIMEOUT = 10

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


@dataclass(frozen=True)
class Forwarded:
    """One request the proxy forwarded: the proxy's name, the method, the absolute URL, the Cookie header."""

    proxy: str
    method: str
    url: str
    cookie: str | None


def _end_to_end(headers: Message) -> list[Header]:
    """``headers`` without the hop-by-hop ones (and those the Connection header names); repeats are kept."""
    named = {token.strip().lower() for value in headers.get_all("Connection", []) for token in value.split(",")}
    return [(name, value) for name, value in headers.items() if name.lower() not in _HOP_BY_HOP | named]


class ForwardingProxy(LocalServer):
    """Forwards GET, HEAD and POST in absolute form to their host, adding ``X-Proxy-Name: <name>``."""

    def __init__(self, name: str, username: str | None = None, password: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.username = username
        self.password = password
        if username is None:
            self._authorization = None
        else:
            self._authorization = "Basic " + b64encode(f"{username}:{password or ''}".encode()).decode()
        self._lock = threading.Lock()
        self._log: list[Forwarded] = []

    @property
    def url(self) -> str:
        """The proxy's URL, with the credentials in it when it has some."""
        if self.username is None:
            return f"http://127.0.0.1:{self.port}"
        user, password = quote(self.username, safe=""), quote(self.password or "", safe="")
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def log(self) -> list[Forwarded]:
        """The requests forwarded so far, oldest first."""
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        """Forget the requests forwarded so far."""
        with self._lock:
            self._log.clear()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = read_body(request)
        if self._authorization is not None and request.headers.get("Proxy-Authorization") != self._authorization:
            send(request, 407, b"proxy authentication required", [("Proxy-Authenticate", 'Basic realm="test"')])
            return
        target = urlsplit(request.path)
        if target.scheme != "http" or not target.hostname:
            send(request, 400, b"absolute http:// URL expected")
            return
        with self._lock:
            self._log.append(Forwarded(self.name, request.command, request.path, request.headers.get("Cookie")))
        try:
            status, headers, payload = self._forward(request, target, body)
        except http.client.RemoteDisconnected:  # the site hung up without an answer: so does the proxy
            request.close_connection = True
            return
        except (OSError, http.client.HTTPException) as exc:
            send(request, 502, f"upstream error: {exc}".encode())
            return
        send(request, status, payload, headers)

    def _forward(
        self, request: BaseHTTPRequestHandler, target: SplitResult, body: bytes
    ) -> tuple[int, list[Header], bytes]:
        """Send the request on to its host; its answer's status, end-to-end headers and whole body."""
        headers = [(name, value) for name, value in _end_to_end(request.headers) if name.lower() != "x-proxy-name"]
        if "Host" not in request.headers:
            headers.append(("Host", target.netloc))
        headers.append(("X-Proxy-Name", self.name))
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=UPSTREAM_TIMEOUT)
        try:
            path = urlunsplit(("", "", target.path or "/", target.query, ""))
            upstream.putrequest(request.command, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                upstream.putheader(name, value)
            upstream.endheaders(body or None)
            response = upstream.getresponse()
            return response.status, _end_to_end(response.msg), response.read()
        finally:
            upstream.close()
