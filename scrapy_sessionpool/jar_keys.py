"""Scrapy's ``meta["cookiejar"]`` keys with a pool: each key its own session, each session one key.

A request with a ``cookiejar`` key goes out with the session its key is bound to, while that
session lives; the first request of a key, or the first after its session retired or was
rotated away from, gets a session no other key holds, and the key is bound to it.
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
        return len(self._session_of)

    def session_of(self, pool: str | None, key: Hashable) -> str | None:
        """The id of the session bound to ``key`` in ``pool``, if any."""
        return self._session_of.get((pool, key))

    def bind(self, pool: str | None, key: Hashable, session_id: str) -> None:
        """Bind ``key`` to the session (and the session to ``key`` alone)."""
        entry = (pool, key)
        old = self._session_of.get(entry)
        if old == session_id:
            return
        if old is not None:
            self._key_of.pop(old, None)
        held = self._key_of.get(session_id)
        if held is not None:
            self._session_of.pop(held, None)
        self._session_of[entry] = session_id
        self._key_of[session_id] = entry

    def forget(self, session_id: str) -> None:
        """The session retired: its key gets a fresh session next time."""
        entry = self._key_of.pop(session_id, None)
        if entry is not None:
            self._session_of.pop(entry, None)

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
