"""Cookie state: a session's cookies as JSON-safe dicts and back.

Cookies live in a standard-library :class:`http.cookiejar.CookieJar`, so
domain, path, expiry, Secure and HttpOnly are matched by the same code that
Scrapy's own cookie middleware uses.
"""

from __future__ import annotations

import math
from http.cookiejar import Cookie, CookieJar
from typing import Any

from .exceptions import StateError

__all__ = ["cookie_from_state", "cookie_to_state", "make_cookie"]

_FIELDS = ("name", "value", "domain", "path", "expires", "secure", "http_only", "host_only")


def make_cookie(
    name: str,
    value: str,
    *,
    domain: str,
    path: str = "/",
    expires: int | None = None,
    secure: bool = False,
    http_only: bool = False,
    host_only: bool | None = None,
) -> Cookie:
    """Build a cookie the way a browser stores one.

    ``host_only`` defaults to True unless ``domain`` starts with a dot, which
    (as in a ``Domain=`` attribute) lets the cookie go to subdomains too.
    """
    if host_only is None:
        host_only = not domain.startswith(".")
    if not host_only and not domain.startswith("."):
        domain = "." + domain
    return Cookie(
        version=0,
        name=name,
        value=value,
        port=None,
        port_specified=False,
        domain=domain,
        domain_specified=not host_only,
        domain_initial_dot=domain.startswith("."),
        path=path,
        path_specified=True,
        secure=secure,
        expires=expires,
        discard=expires is None,
        comment=None,
        comment_url=None,
        rest={"HttpOnly": ""} if http_only else {},
    )


def cookie_to_state(cookie: Cookie) -> dict[str, Any]:
    """Return a JSON-safe dict of the parts of ``cookie`` that matter."""
    return {
        "name": cookie.name,
        "value": cookie.value,
        "domain": cookie.domain,
        "path": cookie.path,
        "expires": cookie.expires,
        "secure": bool(cookie.secure),
        "http_only": cookie.has_nonstandard_attr("HttpOnly"),
        "host_only": not cookie.domain_specified,
    }


def cookie_from_state(state: Any, where: str = "cookie") -> Cookie:
    """Rebuild a cookie from :func:`cookie_to_state` output, validating it."""
    if not isinstance(state, dict):
        raise StateError(f"{where}: expected an object, got {type(state).__name__}")
    missing = [f for f in _FIELDS if f not in state]
    if missing:
        raise StateError(f"{where}: missing field(s) {', '.join(missing)}")
    for field in ("name", "domain", "path"):
        if not isinstance(state[field], str) or not state[field]:
            raise StateError(f"{where}.{field}: expected a non-empty string")
    if not isinstance(state["value"], str):
        raise StateError(f"{where}.value: expected a string")
    expires = state["expires"]
    if expires is not None and (
        isinstance(expires, bool)
        or not isinstance(expires, (int, float))
        or not math.isfinite(expires)
        or not -(2**62) < expires < 2**62
    ):
        raise StateError(f"{where}.expires: expected a finite number of seconds or null")
    for field in ("secure", "http_only", "host_only"):
        if not isinstance(state[field], bool):
            raise StateError(f"{where}.{field}: expected true or false")
    return make_cookie(
        state["name"],
        state["value"],
        domain=state["domain"],
        path=state["path"],
        expires=None if expires is None else int(expires),
        secure=state["secure"],
        http_only=state["http_only"],
        host_only=state["host_only"],
    )


def jar_cookies(jar: CookieJar, now: float | None = None) -> list[Cookie]:
    """The cookies in ``jar`` that have not expired at ``now``, in the jar's order.

    Walks the jar's ``_cookies`` mapping (domain -> path -> name -> cookie),
    a layout the standard library has kept since Python 2; its public iterator
    is several times slower, which matters when saving 100,000 sessions.
    """
    cookies = [
        cookie
        for paths in jar._cookies.values()  # type: ignore[attr-defined]
        for names in paths.values()
        for cookie in names.values()
    ]
    if now is not None:
        cookies = [c for c in cookies if c.expires is None or c.expires > now]
    return cookies
