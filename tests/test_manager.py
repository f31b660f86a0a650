from collections import Counter

from scrapy_sessionpool.core.verdict import Verdict
from scrapy_sessionpool.manager import PoolManager
from scrapy_sessionpool.settings import PoolSettings
from tests.clock import FakeClock


def make(clock=None, store=None, **settings):
    written = Counter()

    def stats(key, count=1, gauge=False):
        if gauge:
            written[key] = count
        else:
            written[key] += count

    cfg = PoolSettings(**{"max_pool_size": 4, "seed": 1, **settings})
    return PoolManager(cfg, clock=clock or FakeClock(), stats=stats, store=store, state_key="crawl"), written


def test_new_sessions_spread_over_proxies_and_keep_a_user_agent():
    m, _ = make(proxies=("http://a:1", "http://b:2"), user_agents=("UA1", "UA2"), warm_up=False)
    sessions = [m.acquire() for _ in range(4)]
    assert Counter(s.proxy_url for s in sessions) == {"http://a:1": 2, "http://b:2": 2}
    assert all(s.user_agent in ("UA1", "UA2") for s in sessions)


SITE = "shop.example"


def settle(m, session, verdict, sent_at=None, **kwargs):
    return m.settle(session, verdict, site=SITE, sent_at=m._clock() if sent_at is None else sent_at, **kwargs)


def test_good_and_bad_verdicts_mark_the_session():
    m, stats = make()
    s = m.acquire()
    assert settle(m, s, Verdict.good()).retry is False
    assert settle(m, s, Verdict.bad("status_500")).retry is False
    assert (s.usage_count, s.error_score) == (2, 1)
    assert stats["marked_good"] == 1 and stats["marked_bad"] == 1


def test_a_policy_sure_of_a_session_block_retires_and_rotates():
    m, stats = make()
    s = m.acquire()
    outcome = settle(m, s, Verdict.session_blocked("status_403"))
    assert outcome.retry and not outcome.same_session
    assert s.retired_reason == "status_403"
    assert stats["retired"] == 1 and stats["retired/status_403"] == 1 and stats["blame/session"] == 1


def test_a_first_block_makes_the_session_sit_out_and_its_next_block_retires_it():
    clock = FakeClock()
    m, stats = make(clock, max_pool_size=2, warm_up=False)
    s, other = m.acquire(), m.acquire()
    for session in (s, other):  # established sessions (a new one refused at once is just dropped)
        settle(m, session, Verdict.good())
        m.acquire(session_id=session.id)
    outcome = settle(m, s, Verdict.blocked("status_429", retry_after=5))
    assert outcome.retry and outcome.same_session and not s.is_retired  # a first Retry-After is honoured
    assert s.is_sitting_out and stats["blame/pending"] == 1
    assert m.acquire(session_id=s.id) is None  # a request pinned to it waits out the Retry-After
    fresh = m.acquire()  # it leaves room for a fresh session meanwhile
    assert fresh not in (s, other) and stats["created"] == 3
    assert {m.acquire() for _ in range(6)} == {other, fresh}
    clock.advance(5)
    assert m.acquire(session_id=s.id) is s
    sent = clock.now
    clock.advance(0.1)
    settle(m, other, Verdict.good(), sent_at=sent)  # the exit serves another session meanwhile
    outcome = settle(m, s, Verdict.blocked("status_429", retry_after=5), sent_at=sent)
    assert s.retired_reason == "status_429" and stats["blame/session"] == 1
    assert outcome.retry and not outcome.same_session and not outcome.counted  # its test: not the request's fault


def test_a_failed_test_waits_for_a_control_answer_of_another_session():
    clock = FakeClock()
    m, stats = make(clock, max_pool_size=3, warm_up=False)
    s, other, third = m.acquire(), m.acquire(), m.acquire()
    for session in (s, other, third):
        settle(m, session, Verdict.good())
        m.acquire(session_id=session.id)
    clock.advance(1)
    settle(m, s, Verdict.blocked("status_403"))
    clock.advance(1)
    m.acquire(session_id=other.id)
    settle(m, other, Verdict.good())  # the exit works for the others after its first block
    clock.advance(m.settings.suspect_wait)
    m.acquire(session_id=s.id)
    settle(m, s, Verdict.blocked("status_403"))  # blocked again; no answer of another session since it was sent
    assert s.is_condemned and not s.is_retired
    settle(m, third, Verdict.blocked("status_403"), sent_at=clock.now)  # the control is blocked too: acquitted
    assert not s.is_condemned and not s.is_retired
    clock.advance(60)
    m.acquire(session_id=s.id)
    settle(m, s, Verdict.blocked("status_403"))
    assert s.is_condemned
    m.acquire(session_id=other.id)
    settle(m, other, Verdict.good())  # the control passes: the exit works, that session does not
    assert s.retired_reason == "status_403" and stats["blame/session"] == 1


def test_a_suspect_session_cleared_by_a_good_answer_is_handed_out_again():
    clock = FakeClock()
    m, stats = make(clock, max_pool_size=1, warm_up=False)
    s = m.acquire()
    settle(m, s, Verdict.good())
    m.acquire(session_id=s.id)
    settle(m, s, Verdict.blocked("status_403"))
    assert m.acquire() is not s  # it sits out: a fresh session stands in
    clock.advance(m.settings.suspect_wait)
    assert m.acquire(session_id=s.id) is s
    settle(m, s, Verdict.good())
    assert not s.is_suspect and stats["blame/cleared"] == 1


def test_a_policy_sure_of_an_exit_block_keeps_the_session_and_pauses_its_proxy():
    clock = FakeClock()
    m, stats = make(clock, proxies=("http://a:1", "http://b:2"), warm_up=False)
    sessions = [m.acquire() for _ in range(4)]
    on_a = next(s for s in sessions if s.proxy_url == "http://a:1")
    outcome = settle(m, on_a, Verdict.proxy_blocked("status_503", retry_after=10))
    assert outcome.retry and outcome.same_session
    assert on_a.is_usable and not on_a.is_retired
    assert {m.acquire().proxy_url for _ in range(20)} == {"http://b:2"}
    assert stats["proxies_in_backoff"] == 1 and stats["proxy_blocks/status_503"] == 1 and stats["blame/exit"] == 1
    assert m.acquire(session_id=on_a.id) is None  # a request pinned to it waits
    clock.advance(10)
    assert m.acquire(session_id=on_a.id) is on_a
    assert "http://a:1" in {m.acquire().proxy_url for _ in range(40)}


def test_sessions_of_one_exit_blocked_in_a_row_suspect_the_exit_and_are_kept():
    clock = FakeClock()
    m, stats = make(clock, proxies=("http://a:1", "http://b:2"), max_pool_size=8, warm_up=False)
    sessions = [m.acquire() for _ in range(8)]
    on_a = [s for s in sessions if s.proxy_url == "http://a:1"]
    for s in sessions:
        settle(m, s, Verdict.good())
    clock.advance(1)
    first, second, third, fourth = on_a
    for s in (first, second):
        settle(m, s, Verdict.blocked("status_403"))
    assert not any(s.is_retired for s in on_a) and first.is_suspect and second.is_suspect  # kept, to be tested
    assert stats["blame/exit"] == 1 and stats["blame/pending"] == 1
    # without Retry-After the exit is probed first: one request at a time, no cool-down yet
    assert not m.proxies.is_cooling("http://a:1")
    assert m.turn(SITE, third) == 0 and m.turn(SITE, fourth) is None
    clock.advance(1)
    settle(m, third, Verdict.blocked("status_403"))  # one probe blocked: it may be that session's own ban
    assert not m.proxies.is_cooling("http://a:1") and third.is_suspect
    settle(m, fourth, Verdict.blocked("status_403"))  # two in a row: the exit is blocked
    assert stats["blame/exit"] == 2 and m.proxies.is_cooling("http://a:1")
    assert not any(s.is_retired for s in on_a)


def test_blocks_on_most_exits_slow_the_site_and_keep_sessions_and_exits():
    clock = FakeClock()
    m, stats = make(clock, proxies=("http://a:1", "http://b:2"), max_pool_size=4, warm_up=False)
    sessions = [m.acquire() for _ in range(4)]
    for s in sessions:
        settle(m, s, Verdict.blocked("status_503", retry_after=3))
    assert stats["blame/site"] == 1 and stats["blame/session"] == 0 and stats["blame/exit"] == 1
    assert not m.proxies.cooling and not any(s.is_retired for s in sessions)
    assert m.pacer.paused_until(SITE) == clock.now + 3 and m.pacer.site_delay(SITE) > 0


def test_answers_of_a_known_block_change_nothing():
    clock = FakeClock()
    m, stats = make(clock, proxies=("http://a:1", "http://b:2"), warm_up=False)
    sessions = [m.acquire() for _ in range(4)]
    on_a = [s for s in sessions if s.proxy_url == "http://a:1"]
    sent = clock.now
    clock.advance(0.1)
    for s in on_a:
        settle(m, s, Verdict.proxy_blocked("status_503", retry_after=10), sent_at=sent)
    for s in on_a:  # more answers of requests that were in flight
        settle(m, s, Verdict.blocked("status_503", retry_after=10), sent_at=sent)
    assert stats["proxy_blocks"] == 1 and stats["blame/exit"] == 1 and all(s.is_usable for s in on_a)


def test_a_challenge_is_fetched_again_with_the_same_session_then_counts_as_a_block():
    m, stats = make(warm_up=False)
    s = m.acquire()
    outcome = settle(m, s, Verdict.challenge(delay=2.0), challenges=0)
    assert outcome.retry and outcome.challenge and outcome.same_session and outcome.delay == 2.0
    assert stats["challenges"] == 1 and "blocks" not in stats
    outcome = settle(m, s, Verdict.challenge(), challenges=m.settings.max_challenge_refetches)
    assert outcome.retry and not outcome.challenge and stats["blocks/challenge"] == 1


def test_pinned_session_that_is_gone_gets_a_fresh_one_and_a_stat():
    m, stats = make()
    s = m.acquire(session_id="session_gone")
    assert s is not None and s.id != "session_gone"
    assert stats["pinned_missing"] == 1


def test_named_pools_are_separate():
    m, _ = make()
    assert m.pool("login") is not m.pool(None)
    assert m.acquire("login").id in {s.id for s in m.pool("login")}


def test_pools_are_restored_from_the_store_and_a_bad_state_is_set_aside(caplog):
    from scrapy_sessionpool.stores import MemoryStore

    source, _ = make()
    kept = source.acquire()
    store = MemoryStore()
    store.save("crawl", source.pool().get_state())
    store.save("crawl.bad", {"version": 99, "sessions": []})
    m, stats = make(store=store)
    assert m.acquire(session_id=kept.id).id == kept.id
    assert stats["restored"] == 1
    assert m.pool("bad").usable_sessions_count == 0
    assert stats["state_rejected"] == 1
    assert "memory:crawl.bad is unusable" in caplog.text and "newer" in caplog.text


def test_summary_counts_blocks_per_minute():
    clock = FakeClock()
    m, _ = make(clock)
    settle(m, m.acquire(), Verdict.session_blocked("ban_pattern"))
    clock.advance(30)
    settle(m, m.acquire(), Verdict.session_blocked("ban_pattern"))
    assert m.summary()["blocks_per_minute"] == 2
    clock.advance(31)
    summary = m.summary()
    assert summary["blocks_per_minute"] == 1
    assert summary["retired_by_reason"] == {"ban_pattern": 2} and summary["created"] == 2
    assert summary["blamed"] == {"session": 2, "exit": 0, "site": 0}


def test_a_judge_of_ones_own_decides_who_is_to_blame():
    from scrapy_sessionpool.core.blame import Blame, Decision, Judge

    class RetireOnEveryBlock(Judge):  # a site known to block sessions, never IPs
        def blocked(self, session, exit_url, site, sent_at, retry_after=None, **kwargs):
            return Decision(Blame.SESSION, evidence="this site only ever blocks sessions")

    m, stats = make(judge=RetireOnEveryBlock)
    s = m.acquire()
    settle(m, s, Verdict.good())
    outcome = settle(m, s, Verdict.blocked("status_429", retry_after=5))
    assert outcome.retry and not outcome.same_session and s.is_retired
    assert stats["blame/session"] == 1


class TickingClock(FakeClock):
    """Time moves a little at every reading, as a real clock does between two calls."""

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def test_a_slowed_exit_keeps_its_session_rather_than_trading_it_for_another_of_the_same_exit():
    m, _ = make(TickingClock(), max_pool_size=2, warm_up=False, reuse_strategy="round_robin")
    first, second = m.acquire(), m.acquire()
    for _ in range(20):  # the exit was refused at this pace: it is slowed down
        assert m.turn(SITE, first) == 0.0
        m._clock.advance(0.01)
    m.pacer.slow_exit(SITE, None)
    assert m.turn(SITE, first) == 0.0 and m.pacer.wait(SITE, None) > 0  # its next turn is a moment away
    # the next in turn; spares of the same exit have the same turn (asked a moment later, it only looks sooner)
    assert m.acquire(site=SITE) is first
    assert (first.in_flight, second.in_flight) == (2, 1)
