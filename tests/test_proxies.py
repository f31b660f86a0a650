import random

import pytest

from scrapy_sessionpool.proxies import NoHealthyProxy, ProxyManager, proxy_label, redact
from tests.clock import FakeClock


def manager(clock=None, **kwargs):
    return ProxyManager(clock=clock or FakeClock(), rng=random.Random(1), **kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("http://user:pass@host:8080", "http://user:***@host:8080"),
     ("proxy http://u:p@a:1 and https://v:q@b:2/", "proxy http://u:***@a:1 and https://v:***@b:2/"),
     ("http://host:8080", "http://host:8080"), (None, None)],
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
    m.cool_down("b")
    assert m.pick(["a", "b"], {"a": 5, "b": 0}.get) == "a"
    m.cool_down("a")
    with pytest.raises(NoHealthyProxy):
        m.pick(["a", "b"], {"a": 5, "b": 0}.get)


def test_blocks_of_several_sessions_in_a_row_mean_the_proxy_is_blocked():
    m = manager(block_threshold=3)
    assert not m.session_blocked("a", "s1")
    assert not m.session_blocked("a", "s1")  # the same session twice is one session
    assert not m.session_blocked("a", "s2")
    assert m.session_blocked("a", "s3")
    assert m.is_cooling("a")


def test_a_good_answer_in_between_means_the_site_blocks_sessions_not_the_proxy():
    m = manager(block_threshold=2)
    assert not m.session_blocked("a", "s1")
    m.success("a")
    assert not m.session_blocked("a", "s2")
    assert not m.is_cooling("a")


def test_blocks_outside_the_window_do_not_add_up():
    clock = FakeClock()
    m = manager(clock, block_threshold=2, block_window=10)
    m.session_blocked("a", "s1")
    clock.advance(11)
    assert not m.session_blocked("a", "s2")


def test_retry_after_sets_the_cool_down_and_due_brings_the_proxy_back():
    clock = FakeClock()
    m = manager(clock)
    assert m.cool_down("a", retry_after=5, rate_limited=True) == 5
    assert m.due() == [] and m.seconds_until_due() == 5
    clock.advance(5)
    assert m.due() == ["a"] and not m.is_cooling("a")


def test_backoff_grows_exponentially_with_jitter_up_to_the_maximum():
    clock = FakeClock()
    m = manager(clock, backoff_base=10, backoff_max=100)
    pauses = []
    for _ in range(6):
        pauses.append(m.cool_down("a"))
        clock.advance(pauses[-1])
    for n, pause in enumerate(pauses):
        ceiling = min(100, 10 * 2**n)
        assert ceiling / 2 <= pause <= ceiling
    m.success("a")
    assert m.cool_down("a") <= 10


def test_answers_of_one_block_still_in_flight_do_not_escalate_it():
    clock = FakeClock()
    m = manager(clock, throttle_delay=1.0)
    m.cool_down("a", retry_after=2, rate_limited=True)
    clock.advance(1)
    assert m.cool_down("a", retry_after=3, rate_limited=True) == 3
    assert m.delay("a") == 1.0 and m.health("a").consecutive_blocks == 1


def test_rate_blocks_double_the_exit_delay_and_successes_ease_it_back_to_the_base():
    clock = FakeClock()
    m = manager(clock, base_delay=0.1, throttle_delay=0.15)
    m.cool_down("a", retry_after=1, rate_limited=True)
    assert m.delay("a") == 0.2  # twice DOWNLOAD_DELAY
    clock.advance(1)
    m.cool_down("a", retry_after=1, rate_limited=True)
    assert m.delay("a") == 0.4
    for _ in range(10):
        m.success("a")
    assert 0.3 < m.delay("a") < 0.4
    for _ in range(500):
        m.success("a")
    assert m.delay("a") == 0.0  # back to DOWNLOAD_DELAY alone


def test_without_a_download_delay_the_throttle_starts_at_its_floor():
    m = manager(throttle_delay=0.2)
    m.cool_down("a", retry_after=1, rate_limited=True)
    assert m.delay("a") == 0.2
