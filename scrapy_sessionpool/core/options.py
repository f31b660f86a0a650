"""The limits of a session (Apify's ``sessionOptions``), shared by a pool's sessions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["SessionOptions", "is_number"]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class SessionOptions:
    """The limits of a session (Apify's ``sessionOptions``); shared by a pool's sessions."""

    max_age_secs: float = 3000
    max_usage_count: int = 50
    max_error_score: float = 3
    error_score_decrement: float = 0.5

    def __post_init__(self) -> None:
        checks = {
            "max_age_secs": (is_number(self.max_age_secs) and self.max_age_secs > 0, "a number > 0"),
            "max_usage_count": (
                isinstance(self.max_usage_count, int)
                and not isinstance(self.max_usage_count, bool)
                and self.max_usage_count >= 1,
                "an integer >= 1",
            ),
            "max_error_score": (
                is_number(self.max_error_score) and self.max_error_score > 0,
                "a number > 0",
            ),
            "error_score_decrement": (
                is_number(self.error_score_decrement) and self.error_score_decrement >= 0,
                "a number >= 0",
            ),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ValueError(f"session option {name!r}: expected {expected}, got {getattr(self, name)!r}")

    @classmethod
    def coerce(cls, value: SessionOptions | Mapping[str, Any] | None) -> SessionOptions:
        """Accept an instance, a dict of options (as Apify's ``sessionOptions``) or None."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(
                    f"session_options: unknown option(s) {', '.join(map(repr, unknown))}; "
                    f"expected some of {', '.join(sorted(known))}"
                )
            return cls(**value)
        raise TypeError(f"session_options: expected a dict or SessionOptions, got {type(value).__name__}")
