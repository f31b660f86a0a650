"""The memory store; the store interface (``Store``) is the core's (``core.persistence``)."""

from __future__ import annotations

import copy
from typing import Any

from ..core.persistence import Store

__all__ = ["MemoryStore", "Store"]


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
