"""What a ban policy concludes from one answer (or failure) of the site."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Verdict", "VerdictKind"]


class VerdictKind(Enum):
    GOOD = "good"  # mark_good()
    BAD = "bad"  # mark_bad(): a server error, a timeout, a connection error
    SESSION_BLOCKED = "session_blocked"  # retire the session, retry on another
    PROXY_BLOCKED = "proxy_blocked"  # cool the exit down, keep its sessions, retry elsewhere
    NEUTRAL = "neutral"  # the session was not really used: give it back untouched


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    reason: str = ""
    retry_after: float | None = None

    @classmethod
    def good(cls) -> Verdict:
        return _GOOD

    @classmethod
    def bad(cls, reason: str) -> Verdict:
        return cls(VerdictKind.BAD, reason)

    @classmethod
    def session_blocked(cls, reason: str) -> Verdict:
        return cls(VerdictKind.SESSION_BLOCKED, reason)

    @classmethod
    def proxy_blocked(cls, reason: str, retry_after: float | None = None) -> Verdict:
        return cls(VerdictKind.PROXY_BLOCKED, reason, retry_after)

    @classmethod
    def neutral(cls, reason: str = "") -> Verdict:
        return cls(VerdictKind.NEUTRAL, reason)


_GOOD = Verdict(VerdictKind.GOOD)
