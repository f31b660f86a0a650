"""A plain HTTP forward proxy on 127.0.0.1 that tags what it forwards with its name."""

from __future__ import annotations

import http.client
import threading
from base64 import b64encode
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from urllib.parse import quote, urlsplit, urlunsplit

from .site import Header, LocalServer, read_body, send

HOP_BY_HOP = frozenset(
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
    """One request the proxy forwarded: its name, the method, the absolute URL and the Cookie header sent."""

    proxy: str
    method: str
    url: str
    cookie: str | None


def end_to_end(headers: Message) -> list[Header]:
    """Headers minus hop-by-hop ones (including those the Connection header names); repeats are kept."""
    named = {token.strip().lower() for value in headers.get_all("Connection", []) for token in value.split(",")}
    return [(name, value) for name, value in headers.items() if name.lower() not in HOP_BY_HOP | named]


class ForwardingProxy(LocalServer):
    """Forwards absolute-form GET/HEAD/POST requests upstream, adding `X-Proxy-Name: <name>`.

    With `username` set, requests without matching `Proxy-Authorization: Basic ...` get 407.
    Upstream connection failures are answered with 502.
    """

    def __init__(self, name: str, username: str | None = None, password: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.username = username
        self.password = password
        credentials = f"{username}:{password or ''}".encode()
        self._authorization = None if username is None else f"Basic {b64encode(credentials).decode()}"
        self._lock = threading.Lock()
        self._log: list[Forwarded] = []

    @property
    def url(self) -> str:
        """The proxy URL, with credentials in it when they are set."""
        if self.username is None:
            return f"http://127.0.0.1:{self.port}"
        user, password = quote(self.username, safe=""), quote(self.password or "", safe="")
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def log(self) -> list[Forwarded]:
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
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

        headers = [(n, v) for n, v in end_to_end(request.headers) if n.lower() != "x-proxy-name"]
        if "Host" not in request.headers:
            headers.append(("Host", target.netloc))
        headers.append(("X-Proxy-Name", self.name))
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
        try:
            upstream.putrequest(
                request.command,
                urlunsplit(("", "", target.path or "/", target.query, "")),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in headers:
                upstream.putheader(name, value)
            upstream.endheaders(body or None)
            response = upstream.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            send(request, 502, f"upstream error: {exc}".encode())
            return
        finally:
            upstream.close()
        send(request, response.status, payload, end_to_end(response.msg))
