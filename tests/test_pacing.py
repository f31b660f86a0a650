"""The pacer alone: turns, rate cuts and regrowth, probes, bounds (injected clock)."""

from __future__ import annotations

from scrapy_sessionpool.core.pacing import KNEE, PROBE_TIMEOUT, T_KNEE, Pacer
from tests.clock import FakeClock

SITE = "shop.example"


def pacer(**kwargs):
    clock = FakeClock()
    return Pacer(clock=clock, **kwargs), clock


def send(p, clock, n, gap, exit_url="p1", good=True):
    for _ in range(n):
        assert p.turn(SITE, exit_url) == 0
        if good:
            p.good(SITE, exit_url)
        clock.advance(gap)


def test_an_unslowed_exit_always_has_its_turn_at_once():
    p, _ = pacer()
    assert all(p.turn(SITE, "p1") == 0 for _ in range(100))
    assert p.exit_delay(SITE, "p1") == 0


def test_a_cut_halves_the_rate_it_was_refused_at_and_turns_are_not_reserved():
    p, clock = pacer()
    send(p, clock, 40, 0.05)  # 20 requests a second
    began = clock.now
    p.slow_exit(SITE, "p1", since=began)
    assert abs(p.exit_delay(SITE, "p1") - 0.1) < 0.01  # 10 a second
    assert p.turn(SITE, "p1") == 0
    wait = p.turn(SITE, "p1")
    assert 0.09 < wait <= p.exit_delay(SITE, "p1") + 1e-9
    assert p.turn(SITE, "p1") == wait  # asking again reserves nothing
    clock.advance(wait)
    assert p.turn(SITE, "p1") == 0


def test_never_above_what_the_site_let_through():
    p, clock = pacer()
    for _ in range(100):  # 50 a second sent, 8 a second of them good
        assert p.turn(SITE, "p1") == 0
        clock.advance(0.02)
        if int(clock.now * 50) % 6 == 0:
            p.good(SITE, "p1")
    p.slow_exit(SITE, "p1", since=clock.now)
    assert 1 / p.exit_delay(SITE, "p1") <= 9 / 2 + 0.5


def test_the_rate_grows_back_to_near_its_peak_then_only_slowly():
    p, clock = pacer()
    send(p, clock, 40, 0.05)
    p.slow_exit(SITE, "p1", since=clock.now)
    peak = 20
    clock.advance(T_KNEE)
    assert abs(1 / p.exit_delay(SITE, "p1") - KNEE * peak) < 0.5
    clock.advance(T_KNEE)
    assert 1 / p.exit_delay(SITE, "p1") < 1.1 * peak  # plateau: it creeps past the peak
    clock.advance(600)
    assert p.exit_delay(SITE, "p1") == 0  # it no longer limits anything


def test_a_cut_never_goes_below_the_rate_served_well_lately():
    p, clock = pacer()
    send(p, clock, 60, 0.05)  # served 20 a second well
    send(p, clock, 10, 1.0, good=False)  # then sends little (its own reasons), and is blocked
    p.slow_exit(SITE, "p1", since=clock.now)
    assert 1 / p.exit_delay(SITE, "p1") >= 9


def test_delays_are_bounded():
    p, clock = pacer(max_delay=2.0)
    send(p, clock, 3, 5.0, good=False)
    for _ in range(10):
        p.slow_exit(SITE, "p1")
    assert p.exit_delay(SITE, "p1") == 2.0


def test_a_probe_goes_one_at_a_time_until_its_answer_or_its_timeout():
    p, clock = pacer()
    p.probe_exit(SITE, "p1")
    assert p.turn(SITE, "p1") == 0
    assert p.turn(SITE, "p1") is None and p.turn(SITE, "p2") == 0  # only that exit is probed
    p.answered(SITE, "p1")
    assert p.turn(SITE, "p1") == 0
    clock.advance(PROBE_TIMEOUT + 1)  # a probe whose request was dropped does not hold the gate for ever
    assert p.turn(SITE, "p1") == 0
    p.probe_exit(SITE, "p1", False)
    assert p.turn(SITE, "p1") == 0 and p.turn(SITE, "p1") == 0


def test_a_slowed_site_paces_every_exit_together_after_its_pause():
    p, clock = pacer()
    for _ in range(40):
        for exit_url in ("p1", "p2"):
            assert p.turn(SITE, exit_url) == 0
            p.good(SITE, exit_url)
        clock.advance(0.05)  # 40 a second in all
    p.slow_site(SITE, pause=3, since=clock.now)
    assert p.paused_until(SITE) == clock.now + 3
    assert p.turn(SITE, "p1") == 3 and p.turn(SITE, "p2") == 3
    clock.advance(3)
    assert p.turn(SITE, "p1") == 0
    wait = p.turn(SITE, "p2")  # the site's delay holds across exits
    assert abs(wait - p.site_delay(SITE)) < 1e-9 and abs(1 / p.site_delay(SITE) - 20) < 1
    assert p.turn("other.example", "p2") == 0  # another site is not slowed
