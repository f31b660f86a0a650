"""Where pool state lives between runs: memory, a directory of JSON files, or Redis."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .base import MemoryStore, Store
from .file import FileStore

if TYPE_CHECKING:
    from ..settings import PoolSettings

__all__ = ["FileStore", "MemoryStore", "Store", "open_store"]


def open_store(settings: PoolSettings, scrapy_settings: Any) -> Store:
    """The store ``SESSIONPOOL_PERSIST_STATE`` and ``SESSIONPOOL_PERSIST_STATE_STORE`` ask for.

    Unset: files under ``JOBDIR/sessionpool`` when the crawl has a ``JOBDIR``, else
    under the project's data directory (``.scrapy/sessionpool``, as the HTTP cache).
    """
    if not settings.persist_state:
        return MemoryStore()
    if settings.redis_url is not None:
        from .redis import RedisStore

        return RedisStore(
            settings.redis_url,
            prefix=settings.redis_prefix,
            ttl=settings.redis_ttl,
            params=settings.redis_params,
            cluster=settings.redis_cluster,
        )
    if settings.persist_state_store is not None:
        return FileStore(settings.persist_state_store)
    jobdir = scrapy_settings.get("JOBDIR")
    if jobdir:
        return FileStore(os.path.join(jobdir, "sessionpool"))
    from scrapy.utils.project import data_path

    return FileStore(data_path("sessionpool"))
