"""The judge alone: who is to blame, rule by rule (injected clock, no Scrapy)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from scrapy_sessionpool.core.blame import AT_ONCE, Blame, Judge
from tests.clock import FakeClock

SITE = "shop.example"


@dataclass
class S:
    """A session as the judge reads it."""

    id: str
    suspected_at: float | None = None
    sits_out_until: float = 0.0
    strikes: int = 0
    usage_count: int = 10  # established, unless a test says otherwise

    def apply(self, decision, now):
        """What the manager does with a PENDING decision."""
        if decision.blame is Blame.PENDING:
            self.suspected_at = self.suspected_at if self.suspected_at is not None else now
            self.sits_out_until, self.strikes = now + decision.wait, decision.strikes


def blocked(j, session, exit_url, site, sent_at, retry_after=None, **kwargs):
    """A block through one of the four exits of a pool (unless ``exits`` says otherwise)."""
    return j.blocked(session, exit_url, site, sent_at, retry_after, **{"exits": 4, **kwargs})


def judge(**kwargs):
    clock = FakeClock()
    return Judge(clock=clock, rng=random.Random(1), **kwargs), clock


def test_a_first_block_makes_the_session_suspect_and_honours_retry_after():
    j, clock = judge()
    s = S("a")
    d = blocked(j, s, "p1", SITE, clock.now, retry_after=7)
    assert (d.blame, d.wait, d.strikes) == (Blame.PENDING, 7, 1)
    d = blocked(j, S("b"), "p2", SITE, clock.now)
    assert d.blame is Blame.PENDING and d.wait == 5  # no Retry-After: the suspect wait


def test_blocked_again_after_its_wait_while_the_exit_serves_others_the_session_is_to_blame():
    j, clock = judge()
    s, other = S("a"), S("b")
    j.good(other, "p1", SITE, clock.now)
    s.apply(blocked(j, s, "p1", SITE, clock.now, 5), clock.now)
    clock.advance(1)
    j.good(other, "p1", SITE, clock.now)  # the exit works for another session meanwhile
    clock.advance(5)
    sent = clock.now
    clock.advance(0.1)
    j.good(other, "p1", SITE, sent)  # ... and a request sent after its test got through: the control is in
    d = blocked(j, s, "p1", SITE, sent, retry_after=5)
    assert d.blame is Blame.SESSION and d.strikes == 2


def test_without_a_control_yet_a_session_is_condemned_and_the_next_answer_decides():
    j, clock = judge()
    s, other, third = S("a"), S("b"), S("c")
    s.apply(blocked(j, s, "p1", SITE, clock.now), clock.now)
    clock.advance(1)
    j.good(other, "p1", SITE, clock.now)
    clock.advance(5)
    d = blocked(j, s, "p1", SITE, clock.now)
    assert d.blame is Blame.PENDING and d.condemned
    s.apply(d, clock.now)
    clock.advance(0.1)
    news = j.good(third, "p1", SITE, clock.now)
    assert news.guilty == (("a", "blocked"),)  # the control passed: the exit works, the session does not

    # a failed control acquits: the exit blocks the others too
    u = S("u")
    u.apply(blocked(j, u, "p2", SITE, clock.now), clock.now)
    clock.advance(1)
    j.good(other, "p2", SITE, clock.now)
    clock.advance(5)
    d = blocked(j, u, "p2", SITE, clock.now)
    assert d.condemned
    clock.advance(0.1)
    d = blocked(j, S("v"), "p2", SITE, clock.now)
    assert d.acquitted == ("u",)


def test_a_condemned_session_that_gets_through_itself_is_acquitted():
    j, clock = judge()
    s, other = S("a"), S("b")
    s.apply(blocked(j, s, "p1", SITE, clock.now), clock.now)
    clock.advance(1)
    j.good(other, "p1", SITE, clock.now)
    clock.advance(5)
    s.apply(blocked(j, s, "p1", SITE, clock.now), clock.now)
    clock.advance(10)
    assert j.good(s, "p1", SITE, clock.now).session_cleared
    assert j.good(other, "p1", SITE, clock.now).guilty == ()


def test_a_session_that_keeps_being_blocked_is_never_kept():
    j, clock = judge(max_strikes=3)
    s = S("a")
    decisions = []
    for _ in range(3):  # nobody else answers through the exit: no evidence, but a cap
        d = blocked(j, s, "p1", SITE, clock.now)
        decisions.append(d.blame)
        s.apply(d, clock.now)
        clock.advance(s.sits_out_until - clock.now + 0.01)
    assert decisions == [Blame.PENDING, Blame.PENDING, Blame.SESSION]


def test_blocks_sent_before_a_decision_took_effect_change_nothing():
    j, clock = judge()
    s = S("a")
    sent = clock.now
    s.apply(blocked(j, s, "p1", SITE, sent), clock.now)
    d = blocked(j, s, "p1", SITE, sent)  # another of its requests, in flight when it was blocked
    assert d.blame is Blame.KNOWN
    a, b = S("x"), S("y")
    blocked(j, a, "p2", SITE, clock.now)
    assert blocked(j, b, "p2", SITE, clock.now).blame is Blame.EXIT
    late = blocked(j, S("z"), "p2", SITE, sent - 1)
    assert late.blame is Blame.KNOWN and late.suspects == ("z",)  # known, but that session was blocked too


def test_distinct_sessions_blocked_in_a_row_suspect_the_exit_and_probes_decide():
    j, clock = judge()
    j.good(S("g"), "p1", SITE, clock.now)
    blocked(j, S("a"), "p1", SITE, clock.now)
    d = blocked(j, S("b"), "p1", SITE, clock.now)
    assert d.blame is Blame.EXIT and d.wait == 0 and set(d.suspects) == {"a", "b"} and d.slow_down
    clock.advance(0.1)
    assert blocked(j, S("c"), "p1", SITE, clock.now).blame is Blame.PENDING  # one probe may be its own ban
    d = blocked(j, S("d"), "p1", SITE, clock.now)
    assert d.blame is Blame.EXIT and 2.5 <= d.wait <= 5  # two clean probes blocked: the exit cools down
    clock.advance(d.wait)
    assert j.good(S("e"), "p1", SITE, clock.now).exit_closed


def test_a_good_answer_between_two_blocks_means_it_is_not_the_exit():
    j, clock = judge()
    blocked(j, S("a"), "p1", SITE, clock.now)
    clock.advance(0.1)
    j.good(S("g"), "p1", SITE, clock.now)
    assert blocked(j, S("b"), "p1", SITE, clock.now).blame is Blame.PENDING


def test_a_suspects_repeat_does_not_count_against_its_exit():
    j, clock = judge()
    s = S("a")
    s.apply(blocked(j, s, "p1", SITE, clock.now), clock.now)
    clock.advance(1)
    j.good(S("g"), "p1", SITE, clock.now)  # the exit works after its block: its run starts afresh
    clock.advance(5)
    assert blocked(j, s, "p1", SITE, clock.now).blame is Blame.PENDING
    assert blocked(j, S("b"), "p1", SITE, clock.now).blame is Blame.PENDING  # one clean session in the run


def test_retry_after_on_a_suspected_exit_cools_it_down_for_that_long():
    j, clock = judge()
    blocked(j, S("a"), "p1", SITE, clock.now, retry_after=12)
    d = blocked(j, S("b"), "p1", SITE, clock.now, retry_after=12)
    assert d.blame is Blame.EXIT and d.wait == 12


def test_most_exits_blocked_at_once_is_the_site_and_its_exits_are_kept():
    j, clock = judge()
    for exit_url in ("p1", "p2", "p3", "p4"):
        j.good(S("g" + exit_url), exit_url, SITE, clock.now)
    for i, exit_url in enumerate(("p1", "p2", "p3")):
        blocked(j, S(f"a{i}"), exit_url, SITE, clock.now, retry_after=3)
        d = blocked(j, S(f"b{i}"), exit_url, SITE, clock.now, retry_after=3, exits=4)
    assert d.blame is Blame.SITE and d.wait == 3 and set(d.lifted) == {"p1", "p2"}
    # blocked "at once" means within a few seconds: older suspicions do not add up
    j2, clock2 = judge()
    for i, exit_url in enumerate(("p1", "p2", "p3")):
        j2.good(S("g"), exit_url, SITE, clock2.now)
        blocked(j2, S(f"a{i}"), exit_url, SITE, clock2.now)
        d = blocked(j2, S(f"b{i}"), exit_url, SITE, clock2.now, exits=4)
        clock2.advance(AT_ONCE + 1)
    assert d.blame is Blame.EXIT


def test_without_proxies_the_one_exit_is_your_own_ip_and_blamed_as_the_site():
    j, clock = judge()
    blocked(j, S("a"), None, SITE, clock.now)
    assert blocked(j, S("b"), None, SITE, clock.now, exits=1).blame is Blame.SITE


def test_where_sessions_are_often_guilty_more_evidence_is_needed_against_the_exit():
    j, clock = judge()
    for _ in range(8):
        j.guilty("p1", SITE)
    j.good(S("g"), "p1", SITE, clock.now)
    for name in ("a", "b", "c"):
        assert blocked(j, S(name), "p1", SITE, clock.now).blame is Blame.PENDING
    assert blocked(j, S("d"), "p1", SITE, clock.now).blame is Blame.EXIT  # 2 + 8 // 4


def test_new_sessions_refused_while_established_ones_work_are_dropped_then_the_exit_refuses_new():
    j, clock = judge()
    sent = clock.now
    clock.advance(0.1)
    j.good(S("old"), "p1", SITE, clock.now)  # sent after the newcomer's request: the exit serves the others now
    d = blocked(j, S("n1", usage_count=0), "p1", SITE, sent)
    assert d.blame is Blame.NEWCOMER and d.newcomers == ("n1",)
    d = blocked(j, S("n2", usage_count=0), "p1", SITE, sent)
    assert d.blame is Blame.EXIT and d.newcomers == ("n1", "n2") and d.wait > 0
    # a newcomer refused when nothing says the exit serves anyone: an ordinary block
    assert blocked(j, S("n3", usage_count=0), "p2", SITE, clock.now).blame is Blame.PENDING


def test_a_newcomer_refused_while_established_sessions_of_its_exit_are_blocked_too_is_not_dropped():
    """A rate limit on the exit: an old session blocked lately, another got through since."""
    j, clock = judge()
    old = S("old")
    old.apply(blocked(j, old, "p1", SITE, clock.now, 1), clock.now)
    sent = clock.now
    clock.advance(0.1)
    j.good(S("other"), "p1", SITE, clock.now)  # the window turned: a request sent after the newcomer's got in
    d = blocked(j, S("n1", usage_count=0), "p1", SITE, sent, 1)
    assert d.blame is Blame.PENDING and d.newcomers == ()
    clock.advance(60)  # out of the window: a newcomer refused alone is dropped again
    sent = clock.now
    clock.advance(0.1)
    j.good(S("other"), "p1", SITE, clock.now)
    assert blocked(j, S("n2", usage_count=0), "p1", SITE, sent).blame is Blame.NEWCOMER


def test_a_newcomer_refused_while_only_other_newcomers_got_through_is_not_dropped():
    """The crawl's first block (a rate limit met by a new session): every session is new yet, so a
    good answer after it says new sessions are let in, not that the exit serves only its established ones."""
    j, clock = judge()
    sent = clock.now
    clock.advance(0.1)
    j.good(S("n2", usage_count=0), "p1", SITE, clock.now)  # another session's first answer, sent after
    d = blocked(j, S("n1", usage_count=0), "p1", SITE, sent)
    assert d.blame is Blame.PENDING and d.newcomers == ()


def test_a_newcomer_refused_on_a_site_just_blamed_is_not_dropped():
    j, clock = judge()
    blames = [blocked(j, S(name), "p1", SITE, clock.now, exits=1).blame for name in "abcd"]
    assert blames[-1] is Blame.SITE  # sessions of the only exit blocked in a row: the site
    clock.advance(20)  # its pause is over
    sent = clock.now
    clock.advance(0.1)
    j.good(S("old"), "p2", SITE, clock.now)  # another exit, with no block of its own
    d = blocked(j, S("n1", usage_count=0), "p2", SITE, sent)
    assert d.blame is not Blame.NEWCOMER and d.newcomers == ()


@pytest.mark.parametrize("retry_after", [None, 4.0])
def test_a_blocked_session_retired_for_its_block_is_never_innocent_in_a_throttled_burst(retry_after):
    """Four sessions of one exit blocked together (a rate limit), then all good again: nobody retired."""
    j, clock = judge()
    sessions = [S(f"s{i}") for i in range(4)]
    for s in sessions:
        j.good(s, "p1", SITE, clock.now)
    clock.advance(1)
    blames = []
    for s in sessions:
        d = blocked(j, s, "p1", SITE, clock.now, retry_after=retry_after)
        blames.append(d.blame)
        s.apply(d, clock.now)
    assert Blame.SESSION not in blames and Blame.EXIT in blames
    clock.advance(10)
    assert all(j.good(s, "p1", SITE, clock.now) is not None for s in sessions)
