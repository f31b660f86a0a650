"""A session pool for Scrapy, after the Apify SDK and Crawlee.

The core (:class:`Session`, :class:`SessionPool`) imports neither Scrapy nor
Twisted; the Scrapy components are imported on first use.
"""

from __future__ import annotations

from typing import Any

from .core.exceptions import PoolFullError, SessionPoolError, StateError
from .core.options import SessionOptions
from .core.persistence import open_session_pool
from .core.pool import SessionPool
from .core.session import DEFAULT_BLOCKED_STATUS_CODES, Session
from .core.state import STATE_VERSION

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BLOCKED_STATUS_CODES",
    "STATE_VERSION",
    "Addon",
    "BanPolicy",
    "Judge",
    "PoolFullError",
    "Session",
    "SessionOptions",
    "SessionPool",
    "SessionPoolError",
    "SessionPoolExtension",
    "SessionPoolMiddleware",
    "StateError",
    "Verdict",
    "__version__",
    "get_pool",
    "get_pools",
    "get_session",
    "open_session_pool",
    "retry_with_new_session",
]

# Scrapy-side names, imported lazily so that the core stays free of Scrapy.
_LAZY: dict[str, str] = {
    "Addon": ".addon",
    "Judge": ".core.blame",
    "BanPolicy": ".policy",
    "SessionPoolExtension": ".extension",
    "SessionPoolMiddleware": ".middleware",
    "Verdict": ".core.verdict",
    "get_pool": ".helpers",
    "get_pools": ".helpers",
    "get_session": ".helpers",
    "retry_with_new_session": ".helpers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
