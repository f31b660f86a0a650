"""Browser identities for sessions: a coherent header profile per session, and the curl_cffi
impersonation target that matches it.

:class:`HeaderProfiles` draws profiles with browserforge (real browsers' header statistics) and keeps
only the headers that belong to the identity and so stay the same for every request of a session
(:data:`IDENTITY_HEADERS`). :func:`impersonate_target` names the curl_cffi target (the value for
``meta["impersonate"]`` of scrapy-impersonate) of the same browser, platform and version as a
User-Agent, so that the TLS and HTTP/2 fingerprint of a session does not contradict its headers.

browserforge (the ``fingerprints`` extra) and curl_cffi (the ``impersonate`` extra) are imported
when first needed, so importing this module costs neither.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import random
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any, NamedTuple

__all__ = [
    "BROWSERS",
    "IDENTITY_HEADERS",
    "OPERATING_SYSTEMS",
    "HeaderProfiles",
    "accept_language",
    "decodable_encodings",
    "headers_for_url",
    "impersonate_target",
    "profile_for_target",
    "profile_problems",
    "restrict_accept_encoding",
]

logger = logging.getLogger(__name__)

#: The headers of a profile, as a browser names them; the rest of what a browser sends depends on
#: the request (Sec-Fetch-*, Referer, Cookie, Priority) or on the connection (Host, Connection, TE).
IDENTITY_HEADERS: tuple[str, ...] = (
    "User-Agent",
    "Accept",
    "Accept-Language",
    "Accept-Encoding",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "Upgrade-Insecure-Requests",
)
_IDENTITY = {name.lower(): name for name in IDENTITY_HEADERS}

#: The browsers and the OS browserforge generates profiles of.
BROWSERS = ("chrome", "firefox", "safari", "edge")
OPERATING_SYSTEMS = ("windows", "macos", "linux", "android", "ios")
_DESKTOP = ("windows", "macos", "linux")

#: Draws of browserforge a profile may take before :class:`HeaderProfiles` gives up.
ATTEMPTS = 100

_FORGE_LOCK = threading.Lock()


def _require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` of an optional dependency, or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {exc.name or module}: pip install 'scrapy-sessionpool[{extra}]'") from exc


def _browserforge(module: str = "browserforge.headers") -> ModuleType:
    return _require(module, "fingerprints", "Header profiles")


def _curl_cffi(module: str = "curl_cffi") -> ModuleType:
    return _require(module, "impersonate", "Browser impersonation")


# --- what Scrapy decodes --------------------------------------------------------------------------


def decodable_encodings() -> tuple[str, ...]:
    """The content codings Scrapy's HttpCompressionMiddleware decodes in this install (older Scrapy
    releases decode ``br`` and ``zstd`` only when brotli and zstandard are installed)."""
    from scrapy.downloadermiddlewares.httpcompression import ACCEPTED_ENCODINGS

    return tuple(coding.decode("ascii") for coding in ACCEPTED_ENCODINGS)


def restrict_accept_encoding(value: str, accepted: Iterable[str]) -> str | None:
    """``value`` (an Accept-Encoding) without the codings not in ``accepted``, in its order; None if
    none is left."""
    allowed = {coding.lower() for coding in accepted}
    kept = [token.strip() for token in value.split(",") if token.split(";")[0].strip().lower() in allowed]
    return ", ".join(kept) or None


def accept_language(locales: Sequence[str], browser: str = "chrome") -> str:
    """An Accept-Language for ``locales`` (most wanted first) written as ``browser`` writes it:
    Firefox lowers q by 1/n a language, Chromium and Safari by 0.1 (down to 0.1)."""
    if not locales:
        raise ValueError("at least one locale is needed")
    parts = [locales[0]]
    for index, locale in enumerate(locales[1:], 1):
        q = 1 - index / len(locales) if browser == "firefox" else max(1 - index / 10, 0.1)
        parts.append(f"{locale};q={q:.1f}")
    return ",".join(parts)


# --- User-Agents and curl_cffi targets ------------------------------------------------------------


class _Agent(NamedTuple):
    """What a User-Agent says: the browser family, its version, the device class and the OS."""

    family: str  # chrome, edge, firefox or safari (every browser of iOS is Safari's WebKit)
    version: tuple[int, ...]
    device: str  # desktop, android or ios
    os: str | None  # windows, macos, linux, android, ios or None


class _Target(NamedTuple):
    """One curl_cffi impersonation target."""

    name: str
    family: str
    version: tuple[int, ...]
    device: str
    os: str | None


_VERSION = r"(\d+(?:\.\d+)*)"
_IOS = re.compile(r"\((?:iPhone|iPad|iPod)\b")
_IOS_VERSION = re.compile(r"\bOS (\d+)_(\d+)(?:_(\d+))?\b")
_SAFARI_VERSION = re.compile(rf"\bVersion/{_VERSION}")
_EDGE = re.compile(rf"\bEdg(?:e|A|iOS)?/{_VERSION}")
_FIREFOX = re.compile(rf"\b(?:Firefox|FxiOS)/{_VERSION}")
_CHROME = re.compile(rf"\b(?:Chrome|CriOS|Chromium)/{_VERSION}")
#: Chromium browsers of their own, whose User-Agent still says Chrome: no target of theirs.
_OTHER = re.compile(r"\b(?:OPR|OPT|SamsungBrowser|YaBrowser|UCBrowser|Vivaldi|Opera|CriOS|FxiOS|EdgiOS)/")
_TARGET_NAME = re.compile(r"^(chrome|edge|firefox|safari)(\d+)a?(?:_(ios|android|macos))?$")


def _version(parts: Iterable[int | str]) -> tuple[int, ...]:
    """A version as a tuple, without trailing zeros: 147.0.0.0 is (147,), 26.0.1 is (26, 0, 1)."""
    version = [int(part) for part in parts]
    while len(version) > 1 and version[-1] == 0:
        version.pop()
    return tuple(version)


def _ua_os(user_agent: str) -> str | None:
    for pattern, name in (
        (_IOS, "ios"),
        (re.compile(r"\bAndroid\b"), "android"),
        (re.compile(r"\bWindows\b"), "windows"),
        (re.compile(r"\bMacintosh\b|\bMac OS X\b"), "macos"),
        (re.compile(r"\bLinux\b|\bX11\b|\bCrOS\b"), "linux"),
    ):
        if pattern.search(user_agent):
            return name
    return None


def _parse_user_agent(user_agent: str) -> _Agent | None:
    """The browser a User-Agent names, or None when it is none of Chrome, Edge, Firefox and Safari."""
    os = _ua_os(user_agent)
    if os == "ios":  # WebKit and Apple's TLS stack, whatever the browser
        safari = None if _OTHER.search(user_agent) else _SAFARI_VERSION.search(user_agent)
        ios = _IOS_VERSION.search(user_agent)
        if safari:
            return _Agent("safari", _version(safari.group(1).split(".")), "ios", os)
        if ios:
            return _Agent("safari", _version(part for part in ios.groups() if part), "ios", os)
        return None
    device = "android" if os == "android" else "desktop"
    if match := _EDGE.search(user_agent):
        return _Agent("edge", _version(match.group(1).split(".")), device, os)
    if _OTHER.search(user_agent):
        return None
    if match := _FIREFOX.search(user_agent):
        return _Agent("firefox", _version(match.group(1).split(".")), device, os)
    if match := _CHROME.search(user_agent):
        return _Agent("chrome", _version(match.group(1).split(".")), device, os)
    if "Safari/" in user_agent and (match := _SAFARI_VERSION.search(user_agent)):
        return _Agent("safari", _version(match.group(1).split(".")), device, os)
    return None


def _device(os: str) -> str:
    return os if os in ("ios", "android") else "desktop"


def _target_from_name(name: str) -> _Target | None:
    """A target told by its name alone (curl_cffi releases without a table of targets)."""
    match = _TARGET_NAME.match(name)
    if match is None:  # aliases (chrome), deprecated names (safari15_3), tor
        return None
    family, digits, suffix = match.groups()
    # Safari's are major (two digits) then one digit a part: safari153 is 15.3, safari2601 26.0.1
    version = _version([digits[:2], *digits[2:]] if family == "safari" else [digits])
    device = suffix if suffix in ("ios", "android") else "desktop"
    os = suffix or ("macos" if family == "safari" else None)
    return _Target(name, family, version, device, os)


@functools.cache
def _targets() -> tuple[_Target, ...]:
    """curl_cffi's impersonation targets of Chrome, Edge, Firefox and Safari."""
    names = {member.value for member in _curl_cffi().BrowserType}
    try:  # the table curl_cffi keeps of the browsers it captured: version and OS of each
        table: Sequence[Mapping[str, Any]] = _curl_cffi("curl_cffi.fingerprints").NATIVE_IMPERSONATE_TARGETS
    except (ImportError, AttributeError):
        table = ()
    targets = [
        _Target(row["target_name"], family, _version(str(row["version"]).split(".")), _device(os), os)
        for row in table
        if row.get("target_name") in names
        and (family := str(row.get("browser", "")).lower()) in BROWSERS
        and (os := str(row.get("os", "")).lower())
    ]
    if not targets:
        targets = [target for name in sorted(names) if (target := _target_from_name(name))]
    return tuple(targets)


def _match(agent: _Agent) -> _Target | None:
    """The target of ``agent``'s family and device class (desktop where curl_cffi has none of that
    device), of the highest version not above the agent's (the lowest when all are above); of the
    agent's OS where a version has several (chrome152_macos), else the plainly named one."""
    family = [target for target in _targets() if target.family == agent.family]
    candidates = [target for target in family if target.device == agent.device] or [
        target for target in family if target.device == "desktop"
    ]
    if not candidates:
        return None
    versions = sorted({target.version for target in candidates})
    version = max((v for v in versions if v <= agent.version), default=versions[0])
    return min(
        (target for target in candidates if target.version == version),
        key=lambda target: (target.os != agent.os, "_" in target.name, target.name),
    )


def impersonate_target(user_agent: str) -> str | None:
    """The curl_cffi target (a ``BrowserType`` value) of ``user_agent``'s browser: of the same family
    (Chrome, Edge, Firefox, Safari; any iOS browser is Safari's WebKit) and device class (iOS and
    Android where curl_cffi has targets of them, else desktop), of the closest version not above
    the User-Agent's, or the lowest one if all are above. None for another browser."""
    agent = _parse_user_agent(user_agent)
    target = agent and _match(agent)
    return target.name if target else None


def _within(lag: int, max_lag: int | None) -> bool:
    """Whether a target ``lag`` major versions behind a browser is close enough (None: any behind)."""
    return lag >= 0 and (max_lag is None or lag <= max_lag)


def _impersonable(user_agent: str, max_lag: int | None) -> bool:
    """Whether ``user_agent`` has a target at most ``max_lag`` major versions behind it (none ahead)."""
    agent = _parse_user_agent(user_agent)
    target = agent and _match(agent)
    return bool(agent and target and _within(agent.version[0] - target.version[0], max_lag))


# --- coherence of a profile -----------------------------------------------------------------------

_BRAND = re.compile(r'"([^"]*)";\s*v="([^"]*)"')
_PLATFORMS = {"windows": "Windows", "macos": "macOS", "linux": "Linux", "android": "Android", "ios": "iOS"}


def profile_problems(headers: Mapping[str, str]) -> list[str]:
    """What contradicts the User-Agent in the HTTPS request headers ``headers``: the sec-ch-ua
    brands' versions (Chromium, Google Chrome, Microsoft Edge), sec-ch-ua-mobile and
    sec-ch-ua-platform, or their absence (Chromium sends them since version 90). Empty when coherent."""
    lowered = {name.lower(): value for name, value in headers.items()}
    user_agent = lowered.get("user-agent")
    if not user_agent:
        return ["no User-Agent"]
    problems = []
    chrome, edge = re.search(r"\bChrome/(\d+)", user_agent), re.search(r"\bEdgA?/(\d+)", user_agent)
    hints = lowered.get("sec-ch-ua")
    if (
        chrome
        and int(chrome.group(1)) >= 90
        and not all(lowered.get(name) for name in ("sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform"))
    ):
        problems.append(f"Chrome {chrome.group(1)} without all of sec-ch-ua, sec-ch-ua-mobile, sec-ch-ua-platform")
    if hints is not None:
        brands = dict(_BRAND.findall(hints))
        if chrome is None:
            problems.append("sec-ch-ua, but the User-Agent is not Chromium's")
        elif brands.get("Chromium") != chrome.group(1):
            problems.append(f"sec-ch-ua has Chromium {brands.get('Chromium')}, the User-Agent {chrome.group(1)}")
        if chrome and brands.get("Google Chrome", chrome.group(1)) != chrome.group(1):
            problems.append(f"sec-ch-ua has Google Chrome {brands['Google Chrome']}, the User-Agent {chrome.group(1)}")
        if edge and brands.get("Microsoft Edge") != edge.group(1):
            problems.append(
                f"sec-ch-ua has Microsoft Edge {brands.get('Microsoft Edge')}, the User-Agent {edge.group(1)}"
            )
        elif not edge and "Microsoft Edge" in brands:
            problems.append("sec-ch-ua has Microsoft Edge, but the User-Agent is not Edge's")
    if (mobile := lowered.get("sec-ch-ua-mobile")) is not None and (mobile == "?1") != ("Mobile" in user_agent):
        problems.append(
            f"sec-ch-ua-mobile {mobile} for a User-Agent {'with' if 'Mobile' in user_agent else 'without'} Mobile"
        )
    platform = lowered.get("sec-ch-ua-platform")
    if platform is not None and platform.strip('"') != _PLATFORMS.get(_ua_os(user_agent) or "", "?"):
        problems.append(f"sec-ch-ua-platform {platform} for an OS of {_ua_os(user_agent)}")
    return problems


def headers_for_url(profile: Mapping[str, str], url: str) -> dict[str, str]:
    """The headers of ``profile`` a browser sends to ``url``: client hints (sec-ch-ua*) go to
    ``https://`` URLs only, as browsers send them to secure origins only."""
    secure = url.lower().startswith("https://")
    return {name: value for name, value in profile.items() if secure or not name.lower().startswith("sec-ch-ua")}


# --- profiles -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _drawing_from(rng: random.Random) -> Iterator[None]:
    """Make browserforge draw from ``rng``: its Bayesian networks call ``random.random()`` of the
    ``random`` module, which is swapped for ``rng`` in their module alone, and one draw at a time."""
    network = _browserforge("browserforge.bayesian_network")
    with _FORGE_LOCK:
        if vars(network).get("random") is not random:
            logger.warning("browserforge no longer draws from the random module: its profiles are not seeded")
            yield
            return
        vars(network)["random"] = rng
        try:
            yield
        finally:
            vars(network)["random"] = random


def _identity(raw: Mapping[str, str], locales: Sequence[str], encodings: Iterable[str]) -> dict[str, str]:
    """The identity headers of browserforge's ``raw`` (in its order, named as browsers do), with
    Accept-Language written for ``locales`` and Accept-Encoding cut to ``encodings``."""
    agent = _parse_user_agent(raw.get("User-Agent") or raw.get("user-agent") or "")
    profile: dict[str, str] = {}
    for name, raw_value in raw.items():
        canonical = _IDENTITY.get(name.lower())
        if canonical == "Accept-Language":
            value: str | None = accept_language(locales, agent.family if agent else "chrome")
        elif canonical == "Accept-Encoding":
            value = restrict_accept_encoding(raw_value, encodings)
        else:
            value = raw_value
        if canonical and value:
            profile[canonical] = value
    return profile


def _draw(
    generator: Any,
    rng: random.Random,
    locales: Sequence[str],
    encodings: Iterable[str],
    accept: Callable[[dict[str, str]], bool],
    attempts: int,
) -> dict[str, str] | None:
    """The first coherent profile of ``generator`` that ``accept`` takes, in ``attempts`` draws."""
    for _ in range(attempts):
        try:
            with _drawing_from(rng):
                raw = generator.generate()
        except ValueError as exc:  # strict: browserforge's networks have no browser of these constraints
            logger.debug("browserforge generates no profile: %s", exc)
            return None
        profile = _identity(raw, locales, encodings)
        problems = profile_problems(profile)
        if not problems and accept(profile):
            return profile
        logger.debug("Header profile left out (%s): %s", "; ".join(problems) or "not wanted", profile.get("User-Agent"))
    return None


def _known_versions(forge: ModuleType) -> dict[str, set[tuple[int, ...]]]:
    """The browser versions browserforge has data of, by family (its HTTP/2 data)."""
    known: dict[str, set[tuple[int, ...]]] = {}
    for browser in getattr(forge.HeaderGenerator(), "unique_browsers", ()):
        if browser.name and browser.http_version == "2":
            known.setdefault(browser.name, set()).add(_version(browser.version))
    return known


class HeaderProfiles:
    """New sessions' header profiles: the identity headers of a browser of ``browsers`` on an OS of
    ``os``, drawn by browserforge from ``rng`` (the same seed, the same profiles), with an
    Accept-Language for ``locales`` (most wanted first) and an Accept-Encoding of only the codings
    in ``encodings`` (by default those Scrapy decodes here: :func:`decodable_encodings`).

    With ``impersonate``, only browsers curl_cffi can impersonate come out: each profile's
    :func:`impersonate_target` is at most ``max_lag`` major versions behind its User-Agent (None:
    any version behind). With 0, the default, Edge never comes out: curl_cffi's Edge targets (99,
    101) are far older than browserforge's Edge data.
    """

    def __init__(
        self,
        browsers: Sequence[str] = BROWSERS,
        os: Sequence[str] = _DESKTOP,
        locales: Sequence[str] = ("en-US",),
        rng: random.Random | None = None,
        *,
        impersonate: bool = False,
        max_lag: int | None = 0,
        encodings: Iterable[str] | None = None,
    ) -> None:
        forge = _browserforge()
        if unknown := sorted(set(browsers) - set(BROWSERS)) + sorted(set(os) - set(OPERATING_SYSTEMS)):
            raise ValueError(f"unknown browsers or OS {unknown}: choose among {BROWSERS} and {OPERATING_SYSTEMS}")
        if not browsers or not os:
            raise ValueError("at least one browser and one OS are needed")
        self.browsers, self.os, self.locales = tuple(browsers), tuple(os), tuple(locales)
        accept_language(self.locales)  # rejects no locale at all
        self.rng = rng if rng is not None else random.Random()
        self.encodings = decodable_encodings() if encodings is None else tuple(encodings)
        self.impersonate, self.max_lag = impersonate, max_lag
        specs: list[Any] = list(self.browsers)
        if impersonate:
            specs = self._impersonable_specs(forge)
        self._generator = forge.HeaderGenerator(browser=specs, os=self.os, locale=self.locales, strict=True)

    def _impersonable_specs(self, forge: ModuleType) -> list[Any]:
        """A browserforge Browser for each major version of ``browsers`` that has a target (the
        device and OS of a draw are checked after it: an iOS browser is Safari to curl_cffi)."""
        known = _known_versions(forge)
        targets = _targets()
        specs: list[Any] = []
        for family in self.browsers:
            majors = {version[0] for version in known.get(family, ())}
            target_majors = {target.version[0] for target in targets if target.family == family}
            wanted = sorted(m for m in majors if any(_within(m - t, self.max_lag) for t in target_majors))
            if not wanted:
                logger.warning(
                    "No curl_cffi target within %s major versions of any %s version browserforge knows: %s left out",
                    self.max_lag,
                    family,
                    family,
                )
            specs.extend(forge.Browser(family, min_version=m, max_version=m) for m in wanted)
        if not specs:
            raise ValueError(f"curl_cffi can impersonate none of {self.browsers} as browserforge knows them")
        return specs

    def new(self) -> dict[str, str]:
        """A new profile: the identity headers (:data:`IDENTITY_HEADERS` that the browser sends)."""
        max_lag = self.max_lag
        profile = _draw(
            self._generator,
            self.rng,
            self.locales,
            self.encodings,
            (lambda p: _impersonable(p["User-Agent"], max_lag)) if self.impersonate else (lambda p: True),
            ATTEMPTS,
        )
        if profile is None:
            raise RuntimeError(f"no coherent profile in {ATTEMPTS} draws of browserforge: widen browsers or os")
        return profile


def profile_for_target(
    target: str,
    rng: random.Random | None = None,
    locales: Sequence[str] = ("en-US",),
    encodings: Iterable[str] | None = None,
) -> dict[str, str]:
    """A profile of curl_cffi's ``target`` browser: :func:`impersonate_target` of its User-Agent is
    ``target``. LookupError when browserforge has no data of that browser version (Edge 99 and 101,
    or a Chrome newer than its data), or ``target`` is no curl_cffi target of the four browsers."""
    found = next((t for t in _targets() if t.name == target), None)
    if found is None:
        raise LookupError(f"{target!r} is not a curl_cffi target of {', '.join(BROWSERS)}")
    forge = _browserforge()
    major = found.version[0]
    if not any(version[0] == major for version in _known_versions(forge).get(found.family, ())):
        raise LookupError(f"browserforge has no {found.family} {major} profiles (for {target})")
    if found.device != "desktop":
        os: tuple[str, ...] = (found.device,)
    elif any(
        (t.family, t.version, t.device) == (found.family, found.version, found.device) and t.name != target
        for t in _targets()
    ):
        os = (found.os,) if found.os in OPERATING_SYSTEMS else _DESKTOP  # chrome152 on Windows, chrome152_macos
    else:
        os = ("macos",) if found.family == "safari" else _DESKTOP
    generator = forge.HeaderGenerator(
        browser=[forge.Browser(found.family, min_version=major, max_version=major)],
        os=os,
        locale=tuple(locales),
        strict=True,
    )
    profile = _draw(
        generator,
        rng if rng is not None else random.Random(),
        tuple(locales),
        decodable_encodings() if encodings is None else tuple(encodings),
        lambda p: impersonate_target(p["User-Agent"]) == target,
        ATTEMPTS * 5,
    )
    if profile is None:
        raise LookupError(f"browserforge gave no {found.family} {found.version} profile for {target}")
    return profile
