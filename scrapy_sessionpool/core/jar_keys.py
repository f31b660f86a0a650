"""Scrapy's ``meta["cookiejar"]`` keys with a pool: each key its own session, each session one key.

A request with a ``cookiejar`` key goes out with the session its key holds, while that session
lives; the first request of a key, or the first after its session retired or was rotated away
from, gets a session no other key has held, and the key holds that one. A session a key once
held stays that key's until it retires (it carries the key's cookies): no other key, and no
request without a key, gets it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

__all__ = ["NO_KEY", "JarKeys"]

#: The ``key`` of a request without ``meta["cookiejar"]``.
NO_KEY = object()


class JarKeys:
    def __init__(self) -> None:
        self._session_of: dict[tuple[str | None, Hashable], str] = {}
        self._key_of: dict[str, tuple[str | None, Hashable]] = {}

    def __len__(self) -> int:
        """How many sessions keys hold (the ones they use now and the ones they left)."""
        return len(self._key_of)

    def session_of(self, pool: str | None, key: Hashable) -> str | None:
        """The id of the session bound to ``key`` in ``pool``, if any."""
        return self._session_of.get((pool, key))

    def bind(self, pool: str | None, key: Hashable, session_id: str) -> bool:
        """Let ``key`` hold the session; False (and nothing done) if another key has held it."""
        entry = (pool, key)
        owner = self._key_of.get(session_id)
        if owner is not None and owner != entry:
            return False
        self._session_of[entry] = session_id
        self._key_of[session_id] = entry
        return True

    def forget(self, session_id: str) -> None:
        """The session retired: its key gets a fresh session next time."""
        entry = self._key_of.pop(session_id, None)
        if entry is not None and self._session_of.get(entry) == session_id:
            del self._session_of[entry]

    def avoid(self, pool: str | None, key: Hashable, also: str | None = None) -> Callable[[str], bool] | None:
        """A test for sessions a request of ``key`` must not get: those bound to another key
        (and ``also``, a session it is rotating away from). None when there is none to avoid."""
        if not self._key_of and also is None:
            return None
        key_of = self._key_of
        mine = (pool, key)

        def avoided(session_id: str) -> bool:
            if session_id == also:
                return True
            entry = key_of.get(session_id)
            return entry is not None and entry != mine

        return avoided
