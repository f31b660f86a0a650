"""A process's copy of a session of a shared pool, and the jar that reports its cookie changes."""

from __future__ import annotations

import json
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any

from ..core.cookies import cookie_to_state, jar_cookies
from ..core.session import Clock, Session
from .schema import cookie_field

if TYPE_CHECKING:
    from ..core.observer import SessionObserver
    from .pool import SharedPool

__all__ = ["RecordingJar", "RemoteSession"]


class RecordingJar(CookieJar):
    """A session's jar that tells the shared pool about every cookie set or cleared."""

    def __init__(self, session: RemoteSession) -> None:
        super().__init__(policy=DefaultCookiePolicy(strict_ns_domain=DefaultCookiePolicy.DomainStrictNonDomain))
        self._session = session
        self.recording = True

    def set_cookie(self, cookie: Cookie) -> None:
        super().set_cookie(cookie)
        if self.recording:
            field = cookie_field(cookie.domain, cookie.path, cookie.name)
            self._session.pool.cookie_changed(self._session, field, json.dumps(cookie_to_state(cookie)))

    def clear(self, domain: str | None = None, path: str | None = None, name: str | None = None) -> None:
        if self.recording and domain is not None and path is not None and name is not None:
            self._session.pool.cookie_changed(self._session, cookie_field(domain, path, name), "")
        super().clear(domain, path, name)

    def replace_all(self, cookies: list[Cookie]) -> None:
        """Put exactly these cookies in the jar (Redis's view), without reporting them back."""
        self.recording = False
        try:
            self.clear()
            for cookie in cookies:
                self.set_cookie(cookie)
        finally:
            self.recording = True


class RemoteSession(Session):
    """A session of a shared pool, as this process knows it: its verbs are those of every session;
    its pool (the observer of all its changes) queues them for Redis."""

    __slots__ = (
        "awaiting_create",
        "cookies_version",
        "fetches",
        "pool",
        "retired_offline",
        "retirement_counted",
        "sent_user_data",
        "user_data_version",
    )

    def __init__(self, pool: SharedPool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool = pool
        super().attach(pool)
        #: the versions of its cookies and user data in Redis that this copy holds (-1: none yet)
        self.cookies_version = self.user_data_version = -1
        self.fetches = 0  #: how many times its data was fetched from Redis
        self.sent_user_data = ""  #: its user data as Redis last heard of it
        self.awaiting_create = False  #: made while Redis was away; its creation has not reached Redis
        self.retired_offline = False  #: retired while Redis was away: only its retirement still matters
        self.retirement_counted = False  #: its retirement went to the manager's count

    def attach(self, observer: SessionObserver | None, *, clock: Clock | None = None) -> None:
        """A shared session always reports to its shared pool (which passes the changes on to the
        local pool it falls back on while Redis is away)."""
        super().attach(self.pool, clock=clock)

    @property
    def cookie_jar(self) -> CookieJar:
        if self._jar is None:
            self._jar = RecordingJar(self)
        return self._jar

    def user_data_json(self) -> str:
        return json.dumps(self._user_data, allow_nan=False) if self._user_data else ""

    def take_counts(self, usage: int, errors: float) -> None:
        """Redis's counts of the session (after the marks of every process)."""
        self._usage_count, self._error_score = usage, errors

    def take_suspicion(self, since: float | None, until: float, strikes: int, condemned: bool) -> None:
        """What every process knows of its suspicion (so that all of them judge it alike)."""
        self._suspected_at, self._sits_out_until, self._strikes, self._condemned = since, until, strikes, condemned

    def wrote(self, kind: str, version: int, fetch: int) -> None:
        """Redis applied this process's cookie or user-data write as ``version``: if no other process
        wrote in between and no fetch replaced this copy since the write (``fetch``), this copy is
        that version (no need to fetch it at the next pick)."""
        if fetch != self.fetches:
            return
        if kind == "cookie" and version == self.cookies_version + 1:
            self.cookies_version = version
        elif kind == "ud" and version == self.user_data_version + 1:
            self.user_data_version = version

    def take_data(self, checked: Session, sent_user_data: str, cookies_version: int, user_data_version: int) -> None:
        """The user data and cookies Redis holds (``checked``: them, validated, in a plain session)."""
        self._user_data = checked.user_data or None
        self.sent_user_data = sent_user_data
        jar = self.cookie_jar
        assert isinstance(jar, RecordingJar)
        jar.replace_all(list(jar_cookies(checked.cookie_jar)))
        self.cookies_version, self.user_data_version = cookies_version, user_data_version
        self.fetches += 1

    def forget_cookies(self) -> None:
        """Drop the jar (a session retired while Redis was away: its cookies go nowhere now)."""
        self._jar = None
