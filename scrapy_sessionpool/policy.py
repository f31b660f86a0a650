"""The ban policy: turns a response or a download error into a :class:`Verdict`.

Subclass :class:`BanPolicy` and name it in ``SESSIONPOOL_BAN_POLICY`` to judge
a site your own way (a soft block in a JSON body, a login page...).
"""

from __future__ import annotations

import email.utils
import math
import time
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response, TextResponse
from scrapy.utils.misc import load_object

from .verdict import Verdict

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

    from .config import PoolSettings

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
    """The default policy, built from settings.

    * 429 or 503 with ``Retry-After`` -> the exit (proxy or own IP) is rate
      limited: cool it down, keep its sessions;
    * a status in ``SESSIONPOOL_BLOCKED_STATUS_CODES`` -> the session is blocked;
    * a page matching one of ``SESSIONPOOL_BAN_PATTERNS`` -> the session is blocked;
    * any other 5xx, and the network errors of ``RETRY_EXCEPTIONS`` -> bad;
    * anything else (including redirects and 404) -> good.
    """

    def __init__(self, settings: PoolSettings, network_errors: tuple[type[BaseException], ...] = ()) -> None:
        self.blocked_status_codes = settings.blocked_status_codes
        self.ban_patterns = settings.ban_patterns
        self.network_errors = network_errors or (OSError, TimeoutError)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BanPolicy:
        from .helpers import get_manager

        errors = tuple(
            load_object(e) if isinstance(e, str) else e for e in crawler.settings.getlist("RETRY_EXCEPTIONS")
        )
        return cls(get_manager(crawler).settings, errors)

    def response_verdict(self, request: Request, response: Response) -> Verdict:
        status = response.status
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get(b"Retry-After"))
            if retry_after is not None:
                return Verdict.proxy_blocked(f"status_{status}", retry_after)
        if status in self.blocked_status_codes:
            return Verdict.session_blocked(f"status_{status}")
        if status >= 500:
            return Verdict.bad(f"status_{status}")
        if self.ban_patterns and isinstance(response, TextResponse) and self._matches(response):
            return Verdict.session_blocked("ban_pattern")
        return Verdict.good()

    def _matches(self, response: TextResponse) -> bool:
        text = response.text
        return any(p.search(text) for p in self.ban_patterns)

    def exception_verdict(self, request: Request, exception: BaseException) -> Verdict:
        if isinstance(exception, IgnoreRequest):
            return Verdict.neutral("ignored")
        if isinstance(exception, self.network_errors):
            return Verdict.bad(type(exception).__name__)
        return Verdict.neutral(type(exception).__name__)


def build_policy(crawler: Crawler, policy_class: Any) -> Any:
    """Instantiate the configured policy class (through ``from_crawler`` when it has one)."""
    from scrapy.utils.misc import build_from_crawler

    return build_from_crawler(policy_class, crawler)
