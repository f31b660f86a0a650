"""Exceptions raised by scrapy-sessionpool."""

from __future__ import annotations

__all__ = ["MetaError", "NoHealthyProxy", "PoolFullError", "SessionPoolError", "StateError"]


class SessionPoolError(Exception):
    """Base class of every error raised by this package."""


class StateError(SessionPoolError, ValueError):
    """Persisted state has the wrong shape, type or schema version."""


class PoolFullError(SessionPoolError):
    """A session was added to a pool that has no room left."""


class MetaError(SessionPoolError, ValueError):
    """A ``sessionpool_*`` request meta key has a wrong type or value."""


class NoHealthyProxy(SessionPoolError):
    """No exit may take a new session now (every one is cooling down, or refuses new sessions)."""
