"""Pacing: when the next request to a site may leave through an exit.

Each (site, exit) pair, and each site as a whole, may have a rate limit, a pause and a probe. The
rate is cut and grown back as TCP CUBIC does with its window: when the judge finds an exit (or
the site) throttling, its peak is the rate it was refused at (what it was sending before the
blocks began, or less: what the site let through then, its good answers); the rate is cut to half
the peak, grows back to 90% of it within ``T_KNEE`` seconds, then only slowly past it (doubling
in ``T_PLATEAU`` seconds), until the next cut or until it no longer limits anything. Delays
never pass ``max_delay``, so no exit can run away to one request a minute. A suspected exit or
site is probed: one request at a time until the judge has its answer. A request asks for its
turn: it goes at once, or is told how long to wait before it asks again (turns are not reserved,
so a gate that speeds up serves its waiting requests sooner). Pure: no Scrapy, no Twisted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Pacer"]

#: Rates are counted over this many seconds (before the blocks of an event began).
WINDOW = 2.0
#: Good answers needed within the window to read what the site let through (over the part of the
#: window the gate was sending in, at least ``MIN_SPAN`` seconds).
GOOD_ENOUGH = 8
MIN_SPAN = 0.5
#: After a cut to half the peak, the rate grows back to ``KNEE`` of the peak in ``T_KNEE`` seconds,
#: then doubles in ``T_PLATEAU`` seconds.
KNEE = 0.9
T_KNEE = 10.0
T_PLATEAU = 120.0
#: A cut never goes below the good rate served within this many seconds before.
SERVED_MEMORY = 30.0
#: The least delay of a slowed site (every exit together): a site spans many exits.
SITE_MIN_DELAY = 0.001
#: A probe that never comes back (its request was dropped) stops holding its gate after this long.
PROBE_TIMEOUT = 60.0


@dataclass
class _Gate:
    next_at: float = 0.0
    paused_until: float = 0.0
    peak: float = 0.0  # requests a second it was refused at, at the last cut (0: not limited)
    cut_at: float = 0.0
    sends: deque[float] = field(default_factory=deque)  # turns taken, within two windows
    goods: deque[float] = field(default_factory=deque)  # good answers, within two windows
    served: deque[tuple[float, float]] = field(default_factory=deque)  # (time, good rate then): the best recent
    probing: bool = False  # one request at a time
    probe_out_until: float = 0.0  # a probe is on its way (until its answer, or this time)

    def busy(self, now: float) -> bool:
        return self.probing and self.probe_out_until > now

    def delay(self, now: float, min_delay: float, max_delay: float) -> float:
        if not self.peak:
            return 0.0
        t, knee = max(now - self.cut_at, 0.0), KNEE * self.peak
        rate = self.peak / 2 + (knee - self.peak / 2) * min(t / T_KNEE, 1.0) + knee * max(t - T_KNEE, 0.0) / T_PLATEAU
        if rate > 2.0 / min_delay:  # it no longer limits anything
            self.peak = 0.0
            return 0.0
        return min(max_delay, max(min_delay, 1.0 / rate))

    def cut(self, now: float, began: float, min_delay: float, max_delay: float) -> None:
        current = 1.0 / self.delay(now, min_delay, max_delay) if self.peak else 0.0
        _trim(self.sends, now)
        sending = _count_before(self.sends, began) / WINDOW
        peak = min(sending, current) if sending and current else sending or current or 1.0 / min_delay
        good = _count_before(self.goods, began)
        if good >= GOOD_ENOUGH:  # it was refused at no more than what the site let through
            span = min(WINDOW, max(began - (self.sends[0] if self.sends else began), MIN_SPAN))
            peak = min(peak, good / span)
        # a block at a rate the site served well lately is not about the rate: never cut below that
        while self.served and self.served[0][0] <= now - SERVED_MEMORY:
            self.served.popleft()
        served = max((rate for _, rate in self.served), default=0.0)
        self.peak = max(peak, served, 2.0 / max_delay)
        self.cut_at = now


def _served(gate: _Gate, now: float) -> None:
    """Record a good answer, and (once a window) the good rate the gate had then."""
    _record(gate.goods, now)
    if not gate.served or gate.served[-1][0] <= now - WINDOW:
        gate.served.append((now, _count_before(gate.goods, now) / WINDOW))


def _record(times: deque[float], now: float) -> None:
    times.append(now)
    while times[0] <= now - 2 * WINDOW:
        times.popleft()


def _count_before(times: deque[float], until: float) -> int:
    return sum(1 for t in times if until - WINDOW < t <= until)


def _trim(times: deque[float], now: float) -> None:
    while times and times[0] <= now - 2 * WINDOW:
        times.popleft()


class Pacer:
    """Rates, pauses and probes per (site, exit) and per site.

    :param min_delay: the least delay of a slowed exit.
    :param max_delay: the greatest delay of a slowed exit or site.
    """

    def __init__(self, *, clock: Callable[[], float], min_delay: float = 0.05, max_delay: float = 5.0) -> None:
        self._clock = clock
        self._min = min_delay
        self._max = max(max_delay, min_delay)
        self._exits: dict[tuple[str, str | None], _Gate] = {}
        self._sites: dict[str, _Gate] = {}

    def _exit(self, site: str, exit_url: str | None) -> _Gate:
        gate = self._exits.get((site, exit_url))
        if gate is None:
            gate = self._exits[(site, exit_url)] = _Gate()
        return gate

    def _site(self, site: str) -> _Gate:
        gate = self._sites.get(site)
        if gate is None:  # the site saw every exit's turns and good answers
            gate = self._sites[site] = _Gate()
            exits = [g for (s, _), g in self._exits.items() if s == site]
            gate.sends.extend(sorted(t for g in exits for t in g.sends))
            gate.goods.extend(sorted(t for g in exits for t in g.goods))
        return gate

    # -- turns ----------------------------------------------------------------------

    def wait(self, site: str, exit_url: str | None) -> float:
        """Seconds until a request to ``site`` through ``exit_url`` could go, without taking the turn
        (infinite while a probe is on its way)."""
        now = self._clock()
        gate = self._exits.get((site, exit_url))
        whole = self._sites.get(site)
        at = now
        for g in (gate, whole):
            if g is not None:
                if g.busy(now):
                    return float("inf")
                at = max(at, g.next_at, g.paused_until)
        return at - now

    def turn(self, site: str, exit_url: str | None) -> float | None:
        """Take the turn of a request to ``site`` through ``exit_url`` if it is free now (0.0), else say
        how many seconds to wait before asking again, or None while a probe of the exit (or site) is
        on its way."""
        now = self._clock()
        gate = self._exit(site, exit_url)
        whole = self._sites.get(site)
        if gate.busy(now) or (whole is not None and whole.busy(now)):
            return None
        at = max(gate.next_at, gate.paused_until)
        if whole is not None:
            at = max(at, whole.next_at, whole.paused_until)
        if at > now:
            return at - now
        if whole is not None:
            whole.next_at = now + whole.delay(now, SITE_MIN_DELAY, self._max)
            _record(whole.sends, now)
            if whole.probing:
                whole.probe_out_until = now + PROBE_TIMEOUT
        gate.next_at = now + gate.delay(now, self._min, self._max)
        _record(gate.sends, now)
        if gate.probing:
            gate.probe_out_until = now + PROBE_TIMEOUT
        return 0.0

    def answered(self, site: str, exit_url: str | None) -> None:
        """The answer of a request through ``exit_url`` came back (or it did not go): a probe may go again."""
        gate = self._exits.get((site, exit_url))
        if gate is not None and gate.probing:
            gate.probe_out_until = 0.0
        whole = self._sites.get(site)
        if whole is not None and whole.probing:
            whole.probe_out_until = 0.0

    def good(self, site: str, exit_url: str | None) -> None:
        """A good answer (what the site lets through is read from these)."""
        now = self._clock()
        gate = self._exit(site, exit_url)
        _served(gate, now)
        whole = self._sites.get(site)
        if whole is not None:
            _served(whole, now)
            if not whole.probing and whole.paused_until <= now and not whole.delay(now, SITE_MIN_DELAY, self._max):
                del self._sites[site]

    # -- slowing down -----------------------------------------------------------------

    def slow_exit(self, site: str, exit_url: str | None, since: float | None = None) -> float:
        """Cut the rate of one exit for ``site`` after blocks that began at ``since`` (unless it was
        cut already after that); returns its delay."""
        gate = self._exit(site, exit_url)
        now = self._clock()
        began = now if since is None else min(since, now)
        if since is None or gate.cut_at < since:
            gate.cut(now, began, self._min, self._max)
        return gate.delay(now, self._min, self._max)

    def slow_site(self, site: str, pause: float = 0.0, slow_down: bool = True, since: float | None = None) -> float:
        """Pause the whole site (every exit together) and cut its rate after blocks that began at
        ``since``; returns its delay."""
        gate = self._site(site)
        now = self._clock()
        if pause > 0:
            gate.paused_until = max(gate.paused_until, now + pause)
        if slow_down:
            gate.cut(now, now if since is None else min(since, now), SITE_MIN_DELAY, self._max)
            gate.cut_at = max(gate.cut_at, gate.paused_until)  # it grows back from when sending resumes
        return gate.delay(now, SITE_MIN_DELAY, self._max)

    def probe_exit(self, site: str, exit_url: str | None, probing: bool = True) -> None:
        """Start (or end) probing an exit for ``site``: one request at a time."""
        gate = self._exit(site, exit_url)
        gate.probing, gate.probe_out_until = probing, 0.0

    def probe_site(self, site: str, probing: bool = True) -> None:
        """Start (or end) probing the whole site: one request at a time, whatever the exit."""
        if not probing and site not in self._sites:
            return
        gate = self._site(site)
        gate.probing, gate.probe_out_until = probing, 0.0

    # -- reading ----------------------------------------------------------------------

    def exit_delay(self, site: str, exit_url: str | None) -> float:
        gate = self._exits.get((site, exit_url))
        return gate.delay(self._clock(), self._min, self._max) if gate is not None else 0.0

    def site_delay(self, site: str) -> float:
        gate = self._sites.get(site)
        return gate.delay(self._clock(), SITE_MIN_DELAY, self._max) if gate is not None else 0.0

    def paused_until(self, site: str) -> float:
        gate = self._sites.get(site)
        return gate.paused_until if gate is not None else 0.0
