"""The store interface: pool state in, pool state out, by key."""

from __future__ import annotations

import copy
from typing import Any, Protocol

__all__ = ["MemoryStore", "Store"]


class Store(Protocol):
    """Keeps JSON-safe pool states by key."""

    def load(self, key: str) -> dict[str, Any] | None:
        """The state saved under ``key``, or None when there is none (or it was unusable)."""

    def save(self, key: str, state: dict[str, Any]) -> None:
        """Save ``state`` under ``key``, replacing what was there."""

    def describe(self, key: str) -> str:
        """Where ``key`` lives, for log lines (no credentials)."""


class MemoryStore:
    """Keeps states in memory: for tests, and for ``SESSIONPOOL_PERSIST_STATE = False``."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def load(self, key: str) -> dict[str, Any] | None:
        state = self.states.get(key)
        return copy.deepcopy(state) if state is not None else None

    def save(self, key: str, state: dict[str, Any]) -> None:
        self.states[key] = copy.deepcopy(state)

    def describe(self, key: str) -> str:
        return f"memory:{key}"
