"""TLS for the tests' servers: a test CA, an HTTPS :class:`~tests.support.server.LocalServer`, a
CONNECT proxy that keeps each tunnel's TLS ClientHello, and a ClientHello parser (JA3, JA3N).

- :func:`make_certificate` writes a self-signed CA and a server certificate for ``127.0.0.1`` and
  ``localhost`` signed by it; clients verify with the CA file (``verify=ca_path`` in curl_cffi,
  ``ssl.create_default_context(cafile=ca_path)`` in Python);
- :class:`HTTPSServer` answers every GET, HEAD and POST with 200 over TLS (HTTP/1.1 only: it offers
  no ALPN but ``http/1.1``) and logs each request's headers and cookies as a :class:`Received`;
- :class:`TunnelProxy` is a :class:`~tests.support.proxy.ForwardingProxy` that also accepts
  ``CONNECT host:port``: it reads the client's first TLS handshake message (the ClientHello) whole,
  logs it as a :class:`Tunnel`, and then relays the bytes both ways untouched;
- :func:`parse_client_hello` reads such bytes into a :class:`ClientHello`, GREASE values left out.

The servers bind a free port of 127.0.0.1 and serve from daemon threads, as the others do.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import secrets
import socket
import ssl
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

from tests.support.proxy import UPSTREAM_TIMEOUT, ForwardingProxy
from tests.support.server import LocalServer, _Handler, _Server, read_body, send

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "ClientHello",
    "HTTPSServer",
    "Received",
    "Tunnel",
    "TunnelProxy",
    "is_grease",
    "make_certificate",
    "parse_client_hello",
]

_HANDSHAKE = 22  # TLS record content type
_CLIENT_HELLO = 1  # handshake message type


def make_certificate(tmp_dir: Path | str) -> tuple[Path, Path, Path]:
    """Write a test CA and a server certificate for 127.0.0.1 and localhost into ``tmp_dir``;
    returns the paths of the server certificate, its (unencrypted) key and the CA certificate (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(tmp_dir)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scrapy-sessionpool test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path, ca_path = directory / "server.pem", directory / "server-key.pem", directory / "ca.pem"
    cert_path.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, ca_path


class _OwnServer(LocalServer):
    """A :class:`LocalServer` whose ``start`` serves a server of its own making (:meth:`_make_server`)."""

    def _make_server(self, port: int) -> _Server:
        raise NotImplementedError

    def start(self, port: int = 0) -> Self:
        """Bind ``port`` (0: a free one) and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._server = self._make_server(port)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self


class _TLSHandler(_Handler):
    """Completes the TLS handshake in the handler thread, before the request is read."""

    def setup(self) -> None:
        self.request.do_handshake()
        super().setup()


class _TLSServer(_Server):
    """Wraps each accepted connection in TLS (the handshake is left to the handler thread)."""

    def __init__(self, port: int, owner: LocalServer, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(port, owner)
        self.RequestHandlerClass = _TLSHandler

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        return self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ssl.SSLError):  # a client refusing the certificate is no news
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class Received:
    """One request :class:`HTTPSServer` answered: method, path, headers as sent (in order), cookies."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    cookies: dict[str, str]

    def header(self, name: str) -> str | None:
        """The first value of the header ``name`` (any case), or None."""
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


class HTTPSServer(_OwnServer):
    """Answers GET, HEAD and POST over TLS with 200 and ``body``, setting the cookies ``set_cookies``
    (``Set-Cookie`` values) and, with ``new_sid``, a ``sid`` cookie of its own to a request without one;
    logs every request as a :class:`Received`. Without ``keep_alive``, each
    answer closes its connection (so that a client's next request makes a new TLS handshake)."""

    def __init__(
        self,
        cert_path: Path | str,
        key_path: Path | str,
        body: bytes = b"ok",
        set_cookies: Iterable[str] = (),
        keep_alive: bool = True,
        new_sid: bool = False,
    ) -> None:
        super().__init__()
        self.new_sid = new_sid
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_path, key_path)
        self.context.set_alpn_protocols(["http/1.1"])
        self.body = body
        self.set_cookies = list(set_cookies)
        self.keep_alive = keep_alive
        self._lock = threading.Lock()
        self._log: list[Received] = []

    def _make_server(self, port: int) -> _Server:
        return _TLSServer(port, self, self.context)

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        """The URL of ``path`` here (``host`` may be ``localhost``: the certificate names both)."""
        return f"https://{host}:{self.port}{path}"

    @property
    def log(self) -> list[Received]:
        """The requests answered so far, oldest first."""
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        """Forget the requests answered so far."""
        with self._lock:
            self._log.clear()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        read_body(request)
        cookies = SimpleCookie()
        for value in request.headers.get_all("Cookie", []):
            cookies.load(value)
        received = Received(
            request.command,
            request.path,
            tuple(request.headers.items()),
            {name: morsel.value for name, morsel in cookies.items()},
        )
        with self._lock:
            self._log.append(received)
        headers = [("Content-Type", "text/plain"), *(("Set-Cookie", value) for value in self.set_cookies)]
        if self.new_sid and "sid" not in received.cookies:  # a visitor's own cookie, as sites give one
            headers.append(("Set-Cookie", f"sid={secrets.token_hex(8)}; Path=/; Secure; HttpOnly"))
        if not self.keep_alive:
            headers.append(("Connection", "close"))
            request.close_connection = True
        send(request, 200, self.body, headers)


@dataclass(frozen=True)
class Tunnel:
    """One CONNECT tunnel :class:`TunnelProxy` opened: the proxy's name, ``host:port``, and the first
    bytes the client sent through it (its whole ClientHello, when it spoke TLS)."""

    proxy: str
    target: str
    first_bytes: bytes

    @property
    def hello(self) -> ClientHello:
        return parse_client_hello(self.first_bytes)


class _TunnelHandler(_Handler):
    def do_CONNECT(self) -> None:
        cast("TunnelProxy", self.server.owner).tunnel(self)


class _TunnelServer(_Server):
    def __init__(self, port: int, owner: LocalServer) -> None:
        super().__init__(port, owner)
        self.RequestHandlerClass = _TunnelHandler


class TunnelProxy(_OwnServer, ForwardingProxy):
    """A :class:`ForwardingProxy` that also tunnels ``CONNECT`` (with the same ``Proxy-Authorization``
    check) and logs each tunnel's first client bytes as a :class:`Tunnel`."""

    def __init__(self, name: str, username: str | None = None, password: str | None = None) -> None:
        super().__init__(name, username, password)
        self._tunnels: list[Tunnel] = []

    def _make_server(self, port: int) -> _Server:
        return _TunnelServer(port, self)

    @property
    def tunnels(self) -> list[Tunnel]:
        """The tunnels opened so far, oldest first."""
        with self._lock:
            return list(self._tunnels)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._tunnels.clear()

    def tunnel(self, request: BaseHTTPRequestHandler) -> None:
        """Answer ``CONNECT host:port``: 200, then the client's ClientHello is read, logged and relayed."""
        request.close_connection = True  # the connection is the tunnel's from now on
        if self._authorization is not None and request.headers.get("Proxy-Authorization") != self._authorization:
            send(request, 407, b"proxy authentication required", [("Proxy-Authenticate", 'Basic realm="test"')])
            return
        host, _, port = request.path.rpartition(":")
        if not host or not port.isdigit():
            send(request, 400, b"CONNECT host:port expected")
            return
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=UPSTREAM_TIMEOUT)
        except OSError as exc:
            send(request, 502, f"upstream error: {exc}".encode())
            return
        with upstream:
            request.send_response_only(200, "Connection Established")
            request.end_headers()
            first = _read_client_hello(request.rfile)
            with self._lock:
                self._tunnels.append(Tunnel(self.name, request.path, first))
            upstream.settimeout(None)
            with contextlib.suppress(OSError):
                upstream.sendall(first)
            _relay(request, upstream)


def _read_client_hello(stream: IO[bytes]) -> bytes:
    """The TLS records that carry the client's first handshake message, read whole from ``stream``
    (fewer bytes when the client hangs up, or does not speak TLS)."""
    data, fragments = b"", b""
    while True:
        header = stream.read(5)
        data += header
        if len(header) < 5 or header[0] != _HANDSHAKE:
            return data
        fragment = stream.read(int.from_bytes(header[3:5], "big"))
        data, fragments = data + fragment, fragments + fragment
        if not fragment or (len(fragments) >= 4 and len(fragments) >= 4 + int.from_bytes(fragments[1:4], "big")):
            return data


def _relay(request: BaseHTTPRequestHandler, upstream: socket.socket) -> None:
    """Copy bytes both ways until each side has hung up (or the proxy stops)."""

    def downstream() -> None:
        with contextlib.suppress(OSError):
            while chunk := upstream.recv(65536):
                request.connection.sendall(chunk)
            request.connection.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=downstream, name="TunnelProxy-downstream", daemon=True)
    back.start()
    with contextlib.suppress(OSError):
        while chunk := request.rfile.read1(65536):
            upstream.sendall(chunk)
        upstream.shutdown(socket.SHUT_WR)
    back.join(UPSTREAM_TIMEOUT)


def is_grease(value: int) -> bool:
    """Whether ``value`` is one of the GREASE code points of RFC 8701 (0x0a0a, 0x1a1a, ... 0xfafa)."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


class ClientHello(NamedTuple):
    """What a TLS ClientHello offers, GREASE values left out; ``version`` is the highest one offered
    (from ``supported_versions`` when present), ``legacy_version`` the one in the message's header."""

    version: int
    legacy_version: int
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]  # in the order sent
    supported_groups: tuple[int, ...]
    point_formats: tuple[int, ...]
    alpn: tuple[str, ...]
    server_name: str | None

    def ja3(self) -> str:
        """The JA3 string: version,ciphers,extensions,groups,point formats (decimal, dash-joined)."""
        return self._ja3(self.extensions)

    def ja3n(self) -> str:
        """JA3 with the extensions sorted: stable across Chrome's extension order permutation."""
        return self._ja3(tuple(sorted(self.extensions)))

    def _ja3(self, extensions: tuple[int, ...]) -> str:
        fields = (self.cipher_suites, extensions, self.supported_groups, self.point_formats)
        return ",".join([str(self.legacy_version), *("-".join(map(str, values)) for values in fields)])


class _Reader:
    """Reads big-endian integers and length-prefixed blocks off a byte string; ValueError past its end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise ValueError("truncated ClientHello")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def int(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def block(self, length_size: int) -> _Reader:
        return _Reader(self.take(self.int(length_size)))

    def ints(self, size: int) -> tuple[int, ...]:
        return tuple(self.int(size) for _ in range(len(self.data) // size))

    @property
    def done(self) -> bool:
        return self.at >= len(self.data)


def parse_client_hello(data: bytes) -> ClientHello:
    """Parse the TLS records ``data`` (as a client sends them first) into a :class:`ClientHello`."""
    records, handshake = _Reader(data), b""
    while not records.done:
        content_type, _version, fragment = records.int(1), records.int(2), records.block(2).data
        if content_type != _HANDSHAKE:
            break
        handshake += fragment
    message = _Reader(handshake)
    if message.int(1) != _CLIENT_HELLO:
        raise ValueError("not a ClientHello")
    hello = message.block(3)
    legacy_version = hello.int(2)
    hello.take(32)  # random
    hello.block(1)  # session id
    ciphers = hello.block(2).ints(2)
    hello.block(1)  # compression methods
    extensions: list[int] = []
    groups: tuple[int, ...] = ()
    formats: tuple[int, ...] = ()
    versions: tuple[int, ...] = ()
    alpn: list[str] = []
    server_name = None
    body = hello.block(2) if not hello.done else _Reader(b"")
    while not body.done:
        kind, extension = body.int(2), body.block(2)
        extensions.append(kind)
        if kind == 0 and extension.data:  # server_name: a list of (type, name)
            names = extension.block(2)
            names.int(1)
            server_name = names.block(2).data.decode("ascii")
        elif kind == 10:  # supported_groups
            groups = extension.block(2).ints(2)
        elif kind == 11:  # ec_point_formats
            formats = extension.block(1).ints(1)
        elif kind == 16:  # application_layer_protocol_negotiation
            protocols = extension.block(2)
            while not protocols.done:
                alpn.append(protocols.block(1).data.decode("ascii"))
        elif kind == 43:  # supported_versions
            versions = extension.block(1).ints(2)
    offered = [v for v in versions if not is_grease(v)]
    return ClientHello(
        version=max(offered, default=legacy_version),
        legacy_version=legacy_version,
        cipher_suites=tuple(c for c in ciphers if not is_grease(c)),
        extensions=tuple(e for e in extensions if not is_grease(e)),
        supported_groups=tuple(g for g in groups if not is_grease(g)),
        point_formats=formats,
        alpn=tuple(alpn),
        server_name=server_name,
    )
