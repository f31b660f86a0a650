"""Local HTTP/1.1 plumbing shared by the demo and the tests: a threaded server base and a forwarding proxy."""

from __future__ import annotations

import contextlib
import http.client
import socket
import sys
import threading
from base64 import b64encode
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from typing_extensions import Self

Header = tuple[str, str]


class _HTTPServer(ThreadingHTTPServer):
    """Daemon-threaded server that remembers its open connections so `server_close` can cut them."""

    def __init__(self, port: int, owner: LocalServer) -> None:
        self.owner = owner
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # wakes handler threads blocked on idle keep-alive reads
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is not news
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler that hands every GET/HEAD/POST to the owning `LocalServer`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HTTPServer

    def _dispatch(self) -> None:
        self.server.owner.handle(self)

    do_GET = do_HEAD = do_POST = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        pass


class LocalServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 running in a daemon thread; subclasses implement `handle`."""

    def __init__(self) -> None:
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (kept after `stop`, so tests can probe a dead server)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} was never started")
        return self._port

    def start(self, port: int = 0) -> Self:
        """Bind (port 0 picks a free one) and serve in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._httpd = _HTTPServer(port, self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and cut open connections."""
        if self._httpd is None or self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one request (called from a handler thread)."""
        raise NotImplementedError


def read_body(request: BaseHTTPRequestHandler) -> bytes:
    """Read the request body announced by Content-Length (keeps the connection usable)."""
    return request.rfile.read(int(request.headers.get("Content-Length") or 0))


def send(request: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: Iterable[Header] = ()) -> None:
    """Write one response; adds Content-Length unless `headers` has one. HEAD gets no body."""
    headers = list(headers)
    request.send_response_only(status)
    for name, value in headers:
        request.send_header(name, value)
    if not any(name.lower() == "content-length" for name, _ in headers):
        request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(body)


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
        except http.client.RemoteDisconnected:  # the site hung up without an answer: so does the proxy
            request.close_connection = True
            return
        except (OSError, http.client.HTTPException) as exc:
            send(request, 502, f"upstream error: {exc}".encode())
            return
        finally:
            upstream.close()
        send(request, response.status, payload, end_to_end(response.msg))
