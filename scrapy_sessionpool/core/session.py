"""One user-like identity: a cookie jar, a proxy slot, a User-Agent, user data and scores.

Semantics follow the Apify SDK ``Session`` and Crawlee's, with one deliberate
difference: retirement is final. Nothing called on a retired session makes it
usable again.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any

from . import reasons
from .cookies import cookie_from_state, cookie_to_state, jar_cookies, make_cookie
from .exceptions import StateError
from .options import SessionOptions
from .state import SESSION_ID_RE, check_session_state, state_from_snapshot

if TYPE_CHECKING:
    from .observer import Mark, SessionObserver

__all__ = ["DEFAULT_BLOCKED_STATUS_CODES", "Session", "SessionOptions"]

Clock = Callable[[], float]

DEFAULT_BLOCKED_STATUS_CODES = frozenset({401, 403, 429})


class Session:
    """A user-like identity handed out by a :class:`~scrapy_sessionpool.SessionPool`.

    Create sessions through a pool (``pool.make_session()``) so that they share
    its options and clock; a standalone session works too.
    """

    __slots__ = (
        "__weakref__",
        "_account",
        "_clock",
        "_condemned",
        "_created_at",
        "_error_score",
        "_headers",
        "_id",
        "_initialized",
        "_jar",
        "_leases",
        "_observer",
        "_options",
        "_proxy_url",
        "_retired",
        "_sits_out_until",
        "_strikes",
        "_suspected_at",
        "_usage_count",
        "_user_agent",
        "_user_data",
    )

    def __init__(
        self,
        *,
        id: str | None = None,
        options: SessionOptions | Mapping[str, Any] | None = None,
        proxy_url: str | None = None,
        user_agent: str | None = None,
        user_data: dict[str, Any] | None = None,
        created_at: float | None = None,
        usage_count: int = 0,
        error_score: float = 0.0,
        headers: Mapping[str, str] | None = None,
        account: str | None = None,
        clock: Clock = time.time,
    ) -> None:
        if id is None:
            id = "session_" + secrets.token_urlsafe(16)
        elif not isinstance(id, str) or not SESSION_ID_RE.fullmatch(id):
            raise ValueError(f"session id: expected 1-128 characters of [A-Za-z0-9_.:@-], got {id!r}")
        if user_data is not None and not isinstance(user_data, dict):
            raise TypeError(f"user_data: expected a dict, got {type(user_data).__name__}")
        self._id = id
        self._options = SessionOptions.coerce(options)
        self._clock = clock
        self._created_at = clock() if created_at is None else float(created_at)
        self._usage_count = usage_count
        self._error_score = float(error_score)
        self._proxy_url = proxy_url
        self._user_agent = user_agent
        self._user_data = copy.deepcopy(user_data) if user_data else None  # each session its own
        self._headers = dict(headers) if headers else None
        self._account = account
        self._initialized = False
        self._jar: CookieJar | None = None
        self._retired: str | None = None
        self._suspected_at: float | None = None
        self._sits_out_until = 0.0
        self._strikes = 0
        self._condemned = False
        self._leases = 0
        self._observer: SessionObserver | None = None

    def __repr__(self) -> str:
        state = f"retired:{self._retired}" if self._retired else "live"
        return (
            f"<Session {self._id} {state} usage={self._usage_count}/{self.max_usage_count} "
            f"errors={self._error_score:g}/{self.max_error_score:g}>"
        )

    # -- identity ---------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def proxy_url(self) -> str | None:
        """The proxy this session's requests leave through, for its whole life."""
        return self._proxy_url

    @property
    def user_agent(self) -> str | None:
        return self._user_agent

    @property
    def headers(self) -> Mapping[str, str]:
        """The identity's header profile (User-Agent, Accept-*, client hints), sent with each of its requests."""
        return self._headers or {}

    @property
    def account(self) -> str | None:
        """The label of the account this session is logged in with (see ``SESSIONPOOL_ACCOUNTS``)."""
        return self._account

    @property
    def initialized(self) -> bool:
        """Has the session's init (``SESSIONPOOL_SESSION_INIT``) succeeded? Persisted with the session."""
        return self._initialized

    def set_initialized(self, value: bool = True) -> None:
        self._initialized = value
        if self._observer is not None and self._retired is None:
            self._observer.session_marked(self, "release")  # its pool sees whether it may serve now

    @property
    def user_data(self) -> dict[str, Any]:
        """A JSON-safe dict for the user (a login token, a cart id); persisted with the session."""
        if self._user_data is None:
            self._user_data = {}
        return self._user_data

    @property
    def cookie_jar(self) -> CookieJar:
        """This session's own :class:`http.cookiejar.CookieJar`.

        Cookies without a ``Domain`` attribute go back only to the exact host that set them.
        """
        if self._jar is None:
            self._jar = CookieJar(
                policy=DefaultCookiePolicy(strict_ns_domain=DefaultCookiePolicy.DomainStrictNonDomain)
            )
        return self._jar

    @property
    def cookies(self) -> list[dict[str, Any]]:
        """The session's cookies as JSON-safe dicts (name, value, domain, path, expires, flags)."""
        if self._jar is None:
            return []
        return [cookie_to_state(c) for c in jar_cookies(self._jar, time.time())]

    def set_cookie(
        self,
        name: str,
        value: str,
        *,
        domain: str,
        path: str = "/",
        expires: int | None = None,
        secure: bool = False,
        http_only: bool = False,
    ) -> None:
        """Put a cookie in the jar; a ``domain`` with a leading dot covers subdomains."""
        if not isinstance(domain, str) or not domain.strip("."):
            raise ValueError(f"set_cookie: domain: expected a host name such as 'example.com', got {domain!r}")
        self.cookie_jar.set_cookie(
            make_cookie(name, value, domain=domain, path=path, expires=expires, secure=secure, http_only=http_only)
        )

    # -- limits and counters ----------------------------------------------------

    @property
    def options(self) -> SessionOptions:
        return self._options

    @property
    def max_age_secs(self) -> float:
        return self._options.max_age_secs

    @property
    def max_usage_count(self) -> int:
        return self._options.max_usage_count

    @property
    def max_error_score(self) -> float:
        return self._options.max_error_score

    @property
    def error_score_decrement(self) -> float:
        return self._options.error_score_decrement

    @property
    def created_at(self) -> float:
        return self._created_at

    @property
    def expires_at(self) -> float:
        return self._created_at + self._options.max_age_secs

    @property
    def usage_count(self) -> int:
        return self._usage_count

    @property
    def error_score(self) -> float:
        return self._error_score

    @property
    def suspected_at(self) -> float | None:
        """When a block made the session suspect (its next request decides), or None."""
        return self._suspected_at

    @property
    def sits_out_until(self) -> float:
        """The session is not handed out before this time (0: it is not sitting out)."""
        return self._sits_out_until

    @property
    def strikes(self) -> int:
        """Blocks in a row since the session became suspect."""
        return self._strikes

    @property
    def in_flight(self) -> int:
        """Hand-outs not marked or released yet (requests on their way)."""
        return self._leases

    @property
    def retired_reason(self) -> str | None:
        """Why the session was retired, or None while it is not."""
        return self._retired

    # -- predicates -------------------------------------------------------------

    @property
    def is_blocked(self) -> bool:
        return self._error_score >= self._options.max_error_score

    @property
    def is_expired(self) -> bool:
        return self._clock() >= self.expires_at

    @property
    def is_max_usage_count_reached(self) -> bool:
        return self._usage_count >= self._options.max_usage_count

    @property
    def is_retired(self) -> bool:
        return self._retired is not None

    @property
    def is_suspect(self) -> bool:
        return self._suspected_at is not None

    @property
    def is_condemned(self) -> bool:
        """Blocked again after its wait: retired unless the next answer of another session through
        its exit is blocked too."""
        return self._condemned

    @property
    def is_sitting_out(self) -> bool:
        return self._sits_out_until > self._clock()

    @property
    def is_usable(self) -> bool:
        return self._unusable_reason() is None

    def _unusable_reason(self) -> str | None:
        if self._retired is not None:
            return self._retired
        if self._error_score >= self._options.max_error_score:
            return reasons.ERROR_SCORE
        if self._usage_count >= self._options.max_usage_count:
            return reasons.MAX_USAGE_COUNT
        if self._clock() >= self.expires_at:
            return reasons.EXPIRED
        return None

    # -- the pool's side ---------------------------------------------------------

    def attach(self, observer: SessionObserver | None, *, clock: Clock | None = None) -> SessionObserver | None:
        """Report every change from now on to ``observer`` (the pool that holds the session);
        ``clock``: the pool's clock becomes the session's. Returns the observer before."""
        previous, self._observer = self._observer, observer
        if clock is not None:
            self._clock = clock
        return previous

    def lease(self) -> None:
        """Count a hand-out (released by a mark or :meth:`release`)."""
        self._leases += 1

    # -- verbs ------------------------------------------------------------------

    def mark_good(self) -> None:
        """A successful use: usage +1, error score down by the decrement (never below 0)."""
        if self._retired is not None:
            self._leases = max(self._leases - 1, 0)
            return
        self._usage_count += 1
        if self._error_score > 0:
            self._error_score = max(0.0, self._error_score - self._options.error_score_decrement)
        self._after_use("good")

    def mark_bad(self) -> None:
        """A failed use: usage +1, error score +1. Retires the session once it is unusable."""
        if self._retired is not None:
            self._leases = max(self._leases - 1, 0)
            return
        self._usage_count += 1
        self._error_score += 1
        self._after_use("bad")

    def release(self) -> None:
        """Give back a hand-out that did not use the session (the request never went out)."""
        if self._leases:
            self._leases -= 1
            if self._observer is not None:
                self._observer.session_marked(self, "release")

    def retire(self, reason: str = reasons.MANUAL) -> None:
        """Take the session out of use for good. Calling it again does nothing."""
        if self._retired is not None:
            return
        if self._observer is not None and not self._observer.session_retiring(self, reason):
            return
        self._retired = reason
        if self._observer is not None:
            self._observer.session_retired(self)

    def suspect(self, until: float, *, strikes: int | None = None, condemned: bool = False) -> None:
        """A block the judge cannot blame yet: sit out until ``until``; the next request decides
        (``condemned``: the next answer of another session of its exit decides)."""
        if self._retired is not None:
            return
        if self._suspected_at is None:
            self._suspected_at = self._clock()
        self._strikes = self._strikes + 1 if strikes is None else strikes
        self._sits_out_until = until
        self._condemned = condemned
        if self._observer is not None:
            self._observer.session_suspected(self, "suspect")

    def acquit(self) -> None:
        """The control failed (its exit blocks the others too): it is a plain suspect again."""
        if self._condemned:
            self._condemned = False
            if self._observer is not None:
                self._observer.session_suspected(self, "acquit")

    def clear_suspicion(self) -> None:
        """The session was not to blame: it is handed out as before, at once."""
        if self._suspected_at is None and not self._sits_out_until:
            return
        self._suspected_at, self._sits_out_until, self._strikes = None, 0.0, 0
        self._condemned = False
        if self._observer is not None:
            self._observer.session_suspected(self, "clear")

    def retire_on_blocked_status_codes(self, status: int, blocked_status_codes: Iterable[int] | None = None) -> bool:
        """Retire the session if ``status`` is a blocking code (default 401, 403, 429)."""
        codes = DEFAULT_BLOCKED_STATUS_CODES if blocked_status_codes is None else blocked_status_codes
        if status in codes:
            self.retire(f"status_{status}")
            return True
        return False

    def _after_use(self, mark: Mark) -> None:
        if self._leases:
            self._leases -= 1
        reason = self._unusable_reason()
        if reason is not None:
            self.retire(reason)
            if self._retired is not None:
                return
        if self._observer is not None:
            self._observer.session_marked(self, mark)

    # -- state ------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """A JSON-safe dict of everything that makes this session, but not its limits.

        Cookies that have expired (by the wall clock, as HTTP means it) are left out.
        """
        return state_from_snapshot(self.snapshot())

    def snapshot(self) -> tuple[Any, ...]:
        """The session's state captured now, cheaply; :func:`state_from_snapshot` finishes
        it later, in any thread (cookies are immutable once in the jar, user data is
        encoded here)."""
        user_data = json.dumps(self._user_data, allow_nan=False) if self._user_data else None
        cookies = jar_cookies(self._jar) if self._jar is not None else ()
        suspicion = (
            (self._suspected_at, self._sits_out_until, self._strikes) if self._suspected_at is not None else None
        )
        return (
            self._id,
            self._created_at,
            self._usage_count,
            self._error_score,
            self._proxy_url,
            self._user_agent,
            user_data,
            cookies,
            self._retired,
            suspicion,
            self._headers,
            self._account,
            self._initialized,
        )

    @classmethod
    def from_state(
        cls,
        state: Any,
        *,
        options: SessionOptions | Mapping[str, Any] | None = None,
        clock: Clock = time.time,
        where: str = "session",
        on_problem: Callable[[str, StateError], None] | None = None,
    ) -> Session:
        """Rebuild a session from :meth:`to_state` output; limits come from ``options``.

        Raises :class:`~scrapy_sessionpool.core.exceptions.StateError` naming the bad field. With
        ``on_problem``, a bad cookie is left out instead and reported as ``on_problem("cookie", error)``.
        """
        checked = check_session_state(state, where)
        where = f"{where} {checked.id}"
        session = cls(
            id=checked.id,
            options=options,
            proxy_url=checked.proxy_url,
            user_agent=checked.user_agent,
            created_at=checked.created_at,
            usage_count=checked.usage_count,
            error_score=checked.error_score,
            headers=checked.headers,
            account=checked.account,
            clock=clock,
        )
        session._initialized = checked.initialized
        if checked.user_data:
            session._user_data = checked.user_data
        jar = session.cookie_jar if checked.cookies else None
        for i, cookie_state in enumerate(checked.cookies):
            try:
                cookie = cookie_from_state(cookie_state, f"{where}.cookies[{i}]")
            except StateError as exc:
                if on_problem is None:
                    raise
                on_problem("cookie", exc)
                continue
            jar.set_cookie(cookie)  # type: ignore[union-attr]
        session._retired = checked.retired
        if checked.suspicion is not None:
            session._suspected_at, session._sits_out_until, session._strikes = checked.suspicion
        return session
