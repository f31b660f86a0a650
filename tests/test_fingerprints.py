"""Header profiles (browserforge) and impersonation targets (curl_cffi): :mod:`scrapy_sessionpool.fingerprints`.

The tests of profiles need browserforge (the ``fingerprints`` extra), those of targets curl_cffi
(the ``impersonate`` extra); the rest run without either. The target table is curl_cffi 0.17's.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import subprocess
import sys
import zlib
from importlib.util import find_spec

import pytest
from scrapy import Request, Spider
from scrapy.downloadermiddlewares.httpcompression import ACCEPTED_ENCODINGS, HttpCompressionMiddleware
from scrapy.http import Response
from scrapy.utils.test import get_crawler

from scrapy_sessionpool import fingerprints
from scrapy_sessionpool.fingerprints import (
    IDENTITY_HEADERS,
    OPERATING_SYSTEMS,
    HeaderProfiles,
    accept_language,
    decodable_encodings,
    headers_for_url,
    impersonate_target,
    profile_for_target,
    profile_problems,
    restrict_accept_encoding,
)

needs_browserforge = pytest.mark.skipif(
    find_spec("browserforge") is None, reason="browserforge is not installed (the fingerprints extra)"
)
needs_curl_cffi = pytest.mark.skipif(
    find_spec("curl_cffi") is None, reason="curl_cffi is not installed (the impersonate extra)"
)

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"
)
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36"
)
CHROME_LINUX = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36"
)
EDGE_WIN = CHROME_WIN + " Edg/{v}.0.0.0"
EDGE_ANDROID = CHROME_ANDROID + " EdgA/{v}.0.0.0"
FIREFOX_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:{v}.0) Gecko/{v}.0 Firefox/{v}.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/{v} Safari/605.1.15"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS {os} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/{v} Mobile/15E148 Safari/604.1"
)
CHROME_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS {os} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/{v}.0.6099.119 Mobile/15E148 Safari/604.1"
)


# --- Accept-Encoding, Accept-Language: no optional dependency ---------------------------------------


def test_decodable_encodings_are_those_of_scrapys_compression_middleware():
    assert decodable_encodings() == tuple(coding.decode() for coding in ACCEPTED_ENCODINGS)
    assert {"gzip", "deflate"} <= set(decodable_encodings())


def test_restrict_accept_encoding_keeps_the_browsers_order():
    assert restrict_accept_encoding("gzip, deflate, br, zstd", ["gzip", "deflate"]) == "gzip, deflate"
    assert restrict_accept_encoding("br, gzip;q=0.8, zstd", ["GZIP", "br"]) == "br, gzip;q=0.8"
    assert restrict_accept_encoding("gzip, deflate, br, zstd", ["zstd", "br", "gzip"]) == "gzip, br, zstd"
    assert restrict_accept_encoding("br, zstd", ["gzip"]) is None


def test_accept_language_as_each_browser_writes_it():
    assert accept_language(["en-US"]) == "en-US"
    assert accept_language(["en-US", "en", "de"]) == "en-US,en;q=0.9,de;q=0.8"
    assert accept_language(["en-US", "en"], "firefox") == "en-US,en;q=0.5"
    assert accept_language(["de", "en-US", "en"], "firefox") == "de,en-US;q=0.7,en;q=0.3"
    assert accept_language([f"l{n}" for n in range(12)]).endswith("l10;q=0.1,l11;q=0.1")
    with pytest.raises(ValueError, match="locale"):
        accept_language([])


# --- coherence of a profile ------------------------------------------------------------------------

CHROME_147 = {
    "sec-ch-ua": '"Google Chrome";v="147", "Not.A/Brand";v="8", "Chromium";v="147"',
    "sec-ch-ua-mobile": "?0",
    "sec-ch-ua-platform": '"Windows"',
    "User-Agent": CHROME_WIN.format(v=147),
}


def test_a_coherent_chrome_profile_has_no_problem():
    assert profile_problems(CHROME_147) == []
    edge = {**CHROME_147, "User-Agent": EDGE_WIN.format(v=147)}
    edge["sec-ch-ua"] = '"Microsoft Edge";v="147", "Not.A/Brand";v="8", "Chromium";v="147"'
    assert profile_problems(edge) == []
    assert profile_problems({"User-Agent": FIREFOX_WIN.format(v=150)}) == []


def test_profile_problems_finds_what_contradicts_the_user_agent():
    # as browserforge 1.2.4 draws it now and then for Chrome 107: client hints of another browser
    drawn = {
        "sec-ch-ua": '"Chromium";v="147", "Not.A/Brand";v="8"',
        "sec-ch-ua-mobile": "?0",
        "sec-ch-ua-platform": '"Linux"',
        "User-Agent": CHROME_MAC.format(v=107),
    }
    assert profile_problems(drawn) == [
        "sec-ch-ua has Chromium 147, the User-Agent 107",
        'sec-ch-ua-platform "Linux" for an OS of macos',
    ]
    assert profile_problems({**CHROME_147, "sec-ch-ua-mobile": "?1"}) == [
        "sec-ch-ua-mobile ?1 for a User-Agent without Mobile"
    ]
    assert profile_problems({"User-Agent": CHROME_LINUX.format(v=101)}) == [
        "Chrome 101 without all of sec-ch-ua, sec-ch-ua-mobile, sec-ch-ua-platform"
    ]
    assert profile_problems({**CHROME_147, "User-Agent": FIREFOX_WIN.format(v=150)}) == [
        "sec-ch-ua, but the User-Agent is not Chromium's"
    ]
    assert profile_problems({**CHROME_147, "User-Agent": EDGE_WIN.format(v=147)}) == [
        "sec-ch-ua has Microsoft Edge None, the User-Agent 147"
    ]
    assert profile_problems({"Accept": "*/*"}) == ["no User-Agent"]


def test_client_hints_go_to_https_urls_only():
    profile = {"User-Agent": "ua", "Accept": "*/*", **CHROME_147}
    assert headers_for_url(profile, "https://example.com/") == profile
    assert headers_for_url(profile, "http://example.com/") == {"User-Agent": CHROME_147["User-Agent"], "Accept": "*/*"}


# --- profiles --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drawn() -> list[dict[str, str]]:
    profiles = HeaderProfiles(os=OPERATING_SYSTEMS, locales=("en-US", "en", "de"), rng=random.Random(7))
    return [profiles.new() for _ in range(300)]


def _majors(user_agent: str) -> dict[str, str]:
    return dict(re.findall(r"\b(Chrome|Edg|EdgA|Firefox)/(\d+)", user_agent))


@needs_browserforge
def test_profiles_hold_identity_headers_only(drawn):
    for profile in drawn:
        assert set(profile) <= set(IDENTITY_HEADERS)
        assert {"User-Agent", "Accept", "Accept-Language", "Accept-Encoding"} <= set(profile)
        assert not any(name.lower().startswith(("sec-fetch", "host", "cookie", "connection", "te")) for name in profile)
    assert any("sec-ch-ua" in profile for profile in drawn)
    assert any("sec-ch-ua" not in profile for profile in drawn)  # Firefox and Safari send none


@needs_browserforge
def test_profiles_are_coherent(drawn):
    families = set()
    for profile in drawn:
        assert profile_problems(profile) == [], profile
        user_agent, majors = profile["User-Agent"], _majors(profile["User-Agent"])
        if "sec-ch-ua" in profile:  # Chromium: the brands' versions are the User-Agent's
            brands = dict(re.findall(r'"([^"]*)";v="(\d+)"', profile["sec-ch-ua"]))
            assert brands["Chromium"] == majors["Chrome"]
            if "Edg" in majors:
                assert brands["Microsoft Edge"] == majors["Edg"]
            assert profile["sec-ch-ua-mobile"] == ("?1" if "Mobile" in user_agent else "?0")
        families.add(fingerprints._parse_user_agent(user_agent).family)
        expected = "firefox" if "Firefox/" in user_agent else "chrome"
        assert profile["Accept-Language"] == accept_language(["en-US", "en", "de"], expected)
    assert families == {"chrome", "edge", "firefox", "safari"}


@needs_browserforge
def test_os_and_browsers_are_kept_to():
    profiles = HeaderProfiles(browsers=("firefox",), os=("linux",), rng=random.Random(3))
    for _ in range(20):
        user_agent = profiles.new()["User-Agent"]
        assert "Firefox/" in user_agent and "Linux" in user_agent
    with pytest.raises(ValueError, match="opera"):
        HeaderProfiles(browsers=("opera",))


def _compress(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "br":
        return pytest.importorskip("brotli").compress(data)
    for module in ("compression.zstd", "backports.zstd", "zstandard"):
        if find_spec(module.split(".")[0]) is not None:
            try:
                return __import__(module, fromlist=["compress"]).compress(data)
            except ImportError:
                continue
    pytest.skip("no zstd compressor")


def _decode(middleware: HttpCompressionMiddleware, request: Request, response: Response, spider: Spider) -> Response:
    try:
        return middleware.process_response(request, response)  # Scrapy >= 2.14
    except TypeError:
        return middleware.process_response(request, response, spider)


@needs_browserforge
def test_scrapy_decodes_every_accepted_encoding(drawn):
    offered = {coding.strip() for profile in drawn for coding in profile["Accept-Encoding"].split(",")}
    assert offered <= set(decodable_encodings())
    assert "gzip" in offered
    crawler = get_crawler(Spider)
    spider = crawler._create_spider("fingerprints")
    middleware = HttpCompressionMiddleware.from_crawler(crawler)
    for coding in sorted(offered):
        request = Request("https://example.com/")
        response = Response(
            "https://example.com/", body=_compress(coding, b"hello" * 100), headers={"Content-Encoding": coding}
        )
        assert _decode(middleware, request, response, spider).body == b"hello" * 100, coding


@needs_browserforge
def test_accept_encoding_is_cut_to_the_encodings_given():
    profiles = HeaderProfiles(browsers=("chrome",), rng=random.Random(1), encodings=("deflate", "gzip"))
    assert {profiles.new()["Accept-Encoding"] for _ in range(10)} == {"gzip, deflate"}
    profiles = HeaderProfiles(browsers=("chrome",), rng=random.Random(1), encodings=())
    assert "Accept-Encoding" not in profiles.new()


@needs_browserforge
def test_the_same_seed_draws_the_same_profiles():
    state = random.getstate()
    first = [HeaderProfiles(os=OPERATING_SYSTEMS, rng=random.Random(42)).new() for _ in range(3)]
    draws = HeaderProfiles(os=OPERATING_SYSTEMS, rng=random.Random(42))
    again = HeaderProfiles(os=OPERATING_SYSTEMS, rng=random.Random(42))
    assert first == [HeaderProfiles(os=OPERATING_SYSTEMS, rng=random.Random(42)).new() for _ in range(3)]
    series = [draws.new() for _ in range(30)]
    assert series == [again.new() for _ in range(30)]
    other = HeaderProfiles(os=OPERATING_SYSTEMS, rng=random.Random(43))
    assert series != [other.new() for _ in range(30)]
    assert random.getstate() == state  # the random module's own sequence is left alone


DRAW = """
import json, random, sys
from scrapy_sessionpool.fingerprints import HeaderProfiles, OPERATING_SYSTEMS
profiles = HeaderProfiles(os=OPERATING_SYSTEMS, rng=random.Random(5), encodings=("gzip", "deflate", "br", "zstd"))
json.dump([profiles.new() for _ in range(20)], sys.stdout)
"""


@needs_browserforge
def test_the_same_seed_draws_the_same_profiles_in_another_process():
    here = HeaderProfiles(os=OPERATING_SYSTEMS, rng=random.Random(5), encodings=("gzip", "deflate", "br", "zstd"))
    expected = [here.new() for _ in range(20)]
    for hash_seed in ("0", "1"):
        done = subprocess.run(
            [sys.executable, "-c", DRAW],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert json.loads(done.stdout) == expected


# --- impersonation targets -------------------------------------------------------------------------

TARGETS = [
    # an exact version
    (CHROME_WIN.format(v=146), "chrome146"),
    (CHROME_MAC.format(v=133), "chrome133a"),  # the only Chrome 133 target
    (FIREFOX_WIN.format(v=135), "firefox135"),
    (SAFARI_MAC.format(v="26.0"), "safari260"),
    (SAFARI_MAC.format(v="26.0.1"), "safari2601"),
    (SAFARI_MAC.format(v="18.4"), "safari184"),
    # the closest version below
    (CHROME_WIN.format(v=147), "chrome146"),
    (CHROME_WIN.format(v=141), "chrome136"),
    (FIREFOX_WIN.format(v=151), "firefox147"),
    (SAFARI_MAC.format(v="26.5"), "safari2601"),
    (SAFARI_MAC.format(v="18.6"), "safari184"),
    (SAFARI_MAC.format(v="17.6"), "safari170"),
    (EDGE_WIN.format(v=147), "edge101"),  # curl_cffi's Edge targets are old
    # newer than all, older than all (then the oldest)
    (CHROME_WIN.format(v=200), "chrome152"),
    (CHROME_WIN.format(v=90), "chrome99"),
    (FIREFOX_WIN.format(v=60), "firefox133"),
    # macOS builds where a version has one; plain names elsewhere
    (CHROME_MAC.format(v=152), "chrome152_macos"),
    (CHROME_MAC.format(v=151), "chrome151_macos"),
    (CHROME_LINUX.format(v=152), "chrome152"),
    (CHROME_WIN.format(v=151), "chrome151"),
    (CHROME_WIN.format(v=150), "chrome150"),  # a macOS capture, the only Chrome 150
    # mobile: Android and iOS targets where curl_cffi has some, else desktop ones
    (CHROME_ANDROID.format(v=147), "chrome131_android"),
    (CHROME_ANDROID.format(v=120), "chrome99_android"),
    (FIREFOX_ANDROID.format(v=150), "firefox147"),
    (EDGE_ANDROID.format(v=147), "edge101"),
    (SAFARI_IPHONE.format(os="18_4", v="18.4"), "safari184_ios"),
    (SAFARI_IPHONE.format(os="18_7", v="26.4"), "safari260_ios"),  # iOS 26 says 18_7 in its User-Agent
    (SAFARI_IPHONE.format(os="17_0", v="17.0"), "safari172_ios"),  # older than all iOS targets
    (SAFARI_IPHONE.format(os="18_4", v="18.4").replace("iPhone", "iPad"), "safari184_ios"),
    (CHROME_IPHONE.format(os="18_1", v=130), "safari180_ios"),  # Chrome of iOS is WebKit: by its iOS version
]

UNKNOWN = [
    "",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    CHROME_WIN.format(v=147) + " OPR/112.0.0.0",
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 "
        "Chrome/121.0.0.0 Mobile Safari/537.36"
    ),
]


@needs_curl_cffi
@pytest.mark.parametrize(("user_agent", "target"), TARGETS)
def test_impersonate_target(user_agent, target):
    from curl_cffi import BrowserType

    assert impersonate_target(user_agent) == target
    assert target in {member.value for member in BrowserType}


@needs_curl_cffi
@pytest.mark.parametrize("user_agent", UNKNOWN)
def test_no_target_for_other_browsers(user_agent):
    assert impersonate_target(user_agent) is None


@needs_curl_cffi
def test_no_deprecated_alias_is_chosen():
    deprecated = re.compile(r"\d_\d")  # safari15_3, safari18_0_ios: old names of safari153, safari180_ios
    for target in fingerprints._targets():
        assert not deprecated.search(target.name), target
        assert target.name not in {"chrome", "safari", "firefox", "edge", "safari_ios", "chrome_android"}


@needs_curl_cffi
def test_target_names_tell_what_curl_cffis_table_does():
    # the fallback for a curl_cffi without its table of targets
    for target in fingerprints._targets():
        parsed = fingerprints._target_from_name(target.name)
        assert parsed is not None and parsed[:4] == target[:4], target
    assert fingerprints._target_from_name("safari18_0_ios") is None
    assert fingerprints._target_from_name("chrome") is None


@needs_browserforge
@needs_curl_cffi
@pytest.mark.parametrize("max_lag", [0, 1])
def test_impersonating_profiles_have_a_target_of_their_version(max_lag):
    profiles = HeaderProfiles(os=OPERATING_SYSTEMS, rng=random.Random(11), impersonate=True, max_lag=max_lag)
    seen = set()
    for _ in range(200):
        profile = profiles.new()
        agent = fingerprints._parse_user_agent(profile["User-Agent"])
        target = next(t for t in fingerprints._targets() if t.name == impersonate_target(profile["User-Agent"]))
        assert target.family == agent.family
        assert 0 <= agent.version[0] - target.version[0] <= max_lag, (profile["User-Agent"], target.name)
        assert profile_problems(profile) == []
        seen.add(agent.family)
    assert seen == {"chrome", "firefox", "safari"}  # Edge's targets are too old


@needs_browserforge
@needs_curl_cffi
def test_edge_is_impersonated_only_with_any_lag(caplog):
    with pytest.raises(ValueError, match="none of"):
        HeaderProfiles(browsers=("edge",), impersonate=True)
    assert "edge left out" in caplog.text
    profiles = HeaderProfiles(browsers=("edge",), impersonate=True, max_lag=None, rng=random.Random(2))
    assert {impersonate_target(profiles.new()["User-Agent"]) for _ in range(10)} == {"edge101"}


@needs_browserforge
@needs_curl_cffi
@pytest.mark.parametrize(
    "target", ["chrome146", "chrome133a", "chrome116", "firefox147", "safari260", "safari2601", "safari184_ios"]
)
def test_a_profile_for_a_target_maps_back_to_it(target):
    profile = profile_for_target(target, random.Random(9), locales=("fr-FR", "fr"))
    assert impersonate_target(profile["User-Agent"]) == target
    assert profile_problems(profile) == []
    assert profile["Accept-Language"].startswith("fr-FR,fr;q=")
    assert profile == profile_for_target(target, random.Random(9), locales=("fr-FR", "fr"))


@needs_browserforge
@needs_curl_cffi
@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("chrome152", "no chrome 152 profiles"),  # newer than browserforge's data
        ("edge101", "no edge 101 profiles"),
        ("chrome107", "no chrome"),  # browserforge's Chrome 107 profiles contradict themselves
        ("tor145", "not a curl_cffi target"),
        ("chrome", "not a curl_cffi target"),
    ],
)
def test_no_profile_for_a_target_browserforge_lacks(target, reason):
    with pytest.raises(LookupError, match=reason):
        profile_for_target(target, random.Random(1))


# --- missing extras --------------------------------------------------------------------------------


def test_without_browserforge_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "browserforge.headers", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'scrapy-sessionpool[fingerprints]'")):
        HeaderProfiles()


def test_without_curl_cffi_the_error_names_the_extra(monkeypatch):
    fingerprints._targets.cache_clear()
    monkeypatch.setitem(sys.modules, "curl_cffi", None)
    try:
        with pytest.raises(ImportError, match=re.escape("pip install 'scrapy-sessionpool[impersonate]'")):
            impersonate_target(CHROME_WIN.format(v=147))
    finally:
        fingerprints._targets.cache_clear()
