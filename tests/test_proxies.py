import random

import pytest

from scrapy_sessionpool.core.exceptions import NoHealthyProxy
from scrapy_sessionpool.core.proxies import ProxyManager, proxy_label, redact
from tests.clock import FakeClock


def manager(clock=None, **kwargs):
    return ProxyManager(clock=clock or FakeClock(), rng=random.Random(1), **kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:pass@host:8080", "http://user:***@host:8080"),
        ("proxy http://u:p@a:1 and https://v:q@b:2/", "proxy http://u:***@a:1 and https://v:***@b:2/"),
        ("http://host:8080", "http://host:8080"),
        (None, None),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_proxy_label_has_no_credentials():
    assert proxy_label("http://user:pw@10.0.0.1:3128") == "10.0.0.1:3128"
    assert proxy_label(None) == "direct"


def test_pick_takes_the_proxy_with_fewest_live_sessions():
    counts = {"a": 3, "b": 1, "c": 2}
    assert manager().pick(["a", "b", "c"], counts.get) == "b"


def test_pick_skips_cooling_proxies_and_raises_when_none_is_left():
    m = manager()
    m.cool_down("b", 10)
    assert m.pick(["a", "b"], {"a": 5, "b": 0}.get) == "a"
    m.cool_down("a", 10)
    with pytest.raises(NoHealthyProxy):
        m.pick(["a", "b"], {"a": 5, "b": 0}.get)


def test_cool_downs_end_when_due_and_are_only_ever_lengthened():
    clock = FakeClock()
    m = manager(clock)
    assert m.cool_down("a", 5) is True
    assert m.cool_down("a", 2) is False and m.cooling_until("a") == clock.now + 5
    assert m.due() == [] and m.seconds_until_due() == 5
    clock.advance(5)
    assert m.due() == ["a"] and not m.is_cooling("a")


def test_lift_ends_a_cool_down_at_once():
    m = manager()
    m.cool_down("a", 60)
    m.cool_down("b", 30)
    assert m.lift("a") is True and m.lift("a") is False
    assert m.cooling == {"b"} and m.seconds_until_due() == 30
