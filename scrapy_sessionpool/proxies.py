"""Proxy slots: which exit a new session takes, and when an exit is cooling down.

A proxy URL stands for one exit IP; ``None`` stands for the machine's own
connection and gets the same health tracking. Pure: no Scrapy, no Twisted.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["NoHealthyProxy", "ProxyHealth", "ProxyManager", "proxy_label", "redact"]

#: What a proxy URL may look like: ``http(s)://[user:pass@]host[:port]``.
PROXY_URL_RE = re.compile(r"https?://([^@/\s]+@)?[^@/\s:]+(:\d{1,5})?/?")

_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*)(:[^@/\s]*)?@", re.I)


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


class NoHealthyProxy(Exception):
    """Every proxy a new session could take is cooling down."""


@dataclass
class ProxyHealth:
    """What is known of one exit: recent blocks, backoff, pacing delay."""

    url: str | None
    cooling_until: float = 0.0
    consecutive_blocks: int = 0
    delay: float = 0.0
    recent_blocks: deque[tuple[float, str]] = field(default_factory=deque)


class ProxyManager:
    """Proxy health shared by a crawler's pools.

    :param block_threshold: blocks of this many different sessions of one
        proxy within ``block_window`` seconds, with no good answer through it
        in between, mean the proxy is blocked (a site that blocks sessions one
        by one keeps answering the others well).
    :param backoff_base, backoff_max: exponential backoff (with jitter) when
        the site gives no ``Retry-After``.
    :param base_delay: the delay every exit has anyway (``DOWNLOAD_DELAY``).
    :param throttle_delay: the least delay an exit gets after a rate block.
        Each rate block doubles the exit's delay (from at least ``base_delay``),
        each good answer eases it off by 2%: the exit settles just under the
        site's limit, as with additive-increase/multiplicative-decrease.
    """

    def __init__(
        self,
        *,
        block_threshold: int = 3,
        block_window: float = 60.0,
        backoff_base: float = 30.0,
        backoff_max: float = 600.0,
        base_delay: float = 0.0,
        throttle_delay: float = 0.2,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self._threshold = block_threshold
        self._window = block_window
        self._base = backoff_base
        self._max = backoff_max
        self._base_delay = base_delay
        self._throttle_delay = throttle_delay
        self._clock = clock
        self._rng = rng or random.Random()
        self._health: dict[str | None, ProxyHealth] = {}
        self._cooling: set[str | None] = set()
        self._next_due = float("inf")

    def health(self, proxy_url: str | None) -> ProxyHealth:
        health = self._health.get(proxy_url)
        if health is None:
            health = self._health[proxy_url] = ProxyHealth(proxy_url)
        return health

    # -- picking ----------------------------------------------------------------

    def pick(self, candidates: Iterable[str | None], live_sessions: Callable[[str | None], int]) -> str | None:
        """The healthy candidate with the fewest live sessions (ties broken at random)."""
        best: list[str | None] = []
        fewest = None
        for proxy in candidates:
            if proxy in self._cooling:
                continue
            count = live_sessions(proxy)
            if fewest is None or count < fewest:
                best, fewest = [proxy], count
            elif count == fewest:
                best.append(proxy)
        if not best:
            raise NoHealthyProxy("every proxy is cooling down")
        return best[0] if len(best) == 1 else self._rng.choice(best)

    def is_cooling(self, proxy_url: str | None) -> bool:
        return proxy_url in self._cooling

    @property
    def cooling(self) -> frozenset[str | None]:
        return frozenset(self._cooling)

    # -- verdicts ---------------------------------------------------------------

    def session_blocked(self, proxy_url: str | None, session_id: str) -> bool:
        """Record a session block; True when blocks of several sessions show the proxy is blocked."""
        now = self._clock()
        health = self.health(proxy_url)
        recent = health.recent_blocks
        recent.append((now, session_id))
        while recent and recent[0][0] <= now - self._window:
            recent.popleft()
        if len({sid for _, sid in recent}) >= self._threshold:
            recent.clear()
            self.cool_down(proxy_url)
            return True
        return False

    def cool_down(self, proxy_url: str | None, retry_after: float | None = None, *, rate_limited: bool = False) -> float:
        """Stop handing out ``proxy_url``'s sessions for a while; return for how long."""
        now = self._clock()
        health = self.health(proxy_url)
        if now < health.cooling_until:
            # more answers of the same block, from requests that were already in flight
            if retry_after is not None:
                health.cooling_until = max(health.cooling_until, now + min(max(retry_after, 0.0), self._max))
                self._next_due = min(self._next_due, health.cooling_until)
            return health.cooling_until - now
        health.consecutive_blocks += 1
        if retry_after is not None:
            pause = min(max(retry_after, 0.0), self._max)
        else:
            ceiling = min(self._max, self._base * 2 ** (health.consecutive_blocks - 1))
            pause = self._rng.uniform(ceiling / 2, ceiling)
        if rate_limited:
            health.delay = max(self._throttle_delay, 2 * max(health.delay, self._base_delay))
        health.cooling_until = max(health.cooling_until, now + pause)
        self._cooling.add(proxy_url)
        self._next_due = min(self._next_due, health.cooling_until)
        return pause

    def success(self, proxy_url: str | None) -> None:
        """A good answer through ``proxy_url``: reset its backoff, ease its delay a little."""
        health = self._health.get(proxy_url)
        if health is None:
            return
        health.consecutive_blocks = 0
        health.recent_blocks.clear()
        if health.delay:
            health.delay *= 0.98
            if health.delay <= self._base_delay:
                health.delay = 0.0

    def delay(self, proxy_url: str | None) -> float:
        health = self._health.get(proxy_url)
        return health.delay if health is not None else 0.0

    def due(self) -> list[str | None]:
        """Proxies whose cool-down is over; they are healthy again from now on."""
        now = self._clock()
        if now < self._next_due:
            return []
        ready = [p for p in self._cooling if self._health[p].cooling_until <= now]
        self._cooling.difference_update(ready)
        self._next_due = min((self._health[p].cooling_until for p in self._cooling), default=float("inf"))
        return ready

    def seconds_until_due(self) -> float:
        return max(0.0, self._next_due - self._clock())
