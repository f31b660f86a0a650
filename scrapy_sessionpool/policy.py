"""The ban policy: turns a response or a download error into a :class:`Verdict`.

Subclass :class:`BanPolicy` and name it in ``SESSIONPOOL_BAN_POLICY`` to judge
a site your own way (a soft block in a JSON body, a login page...).
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.utils.misc import load_object
from scrapy.utils.response import get_meta_refresh

from .core.verdict import Verdict

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

    from .settings import PoolSettings

__all__ = ["BanPolicy", "Verdict", "parse_retry_after"]


def parse_retry_after(value: bytes | str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


class BanPolicy:
    """The default policy, built from settings. It says *what* an answer is; who is to blame
    for a block (the session, its exit, the site) is the judge's call (:mod:`.blame`).

    * a page matching ``SESSIONPOOL_CHALLENGE_PATTERNS``, or a page that sets a cookie and
      refreshes to itself (``<meta http-equiv="refresh">``) -> a challenge: fetched again
      with the same session;
    * a redirect whose ``Location`` matches ``SESSIONPOOL_BLOCK_REDIRECT_PATTERNS``, or leads to
      a page that an earlier redirect led to and that was a ban page -> a block; another redirect
      -> neutral (the page it leads to is judged);
    * a status in ``SESSIONPOOL_BLOCKED_STATUS_CODES`` (401, 403, 429, 503) -> a block,
      with the site's ``Retry-After`` if it sent one;
    * any other 5xx -> bad;
    * a page matching ``SESSIONPOOL_BAN_PATTERNS`` -> a block;
    * anything else (404 included) -> good;
    * a download error: one of ``SESSIONPOOL_BLOCK_EXCEPTIONS`` (a dropped connection) -> a
      block; another of ``RETRY_EXCEPTIONS`` -> bad.
    """

    def __init__(self, settings: PoolSettings, network_errors: tuple[type[BaseException], ...] = ()) -> None:
        self.blocked_status_codes = settings.blocked_status_codes
        self.ban_patterns = settings.ban_patterns
        self.challenge_patterns = settings.challenge_patterns
        self.block_redirect_patterns = settings.block_redirect_patterns
        self.block_exceptions = settings.block_exceptions
        self.network_errors = network_errors or (OSError, TimeoutError)
        self._block_pages: set[str] = set()  # pages (no query) that redirects led to and that were ban pages

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BanPolicy:
        from .helpers import get_manager

        errors = tuple(
            load_object(e) if isinstance(e, str) else e for e in crawler.settings.getlist("RETRY_EXCEPTIONS")
        )
        return cls(get_manager(crawler).settings, errors)

    def response_verdict(self, request: Request, response: Response) -> Verdict:
        status = response.status
        text = response.text if isinstance(response, TextResponse) else None
        if text is not None and (challenge := self._challenge(request, response, text)) is not None:
            return challenge
        if 300 <= status < 400 and (location := response.headers.get(b"Location")):
            target = location.decode("latin-1")
            if any(p.search(target) for p in self.block_redirect_patterns) or (
                self._block_pages and _page_of(response.urljoin(target)) in self._block_pages
            ):
                return Verdict.blocked("redirect")
            return Verdict.neutral("redirect")  # the page it leads to is judged instead
        if status in self.blocked_status_codes:
            return Verdict.blocked(f"status_{status}", parse_retry_after(response.headers.get(b"Retry-After")))
        if status >= 500:
            return Verdict.bad(f"status_{status}")
        if text is not None and self.ban_patterns and any(p.search(text) for p in self.ban_patterns):
            if request.meta.get("redirect_urls") and len(self._block_pages) < MAX_BLOCK_PAGES:
                self._block_pages.add(_page_of(response.url))  # redirects there are blocks from now on
            return Verdict.blocked("ban_pattern")
        return Verdict.good()

    def _challenge(self, request: Request, response: Response, text: str) -> Verdict | None:
        if self.challenge_patterns and any(p.search(text) for p in self.challenge_patterns):
            interval, url = _meta_refresh(response)
            return Verdict.challenge("challenge", url, interval or 0.0)
        if response.status == 200 and b"Set-Cookie" in response.headers:
            interval, url = _meta_refresh(response)
            if interval is not None and (url is None or _same_page(url, request.url)):
                return Verdict.challenge("challenge", None, interval)
        return None

    def exception_verdict(self, request: Request, exception: BaseException) -> Verdict:
        if isinstance(exception, IgnoreRequest):
            return Verdict.neutral("ignored")
        if self.block_exceptions:
            for error in _causes(exception):
                if isinstance(error, self.block_exceptions):
                    return Verdict.blocked(type(error).__name__)
        if isinstance(exception, self.network_errors):
            return Verdict.bad(type(exception).__name__)
        return Verdict.neutral(type(exception).__name__)


def _causes(exception: BaseException, depth: int = 4) -> list[BaseException]:
    """An error and what it wraps: Scrapy 2.14+ raises ``DownloadFailedError`` from Twisted's
    ``ResponseFailed``, which holds the failures of the connection (``ConnectionDone``...)."""
    found = [exception]
    wrapped = [getattr(r, "value", r) for r in getattr(exception, "reasons", None) or ()]
    if exception.__cause__ is not None:
        wrapped.append(exception.__cause__)
    for inner in wrapped:
        if isinstance(inner, BaseException) and depth:
            found.extend(_causes(inner, depth - 1))
    return found


#: Block pages learnt from redirects, at most.
MAX_BLOCK_PAGES = 64

_BARE_REFRESH = re.compile(
    rb"""<meta[^>]+http-equiv\s*=\s*["']?refresh["']?[^>]*content\s*=\s*["']?\s*(\d+(?:\.\d+)?)\s*["'>;]""",
    re.IGNORECASE,
)


def _meta_refresh(response: Response) -> tuple[float | None, str | None]:
    """The ``<meta http-equiv="refresh">`` of an HTML page: its delay and URL (Scrapy's own parser, cached;
    a refresh without a URL, which it skips, reloads the page itself)."""
    if not isinstance(response, HtmlResponse):
        return None, None
    interval, url = get_meta_refresh(response)
    if interval is None and (bare := _BARE_REFRESH.search(response.body[:8192])):
        return float(bare[1]), response.url
    return interval, url


def _page_of(url: str) -> str:
    """A URL without its query and fragment."""
    return url.split("#", 1)[0].split("?", 1)[0]


def _same_page(url: str, other: str) -> bool:
    return url.split("#", 1)[0] == other.split("#", 1)[0]


def build_policy(crawler: Crawler, policy_class: Any) -> Any:
    """Instantiate the configured policy class (through ``from_crawler`` when it has one)."""
    from scrapy.utils.misc import build_from_crawler

    return build_from_crawler(policy_class, crawler)
