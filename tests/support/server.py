"""The base of the tests' local HTTP servers: HTTP/1.1 with keep-alive on a free port of 127.0.0.1,
served from a daemon thread, with ``start`` / ``stop`` and a context manager.

A server subclasses :class:`LocalServer` and answers each request in ``handle``, usually with
:func:`read_body` and :func:`send`. ``stop`` also cuts the connections still open (idle
keep-alive ones included), so that it is prompt and the port is really closed afterwards.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Header", "LocalServer", "read_body", "send"]

Header = tuple[str, str]


class _Handler(BaseHTTPRequestHandler):
    """Hands every GET, HEAD and POST to the owning server's ``handle``; other methods get 501."""

    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def _dispatch(self) -> None:
        self.server.owner.handle(self)

    do_GET = do_HEAD = do_POST = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    """Remembers its open connections so that ``server_close`` can cut them."""

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
        for connection in connections:  # wakes the handler threads blocked reading an idle connection
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is no news
            super().handle_error(request, client_address)


class LocalServer:
    """A threaded HTTP/1.1 server on 127.0.0.1; subclasses implement :meth:`handle`."""

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (still known after ``stop``, so that a test can probe a stopped server)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} was never started")
        return self._port

    def start(self, port: int = 0) -> Self:
        """Bind ``port`` (0: a free one) and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._server = _Server(port, self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the port and cut the open connections; a no-op when not running."""
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one request (called from a handler thread)."""
        raise NotImplementedError


def read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request body announced by ``Content-Length`` (read, so that the connection stays usable)."""
    return request.rfile.read(int(request.headers.get("Content-Length") or 0))


def send(request: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: Iterable[Header] = ()) -> None:
    """Write one answer, with ``Content-Length`` unless ``headers`` have one; an answer to HEAD has no body."""
    headers = list(headers)
    request.send_response_only(status)
    for name, value in headers:
        request.send_header(name, value)
    if not any(name.lower() == "content-length" for name, _ in headers):
        request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(body)
