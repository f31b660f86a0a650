from collections import Counter

from scrapy_sessionpool.config import PoolSettings
from scrapy_sessionpool.manager import PoolManager
from scrapy_sessionpool.verdict import Verdict
from tests.clock import FakeClock


def make(clock=None, **settings):
    written = Counter()

    def stats(key, count=1, gauge=False):
        if gauge:
            written[key] = count
        else:
            written[key] += count

    cfg = PoolSettings(**{"max_pool_size": 4, "seed": 1, **settings})
    return PoolManager(cfg, clock=clock or FakeClock(), stats=stats), written


def test_new_sessions_spread_over_proxies_and_keep_a_user_agent():
    m, _ = make(proxies=("http://a:1", "http://b:2"), user_agents=("UA1", "UA2"), warm_up=False)
    sessions = [m.acquire() for _ in range(4)]
    assert Counter(s.proxy_url for s in sessions) == {"http://a:1": 2, "http://b:2": 2}
    assert all(s.user_agent in ("UA1", "UA2") for s in sessions)


def test_good_and_bad_verdicts_mark_the_session():
    m, stats = make()
    s = m.acquire()
    assert m.judge(s, Verdict.good()) is False
    assert m.judge(s, Verdict.bad("status_500")) is False
    assert (s.usage_count, s.error_score) == (2, 1)
    assert stats["marked_good"] == 1 and stats["marked_bad"] == 1


def test_session_block_retires_and_rotates():
    m, stats = make()
    s = m.acquire()
    assert m.judge(s, Verdict.session_blocked("status_403")) is True
    assert s.retired_reason == "status_403"
    assert stats["retired"] == 1 and stats["retired/status_403"] == 1 and stats["created"] == 1


def test_a_proxy_block_keeps_the_session_and_pauses_its_proxy_until_the_cool_down_ends():
    clock = FakeClock()
    m, stats = make(clock, proxies=("http://a:1", "http://b:2"), warm_up=False)
    sessions = [m.acquire() for _ in range(4)]
    on_a = next(s for s in sessions if s.proxy_url == "http://a:1")
    assert m.judge(on_a, Verdict.proxy_blocked("status_503", retry_after=10)) is True
    assert on_a.is_usable and not on_a.is_retired
    assert {m.acquire().proxy_url for _ in range(20)} == {"http://b:2"}
    assert stats["proxies_in_backoff"] == 1 and stats["proxy_blocks/status_503"] == 1
    assert m.acquire(session_id=on_a.id) is None  # a request pinned to it waits
    clock.advance(10)
    assert m.acquire(session_id=on_a.id) is on_a
    assert "http://a:1" in {m.acquire().proxy_url for _ in range(40)}


def test_brand_new_sessions_blocked_in_a_row_cool_their_exit_down():
    m, stats = make(proxy_block_threshold=2, max_pool_size=3, warm_up=False)
    a, b, c = (m.acquire() for _ in range(3))
    m.judge(a, Verdict.session_blocked("status_403"))
    m.judge(b, Verdict.session_blocked("status_403"))
    assert a.is_retired and not b.is_retired and not c.is_retired
    assert stats["proxy_blocks"] == 1
    m.judge(c, Verdict.session_blocked("status_403"))
    assert not c.is_retired  # its exit is cooling down: the session is not to blame
    assert m.acquire() is None  # the only exit is cooling down: requests wait


def test_sessions_blocked_after_working_a_while_are_blamed_themselves():
    m, stats = make(proxy_block_threshold=2, max_pool_size=3, warm_up=False)
    sessions = [m.acquire() for _ in range(3)]
    for s in sessions:
        m.judge(s, Verdict.good())
    for s in sessions:
        m.acquire(session_id=s.id)
        m.judge(s, Verdict.session_blocked("status_403"))
    assert all(s.is_retired for s in sessions) and "proxy_blocks" not in stats


def test_pinned_session_that_is_gone_gets_a_fresh_one_and_a_stat():
    m, stats = make()
    s = m.acquire(session_id="session_gone")
    assert s is not None and s.id != "session_gone"
    assert stats["pinned_missing"] == 1


def test_named_pools_are_separate():
    m, _ = make()
    assert m.pool("login") is not m.pool(None)
    assert m.acquire("login").id in {s.id for s in m.pool("login")}


class DictSource:
    def __init__(self, states):
        self.states = states
        self.rejected = []

    def load(self, name):
        return self.states.get(name)

    def reject(self, name, error):
        self.rejected.append((name, str(error)))


def test_restore_from_the_state_source_and_reject_a_bad_state():
    source, _ = make()
    kept = source.acquire()
    states = DictSource({None: source.pool().get_state(), "bad": {"version": 99, "sessions": []}})
    m, stats = make()
    m.state_source = states
    assert m.acquire(session_id=kept.id).id == kept.id
    assert stats["restored"] == 1
    assert m.pool("bad").usable_sessions_count == 0
    ((name, error),) = states.rejected
    assert name == "bad" and "newer" in error


def test_summary_counts_blocks_per_minute():
    clock = FakeClock()
    m, _ = make(clock)
    m.judge(m.acquire(), Verdict.session_blocked("ban_pattern"))
    clock.advance(30)
    m.judge(m.acquire(), Verdict.session_blocked("ban_pattern"))
    assert m.summary()["blocks_per_minute"] == 2
    clock.advance(31)
    summary = m.summary()
    assert summary["blocks_per_minute"] == 1
    assert summary["retired_by_reason"] == {"ban_pattern": 2} and summary["created"] == 2


def test_answers_of_a_known_exit_block_are_counted_once():
    m, stats = make(proxies=("http://a:1", "http://b:2"), warm_up=False)
    sessions = [m.acquire() for _ in range(4)]
    on_a = [s for s in sessions if s.proxy_url == "http://a:1"]
    for s in on_a:
        m.judge(s, Verdict.proxy_blocked("status_503", retry_after=10))
    assert stats["proxy_blocks"] == 1 and all(s.is_usable for s in on_a)
