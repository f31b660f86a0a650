"""Where pool state lives between runs."""

from .base import MemoryStore, Store

__all__ = ["MemoryStore", "Store"]
