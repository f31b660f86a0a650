"""Public helpers: a crawler's pools, the session behind a response, a retry on a new session."""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakKeyDictionary

from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.utils.conf import build_component_list
from scrapy.utils.misc import load_object

from .manager import PoolManager
from .meta import (
    FLAG_AWAY_FROM,
    FLAG_PICKED,
    FLAG_SENT_AT,
    META_CHALLENGES,
    META_POOL,
    META_ROTATIONS,
    META_SESSION_ID,
    REDIRECT_KEYS,
    STATS_PREFIX,
)
from .settings import PoolSettings
from .stores import open_store

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from .core.observer import Pool
    from .core.session import Session

__all__ = ["get_manager", "get_pool", "get_pools", "get_session", "retry_with_new_session"]

logger = logging.getLogger(__name__)

_MANAGERS: WeakKeyDictionary[Any, PoolManager] = WeakKeyDictionary()


def _crawler(obj: Crawler | Spider) -> Crawler:
    return cast("Crawler", getattr(obj, "crawler", None) or obj)  # a spider has .crawler; a crawler does not


def get_manager(crawler: Crawler | Spider) -> PoolManager:
    """The crawler's :class:`~scrapy_sessionpool.manager.PoolManager`, built on first use."""
    crawler = _crawler(crawler)
    manager = _MANAGERS.get(crawler)
    if manager is None:
        settings = PoolSettings.from_settings(crawler.settings)
        manager = PoolManager(
            settings,
            stats=stats_writer(crawler),
            store=open_store(settings, crawler.settings) if _extension_enabled(crawler) else None,
            state_key=settings.persist_state_key % {"spider": _spider_name(crawler)},
        )
        if settings.fingerprints:
            manager.profiles = _profiles(crawler, manager)
        spidercls = getattr(crawler, "spidercls", None)
        manager.needs_init = settings.session_init is not None or callable(getattr(spidercls, "init_session", None))
        _MANAGERS[crawler] = manager
    return manager


#: The extension, by name: the helpers may not import it (it imports them).
EXTENSION = "scrapy_sessionpool.extension.SessionPoolExtension"


def _profiles(crawler: Crawler, manager: PoolManager) -> Any:
    """The header profiles of new sessions (``SESSIONPOOL_FINGERPRINTS``); with scrapy-impersonate's
    download handler, only browsers curl_cffi can impersonate."""
    from .fingerprints import HeaderProfiles

    manager.impersonate = impersonating(crawler)
    return HeaderProfiles(
        manager.settings.fingerprint_browsers,
        rng=random.Random(manager.rng.randrange(2**32)),
        impersonate=manager.impersonate,
        max_lag=1,
    )


def impersonating(crawler: Crawler) -> bool:
    """Is scrapy-impersonate's download handler (or a subclass) Scrapy's handler for https?"""
    handlers = crawler.settings.getwithbase("DOWNLOAD_HANDLERS")
    path = handlers.get("https")
    if path is None:
        return False
    try:
        from scrapy_impersonate import ImpersonateDownloadHandler  # type: ignore[import-untyped]
    except ImportError:
        return False
    handler = load_object(path) if isinstance(path, str) else path
    return isinstance(handler, type) and issubclass(handler, ImpersonateDownloadHandler)


def _extension_enabled(crawler: Crawler) -> bool:
    """Is the extension (or a subclass) enabled? Without it the pools are neither restored nor saved."""
    for path in build_component_list(crawler.settings.getwithbase("EXTENSIONS")):
        cls = load_object(path) if isinstance(path, str) else path
        if any(f"{c.__module__}.{c.__qualname__}" == EXTENSION for c in getattr(cls, "__mro__", ())):
            return True
    return False


def _spider_name(crawler: Crawler) -> str:
    """The spider's ``name`` (a spider class without one: its class name)."""
    return getattr(crawler.spidercls, "name", None) or crawler.spidercls.__name__


def stats_writer(crawler: Crawler) -> Any:
    """One function that writes every stat of this package, under ``sessionpool/``."""

    def write(key: str, count: int = 1, *, gauge: bool = False) -> None:
        stats = crawler.stats
        if stats is None:
            return
        if gauge:
            stats.set_value(STATS_PREFIX + key, count)
        else:
            stats.inc_value(STATS_PREFIX + key, count)

    return write


def get_pools(crawler: Crawler | Spider) -> dict[str | None, Pool]:
    """The crawler's pools built so far, by name (``None`` is the default pool)."""
    return get_manager(crawler).pools


def get_pool(crawler: Crawler | Spider, name: str | None = None) -> Pool:
    """The named pool of the crawler (the default pool without a name)."""
    return get_manager(crawler).pool(name)


def get_session(response: Response, crawler: Crawler | Spider) -> Session | None:
    """The session that fetched ``response``, if it is still in its pool.

    In a callback: ``session = get_session(response, self)``; read or write its
    ``user_data``, or ``mark_bad()`` / ``retire()`` it after spotting a soft block.
    """
    session_id = response.meta.get(META_SESSION_ID)
    if session_id is None:
        return None
    return get_manager(crawler).pool(response.meta.get(META_POOL)).find(session_id)


def retry_with_new_session(response: Response, crawler: Crawler | Spider, reason: str = "soft_block") -> Request | None:
    """A copy of the request of ``response`` that will get a different session.

    Counted against ``SESSIONPOOL_MAX_SESSION_ROTATIONS``; None once they are used up.
    Retire the old session yourself if it is to blame.
    """
    if response.request is None:
        raise ValueError("retry_with_new_session: expected a response that came from a request")
    return rotate(response.request, _crawler(crawler), reason)


def rotate(
    request: Request, crawler: Crawler, reason: str, *, keep_session: bool = False, counted: bool = True
) -> Request | None:
    """Retry ``request`` on another session (on the same one with ``keep_session``, for a request
    pinned to a session that was not to blame); None when its rotations are used up (``counted``:
    this one counts against them). A request that reached the block through redirects goes back to
    its first URL."""
    manager = get_manager(crawler)
    rotations = request.meta.get(META_ROTATIONS, 0)
    if not isinstance(rotations, int) or isinstance(rotations, bool) or rotations < 0:
        from .core.exceptions import MetaError

        raise MetaError(f"Request meta {META_ROTATIONS!r}: expected a count (an integer >= 0), got {rotations!r}")
    if counted and rotations >= manager.settings.max_session_rotations:
        return None
    retry_times = request.meta.get("retry_times")
    new = get_retry_request(
        request,
        spider=cast("Spider", crawler.spider),
        reason=reason,
        max_retry_times=(retry_times or 0) + 1,
        stats_base_key=STATS_PREFIX + "rotations",
    )
    assert new is not None
    meta = new.meta
    if retry_times is None:  # rotations are not retries: RETRY_TIMES stays untouched
        del meta["retry_times"]
    else:
        meta["retry_times"] = retry_times
    meta[META_ROTATIONS] = rotations + counted
    meta.pop(META_CHALLENGES, None)
    meta.pop(FLAG_SENT_AT, None)
    if not keep_session:
        away = meta.pop(META_SESSION_ID, None)
        meta.pop(FLAG_PICKED, None)
        if away is not None and "cookiejar" in meta:  # the key moves on to another session
            meta[FLAG_AWAY_FROM] = away
    return restart(new)


def restart(request: Request) -> Request:
    """``request`` back at the first URL of its redirect chain (a chain belongs to one session)."""
    origin = request.meta.get("redirect_urls")
    if not origin:
        return request
    new = request.replace(url=origin[0], dont_filter=True)
    for key in (*REDIRECT_KEYS, FLAG_SENT_AT):
        new.meta.pop(key, None)
    return new
