"""Proxy slots: which exit a new session takes, and when an exit is cooling down.

A proxy URL stands for one exit IP; ``None`` stands for the machine's own
connection and gets the same health tracking. Pure: no Scrapy, no Twisted.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable

from .exceptions import NoHealthyProxy

__all__ = ["NoHealthyProxy", "ProxyManager", "proxy_label", "redact"]

#: What a proxy URL may look like: ``http(s)://[user:pass@]host[:port]``.
PROXY_URL_RE = re.compile(r"https?://([^@/\s]+@)?[^@/\s:]+(:\d{1,5})?/?")

_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*)(:[^@/\s]*)?@", re.IGNORECASE)


def redact(text: str | None) -> str | None:
    """Hide proxy passwords in ``text``: ``http://user:pass@host`` becomes ``http://user:***@host``."""
    if text is None:
        return None
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def proxy_label(proxy_url: str | None) -> str:
    """``host:port`` of a proxy (no scheme, no credentials), or ``direct``."""
    if proxy_url is None:
        return "direct"
    rest = proxy_url.split("://", 1)[-1]
    return rest.rsplit("@", 1)[-1].rstrip("/")


class ProxyManager:
    """Which exits are cooling down (shared by a crawler's pools), and which one a new session takes.

    How long an exit cools down is the judge's decision (:mod:`.blame`); this only keeps the
    schedule, so that the pools stop handing out an exit's sessions and hand them out again.
    """

    def __init__(self, *, clock: Callable[[], float], rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._until: dict[str | None, float] = {}  # cooling exits -> end of their cool-down
        self._no_new: dict[str | None, float] = {}  # exits that refuse new sessions -> until when
        self._next_due = float("inf")

    # -- picking ----------------------------------------------------------------

    def pick(self, candidates: Iterable[str | None], live_sessions: Callable[[str | None], int]) -> str | None:
        """The healthy candidate with the fewest live sessions (ties broken at random)."""
        best: list[str | None] = []
        fewest = None
        now = self._clock() if self._no_new else 0.0
        for proxy in candidates:
            if proxy in self._until or (self._no_new and self._no_new.get(proxy, 0.0) > now):
                continue
            count = live_sessions(proxy)
            if fewest is None or count < fewest:
                best, fewest = [proxy], count
            elif count == fewest:
                best.append(proxy)
        if not best:
            raise NoHealthyProxy("every proxy is cooling down or refuses new sessions")
        return best[0] if len(best) == 1 else self._rng.choice(best)

    def is_cooling(self, proxy_url: str | None) -> bool:
        return proxy_url in self._until

    @property
    def cooling(self) -> frozenset[str | None]:
        return frozenset(self._until)

    def cooling_until(self, proxy_url: str | None) -> float:
        return self._until.get(proxy_url, 0.0)

    # -- cool-downs ---------------------------------------------------------------

    def cool_down(self, proxy_url: str | None, seconds: float) -> bool:
        """Cool ``proxy_url`` down for ``seconds`` (a cool-down under way is only ever lengthened);
        True when it was not cooling before."""
        until = self._clock() + max(seconds, 0.0)
        new = proxy_url not in self._until
        self._until[proxy_url] = max(self._until.get(proxy_url, 0.0), until)
        self._next_due = min(self._next_due, self._until[proxy_url])
        return new

    def refuse_new(self, proxy_url: str | None, seconds: float) -> None:
        """Make no new session on ``proxy_url`` for ``seconds`` (it refuses new sessions; its own work)."""
        now = self._clock()
        self._no_new = {p: t for p, t in self._no_new.items() if t > now}
        self._no_new[proxy_url] = max(self._no_new.get(proxy_url, 0.0), now + max(seconds, 0.0))

    def refuses_new(self, proxy_url: str | None) -> bool:
        return bool(self._no_new) and self._no_new.get(proxy_url, 0.0) > self._clock()

    def lift(self, proxy_url: str | None) -> bool:
        """End a cool-down now; True when there was one."""
        if self._until.pop(proxy_url, None) is None:
            return False
        self._next_due = min(self._until.values(), default=float("inf"))
        return True

    def due(self) -> list[str | None]:
        """Proxies whose cool-down is over; they are healthy again from now on."""
        now = self._clock()
        if now < self._next_due:
            return []
        ready = [p for p, until in self._until.items() if until <= now]
        for proxy in ready:
            del self._until[proxy]
        self._next_due = min(self._until.values(), default=float("inf"))
        return ready

    def seconds_until_due(self) -> float:
        return max(0.0, self._next_due - self._clock())
