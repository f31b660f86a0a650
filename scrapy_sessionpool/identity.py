"""A session's identity on its requests: its header profile and the TLS fingerprint of the same browser."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from .fingerprints import headers_for_url, impersonate_target
from .meta import FLAG_HEADERS, FLAG_IMPERSONATE

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

    from .core.session import Session

__all__ = ["IdentityHeaders", "default_headers"]


@functools.lru_cache(maxsize=4096)
def _target(user_agent: str) -> str | None:
    return impersonate_target(user_agent)


def default_headers(crawler: Crawler) -> dict[str, bytes]:
    """What Scrapy's own middlewares put on every request (by lower-case name): such a header
    is not the request's choice, and a session's profile replaces it."""
    from scrapy.downloadermiddlewares.httpcompression import ACCEPTED_ENCODINGS

    given = crawler.settings.getdict("DEFAULT_REQUEST_HEADERS")
    defaults = {str(k).lower(): (v if isinstance(v, bytes) else str(v).encode()) for k, v in given.items()}
    defaults["accept-encoding"] = b", ".join(ACCEPTED_ENCODINGS)
    return defaults


class IdentityHeaders:
    """Puts a session's header profile and ``impersonate`` target on its requests, and takes off
    those a copy of the request got for another session."""

    def __init__(self, crawler: Crawler, *, impersonate: bool) -> None:
        self.defaults = default_headers(crawler)
        self.impersonate = impersonate  # scrapy-impersonate's handler is on

    def apply(self, request: Request, session: Session) -> None:
        meta = request.meta
        if session.headers or FLAG_HEADERS in meta:
            self._profile(request, session)
        if self.impersonate:
            if meta.pop(FLAG_IMPERSONATE, False):
                meta.pop("impersonate", None)
            sent = request.headers.get(b"User-Agent")  # the session's, or the request's own
            target = _target(sent.decode("latin-1")) if sent else None
            if target is not None and "impersonate" not in meta:  # the TLS fingerprint of the same browser
                meta["impersonate"] = target
                meta[FLAG_IMPERSONATE] = True

    def _profile(self, request: Request, session: Session) -> None:
        """The session's header profile on ``request``, but for headers the request set itself
        (Scrapy's defaults, from ``DEFAULT_REQUEST_HEADERS`` and the compression middleware, give way)."""
        meta, headers = request.meta, request.headers
        for name in meta.pop(FLAG_HEADERS, ()):  # a copy made for another session
            default = self.defaults.get(name.lower())
            if default is None:
                headers.pop(name, None)
            else:
                headers[name] = default
        mine = []
        for name, value in headers_for_url(session.headers, request.url).items():
            if name == "User-Agent":
                continue
            current = headers.get(name)
            if current is None or current == self.defaults.get(name.lower()):
                headers[name] = value
                mine.append(name)
        if mine:
            meta[FLAG_HEADERS] = mine
