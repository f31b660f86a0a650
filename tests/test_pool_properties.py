"""Property-based test of the pool's invariants under random sequences of operations."""

import json

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from scrapy_sessionpool import SessionPool
from tests.clock import FakeClock

OPTIONS = {"max_age_secs": 100, "max_usage_count": 4, "max_error_score": 2, "error_score_decrement": 0.5}


class PoolMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.clock = FakeClock()
        self.created = 0
        self.retired_ids = set()
        self.in_flight = []
        self.strategy = "random"
        self.pool = self._new_pool()

    def _new_pool(self, state=None):
        pool = SessionPool(
            max_pool_size=5, session_options=OPTIONS, clock=self.clock, seed=3, reuse_strategy=self.strategy
        )
        pool.add_listener("session_created", self._on_created)
        pool.add_listener("session_retired", lambda s: self.retired_ids.add(s.id))
        if state is not None:
            live_before = {s["id"] for s in state["sessions"]}
            pool.restore(state)
            self.retired_ids |= live_before - {s.id for s in pool}
        return pool

    def _on_created(self, session):
        self.created += 1

    @rule(strategy=st.sampled_from(["random", "round_robin", "use_until_failure"]))
    def switch_strategy(self, strategy):
        self.strategy = strategy
        self.in_flight.clear()
        self.pool = self._new_pool(json.loads(json.dumps(self.pool.get_state())))

    @rule()
    def get(self):
        session = self.pool.get_session()
        if session is None:
            assert self.pool.usable_sessions_count == self.pool.max_pool_size
            assert self.in_flight, "the pool is full of sessions in use only while requests are in flight"
            return
        assert session.is_usable
        assert session.id not in self.retired_ids
        # a hand-out is a lease: never more uses in flight or done than the limit allows
        assert session.usage_count + session._leases <= session.max_usage_count
        self.in_flight.append(session)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def get_pinned(self, data):
        session = data.draw(st.sampled_from(self.in_flight))
        again = self.pool.get_session(session.id)
        if again is None:
            assert not session.is_usable or session.id not in {s.id for s in self.pool}
        else:
            assert again is session and session.is_usable
            self.in_flight.append(session)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), verdict=st.sampled_from(["good", "bad", "retire"]))
    def finish(self, data, verdict):
        session = self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))
        was_retired = session.is_retired
        {"good": session.mark_good, "bad": session.mark_bad, "retire": session.retire}[verdict]()
        if was_retired:
            assert session.is_retired and not session.is_usable

    @rule(seconds=st.floats(0, 60))
    def advance(self, seconds):
        self.clock.advance(seconds)

    @rule()
    def round_trip(self):
        self.in_flight.clear()
        self.pool = self._new_pool(json.loads(json.dumps(self.pool.get_state())))

    @invariant()
    def counts_add_up(self):
        live = list(self.pool)
        assert len(live) <= self.pool.max_pool_size
        assert all(s.is_usable for s in live)
        assert not {s.id for s in live} & self.retired_ids
        assert self.created == len(live) + self.pool.retired_sessions_count


TestPool = PoolMachine.TestCase
TestPool.settings = settings(max_examples=150, stateful_step_count=60, deadline=None, derandomize=True)
