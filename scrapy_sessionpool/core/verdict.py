"""What an answer of the site is (the ban policy says it); who is to blame is the judge's call."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Verdict", "VerdictKind"]


class VerdictKind(Enum):
    GOOD = "good"  # mark_good()
    BAD = "bad"  # mark_bad(): a server error, a timeout
    BLOCKED = "blocked"  # a block signal: the judge decides whether the session, the exit or the site is to blame
    CHALLENGE = "challenge"  # an interstitial: fetch the page again with the same session
    SESSION_BLOCKED = "session_blocked"  # the policy is sure: retire the session, retry on another
    PROXY_BLOCKED = "proxy_blocked"  # the policy is sure: cool the exit down, keep its sessions
    NEUTRAL = "neutral"  # the session was not really used: give it back untouched


@dataclass(frozen=True)
class Verdict:
    """One answer, judged. ``reason`` names the signal (``status_403``, ``ban_pattern``...);
    ``retry_after`` is the site's own wait in seconds; a challenge may carry the ``url`` to fetch
    next and the ``delay`` to wait first (a meta refresh)."""

    kind: VerdictKind
    reason: str = ""
    retry_after: float | None = None
    url: str | None = None
    delay: float = 0.0

    @classmethod
    def good(cls) -> Verdict:
        return _GOOD

    @classmethod
    def bad(cls, reason: str) -> Verdict:
        return cls(VerdictKind.BAD, reason)

    @classmethod
    def blocked(cls, reason: str, retry_after: float | None = None) -> Verdict:
        """A block signal; the judge blames the session, its exit or the site from what the others see."""
        return cls(VerdictKind.BLOCKED, reason, retry_after)

    @classmethod
    def challenge(cls, reason: str = "challenge", url: str | None = None, delay: float = 0.0) -> Verdict:
        """A page that asks the client to come back: fetched again (``url``, default the same) with the
        same session after ``delay`` seconds, a few times at most, then counted as a block."""
        return cls(VerdictKind.CHALLENGE, reason, None, url, delay)

    @classmethod
    def session_blocked(cls, reason: str) -> Verdict:
        """The session is to blame, whatever the others see: retire it."""
        return cls(VerdictKind.SESSION_BLOCKED, reason)

    @classmethod
    def proxy_blocked(cls, reason: str, retry_after: float | None = None) -> Verdict:
        """The exit is to blame, whatever the others see: cool it down, keep its sessions."""
        return cls(VerdictKind.PROXY_BLOCKED, reason, retry_after)

    @classmethod
    def neutral(cls, reason: str = "") -> Verdict:
        return cls(VerdictKind.NEUTRAL, reason)


_GOOD = Verdict(VerdictKind.GOOD)
