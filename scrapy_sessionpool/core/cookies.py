"""Cookie state: every cookie a session's jar holds, as a JSON-safe dict and back.

Cookies live in a standard-library :class:`http.cookiejar.CookieJar`, the jar
Scrapy's own cookie code wraps, so domain, path, expiry and Secure are matched
as Scrapy matches them. The state keeps every attribute of a
:class:`~http.cookiejar.Cookie` that the jar can hold (valueless cookies,
host-only cookies, any expiry, ``SameSite`` and other attributes), so a
restored jar sends what the saved one sent.
"""

from __future__ import annotations

import math
from http.cookiejar import Cookie, CookieJar
from typing import Any

from .exceptions import StateError

__all__ = ["cookie_from_state", "cookie_to_state", "jar_cookies", "make_cookie"]

_FIELDS = ("name", "value", "domain", "path", "expires", "secure", "http_only", "host_only")
_HTTP_ONLY = {"HttpOnly": ""}


def make_cookie(
    name: str,
    value: str | None,
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
        rest=dict(_HTTP_ONLY) if http_only else {},
    )


def cookie_to_state(cookie: Cookie) -> dict[str, Any]:
    """A JSON-safe dict of ``cookie``: the common fields always, the rarer ones when they
    differ from what :func:`make_cookie` would make of the common ones."""
    rest: dict[str, Any] = cookie._rest  # type: ignore[attr-defined]  # no public accessor
    state: dict[str, Any] = {
        "name": cookie.name,
        "value": cookie.value,
        "domain": cookie.domain,
        "path": cookie.path,
        "expires": cookie.expires,
        "secure": bool(cookie.secure),
        "http_only": "HttpOnly" in rest,
        "host_only": not cookie.domain_specified,
    }
    if rest and rest != _HTTP_ONLY:
        state["rest"] = dict(rest)  # SameSite and the like, as the site wrote them
    if cookie.version:
        state["version"] = cookie.version
    if cookie.port is not None or cookie.port_specified:
        state["port"] = cookie.port
        state["port_specified"] = bool(cookie.port_specified)
    if cookie.domain_initial_dot != cookie.domain.startswith("."):
        state["domain_initial_dot"] = bool(cookie.domain_initial_dot)
    if not cookie.path_specified:
        state["path_specified"] = False
    if cookie.discard != (cookie.expires is None):
        state["discard"] = bool(cookie.discard)
    for field in ("comment", "comment_url"):
        if getattr(cookie, field) is not None:
            state[field] = getattr(cookie, field)
    if cookie.rfc2109:
        state["rfc2109"] = True
    return state


def cookie_from_state(state: Any, where: str = "cookie") -> Cookie:
    """Rebuild a cookie from :func:`cookie_to_state` output, validating it.

    Raises :class:`~scrapy_sessionpool.core.exceptions.StateError` naming the bad field (never its value).
    """
    if not isinstance(state, dict):
        raise StateError(f"{where}: expected an object, got {type(state).__name__}")
    missing = [f for f in _FIELDS if f not in state]
    if missing:
        raise StateError(f"{where}: missing field(s) {', '.join(missing)}")
    for field in ("name", "domain", "path"):
        if not isinstance(state[field], str):
            raise StateError(f"{where}.{field}: expected a string")
    _check(state, "value", where, (str, type(None)), "a string or null")
    expires = state["expires"]
    if expires is not None and (
        isinstance(expires, bool) or not isinstance(expires, (int, float)) or not _fits_a_float(expires)
    ):
        raise StateError(f"{where}.expires: expected a number of seconds or null")
    for field in ("secure", "http_only", "host_only"):
        _check(state, field, where, bool, "true or false")
    rest = state.get("rest")
    if rest is None:
        rest = dict(_HTTP_ONLY) if state["http_only"] else {}
    elif not isinstance(rest, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in rest.items()
    ):
        raise StateError(f"{where}.rest: expected an object of attribute names to strings or null")
    version = state.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise StateError(f"{where}.version: expected an integer")
    _check(state, "port", where, (str, type(None)), "a string or null")
    for field in ("port_specified", "domain_initial_dot", "path_specified", "discard", "rfc2109"):
        _check(state, field, where, bool, "true or false")
    for field in ("comment", "comment_url"):
        _check(state, field, where, (str, type(None)), "a string or null")
    domain = state["domain"]
    if isinstance(expires, float) and expires.is_integer():
        expires = int(expires)
    return Cookie(
        version=version,
        name=state["name"],
        value=state["value"],
        port=state.get("port"),
        port_specified=state.get("port_specified", False),
        domain=domain,
        domain_specified=not state["host_only"],
        domain_initial_dot=state.get("domain_initial_dot", domain.startswith(".")),
        path=state["path"],
        path_specified=state.get("path_specified", True),
        secure=state["secure"],
        expires=expires,
        discard=state.get("discard", expires is None),
        comment=state.get("comment"),
        comment_url=state.get("comment_url"),
        rest=dict(rest),
        rfc2109=state.get("rfc2109", False),
    )


def _fits_a_float(number: float) -> bool:
    """The jar keeps expiries as ``int(float(expires))``: anything else it cannot hold."""
    try:
        return math.isfinite(float(number))
    except OverflowError:
        return False


def _check(state: dict[str, Any], field: str, where: str, types: Any, expected: str) -> None:
    if field in state and not isinstance(state[field], types):
        raise StateError(f"{where}.{field}: expected {expected}")


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
