"""The judge: who is to blame for a block signal, the session, its exit or the site.

A status code does not say who is blocked: one site answers a banned cookie with 429 and
``Retry-After`` for ever, another rate limits an IP with 403. The judge decides from what the
other sessions and exits see, as a circuit breaker does:

* a block on a session, while its exit works for the others, makes the session **suspect**:
  it sits out the site's ``Retry-After`` (or a short wait), and its first request after that
  decides. Blocked again, while other sessions of its exit got good answers meanwhile and the
  exit is not itself suspected, it is condemned, and the next answer of another session through
  the same exit is the control: good -> the **session** is to blame: retire it; blocked -> its
  exit is (it stays suspect). A good answer of its own clears it. A session blocked
  ``max_strikes`` times in a row is retired whatever the others see.
* several distinct sessions of one exit blocked in a row (no good answer through the exit sent
  after the first of them; a suspect's own repeat does not count; more where its sessions are
  often found guilty, as coincidences are likelier there) -> the **exit** is
  suspected: with ``Retry-After`` it cools down for that long, else it goes on one request at a
  time (probes). A good answer closes the breaker; as many probes blocked in a row cool the
  exit down, with a backoff that doubles while it stays blocked. The sessions are kept
  (suspect, so each is tested again once the exit works).
* that, on most of a site's exits at once, or on the only exit -> the **site**: the same, for
  the whole site (every exit together), and no exit is cooled down.
* a brand-new session refused on its very first request, while its exit's established sessions
  get good answers, never was an identity: it is dropped. Several in a row -> the exit refuses
  **new sessions** (a cap per IP): no new session is made on it for a while (a backoff).

Blocks of requests sent before a decision took effect (in flight then) are part of that
decision and change nothing. Pure: no Scrapy, no Twisted; time comes from an injected clock.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol

__all__ = ["Blame", "Decision", "GoodNews", "Judge", "Suspect"]

_NEVER = math.inf
#: Exits suspected within this many seconds of each other are blocked "at once" (a site event).
AT_ONCE = 5.0
#: A breaker suspected again this soon after it closed goes on with the same episode (paused, not slowed).
SETTLE = 2.0
#: Each this many sessions of an exit found guilty within the window ask one more blocked in a row
#: before the exit is suspected.
GUILTY_PER_EXTRA = 4


class Blame(Enum):
    SESSION = "session"  # retire the session
    EXIT = "exit"  # the exit: probe it, or cool it down for ``wait``; keep its sessions
    SITE = "site"  # the site: probe it, or pause it for ``wait``; keep sessions and exits
    PENDING = "pending"  # not known yet: the session sits out ``wait``, its next request decides
    NEWCOMER = "newcomer"  # a new session refused at once while its exit's others work: drop it
    KNOWN = "known"  # part of a block already decided (the request was in flight): nothing new


class Suspect(Protocol):
    """What the judge reads of a session: its id and its open suspicion."""

    @property
    def id(self) -> str: ...

    @property
    def suspected_at(self) -> float | None: ...

    @property
    def sits_out_until(self) -> float: ...

    @property
    def strikes(self) -> int: ...

    @property
    def usage_count(self) -> int: ...


@dataclass(frozen=True)
class Decision:
    """The judge's answer to one block signal.

    ``wait``: how long the session sits out (PENDING), the exit cools down or the site pauses
    (EXIT, SITE; 0: no pause, a probe). ``strikes``: the session's blocks in a row (PENDING).
    ``suspects``: sessions blocked in the same event, which sit out and are tested again once
    the exit works; ``newcomers``: sessions refused on their first request, to drop (with an
    EXIT decision: the exit refuses new sessions, for ``wait`` seconds); ``lifted``: exits whose
    breakers a site decision takes over (their cool-downs and probes end); ``slow_down``: the exit
    (or the site) throttles at the rate it was sending at before ``began``: slow it down (not
    after a blocked probe: probes go one at a time). ``evidence`` is for the DEBUG line.
    """

    blame: Blame
    wait: float = 0.0
    strikes: int = 0
    suspects: tuple[str, ...] = ()
    lifted: tuple[str | None, ...] = ()
    slow_down: bool = False
    condemned: bool = False  # PENDING: the next answer of another session through the exit decides
    acquitted: tuple[str, ...] = ()  # condemned sessions whose control failed
    newcomers: tuple[str, ...] = ()
    began: float | None = None  # when the event's first block came
    evidence: str = ""


@dataclass(frozen=True)
class GoodNews:
    """What one good answer proved: the suspect session is fine, the exit's or the site's probe passed,
    and which condemned sessions of its exit are guilty (id, the signal of their block)."""

    session_cleared: bool = False
    exit_closed: bool = False
    site_closed: bool = False
    guilty: tuple[tuple[str, str], ...] = ()


_NOTHING = GoodNews()


@dataclass
class _Breaker:
    """A suspected exit or site: probing (one request at a time) from ``known_until`` on."""

    probing: bool = False
    known_until: float = -_NEVER  # blocks of requests sent before this belong to the last decision
    blamed_at: float = -_NEVER
    closed_at: float = -_NEVER
    consecutive: int = 0  # pauses with no good answer in between (for the backoff)


@dataclass
class _Exit(_Breaker):
    """What one (site, exit) pair has shown lately."""

    url: str | None = None
    run: dict[str, float] = field(default_factory=dict)  # sessions blocked with no good answer since
    recent: dict[str, float] = field(default_factory=dict)  # session -> its last block, within the window
    good: float = -_NEVER  # send time of the latest good answer
    good_sid: str = ""
    good_other: float = -_NEVER  # send time of the latest good answer of another session than good_sid
    good_established: float = -_NEVER  # send time of the latest good answer of a session answered before
    seen: float = -_NEVER  # the last answer of any kind
    condemned: dict[str, tuple[float, str]] = field(default_factory=dict)  # id -> (its test's send time, signal)
    newcomers: dict[str, float] = field(default_factory=dict)  # new sessions refused in a row (id -> when)
    guilty: deque[float] = field(default_factory=deque)  # when its sessions were found guilty, within the window
    newcomer_pauses: int = 0  # refusals of new sessions with no new session accepted in between

    def good_from_another(self, session_id: str) -> float:
        return self.good if self.good_sid != session_id else self.good_other


@dataclass
class _Site(_Breaker):
    exits: dict[str | None, _Exit] = field(default_factory=dict)


class Judge:
    """Decides who is to blame for each block signal; see the module docstring.

    :param exit_sessions: distinct sessions of one exit blocked in a row that suspect the exit.
    :param window: seconds within which blocks count as one event.
    :param site_share: more than this share of a site's exits suspected within ``AT_ONCE``
        seconds (and at least two) suspects the site.
    :param suspect_wait: how long a suspect session sits out when the site gives no
        ``Retry-After`` (doubled at each further strike).
    :param max_strikes: a session blocked this many times in a row is retired, whatever the others see.
    :param backoff_base, backoff_max: cool-downs after a blocked probe without ``Retry-After``:
        exponential with jitter, doubling while the exit (or site) stays blocked; ``backoff_max``
        also caps every ``Retry-After``.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        exit_sessions: int = 2,
        window: float = 60.0,
        site_share: float = 0.5,
        suspect_wait: float = 5.0,
        max_strikes: int = 5,
        backoff_base: float = 5.0,
        backoff_max: float = 600.0,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._exit_sessions = exit_sessions
        self._window = window
        self._site_share = site_share
        self._suspect_wait = suspect_wait
        self._max_strikes = max_strikes
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sites: dict[str, _Site] = {}

    def _place(self, site: str, exit_url: str | None) -> tuple[_Site, _Exit]:
        place = self._sites.get(site)
        if place is None:
            place = self._sites[site] = _Site()
        ev = place.exits.get(exit_url)
        if ev is None:
            ev = place.exits[exit_url] = _Exit(url=exit_url)
        return place, ev

    # -- evidence -----------------------------------------------------------------------

    def good(self, session: Suspect, exit_url: str | None, site: str, sent_at: float) -> GoodNews:
        """Record a good answer, and say what it proved."""
        place, ev = self._place(site, exit_url)
        ev.seen = self._clock()
        if ev.run:  # the exit worked after those blocks
            ev.run = {sid: t for sid, t in ev.run.items() if t > sent_at}
        sid = session.id
        if session.usage_count == 0:
            if ev.newcomers:  # a new session was let in
                ev.newcomers.clear()
                ev.newcomer_pauses = 0
        else:
            ev.good_established = max(ev.good_established, sent_at)
        if sent_at >= ev.good:
            if sid != ev.good_sid:
                ev.good_other = ev.good
            ev.good, ev.good_sid = sent_at, sid
        elif sid != ev.good_sid:
            ev.good_other = max(ev.good_other, sent_at)
        exit_closed = _close(ev, sent_at, ev.seen)
        site_closed = _close(place, sent_at, ev.seen)
        cleared = session.suspected_at is not None and sent_at >= session.sits_out_until
        guilty: tuple[tuple[str, str], ...] = ()
        if ev.condemned:  # its own good answer acquits it; another's is the control
            ev.condemned.pop(sid, None)
            guilty = tuple(
                (other, signal) for other, (t, signal) in ev.condemned.items() if other != sid and sent_at >= t
            )
            for other, _ in guilty:
                del ev.condemned[other]
        if not (cleared or exit_closed or site_closed or guilty):
            return _NOTHING
        return GoodNews(cleared, exit_closed, site_closed, guilty)

    def blocked(
        self,
        session: Suspect,
        exit_url: str | None,
        site: str,
        sent_at: float,
        retry_after: float | None = None,
        *,
        signal: str = "blocked",
        exits: int = 1,
        exit_is_blocked: bool = False,
    ) -> Decision:
        """Decide who is to blame for a block signal on ``session`` through ``exit_url``.

        ``sent_at`` is when the request left; ``exits`` is how many exits the session's pool
        has; ``exit_is_blocked`` is a policy's own verdict that the exit is to blame
        (``Verdict.proxy_blocked``).
        """
        now = self._clock()
        place, ev = self._place(site, exit_url)
        ev.seen = now
        sid = session.id
        suspected_at = session.suspected_at
        # in flight when a decision on its exit (or site) was taken: nothing new of them, but the session
        # was blocked, so it is suspect too (and no clean probe)
        if sent_at < place.known_until:
            return Decision(Blame.KNOWN, suspects=(sid,), evidence="sent before the site's last decision took effect")
        if sent_at < ev.known_until:
            return Decision(Blame.KNOWN, suspects=(sid,), evidence="sent before the exit's last decision took effect")
        if suspected_at is not None and sent_at < session.sits_out_until and not exit_is_blocked:
            return Decision(Blame.KNOWN, evidence="sent before the session's wait ended")
        self._forget(ev, now)
        newcomer = session.usage_count == 0 and suspected_at is None and not exit_is_blocked
        if newcomer:
            refused = self._newcomer(place, ev, sid, sent_at, now, retry_after)
            if refused is not None:
                return refused
        ev.recent[sid] = now
        acquitted: tuple[str, ...] = ()
        if suspected_at is None or exit_is_blocked:  # a suspect's block is its own test, not the exit's
            ev.run[sid] = now
            if ev.condemned:  # the control failed: the exit blocks the others too
                acquitted = tuple(other for other, c in ev.condemned.items() if c[0] <= sent_at)
                for other in acquitted:
                    del ev.condemned[other]
        decision = self._judge(place, ev, session, sent_at, retry_after, signal, exits, exit_is_blocked, now)
        return replace(decision, acquitted=acquitted) if acquitted else decision

    def _judge(
        self,
        place: _Site,
        ev: _Exit,
        session: Suspect,
        sent_at: float,
        retry_after: float | None,
        signal: str,
        exits: int,
        exit_is_blocked: bool,
        now: float,
    ) -> Decision:
        sid, suspected_at = session.id, session.suspected_at
        probing = place if place.probing else ev if ev.probing else None
        if exit_is_blocked or len(ev.run) >= self._exit_sessions + self._coincidences(ev, now):
            if probing is not None:  # the probes failed too: pause, then probe again
                return self._open(place, ev, probing, retry_after, now, f"{len(ev.run)} probes blocked in a row")
            why = (
                "the ban policy blames the exit"
                if exit_is_blocked
                else (f"{len(ev.run)} sessions blocked in a row through this exit")
            )
            since = now - self._window
            ev.blamed_at = now
            active = [e for e in place.exits.values() if e.seen > since]
            suspected = [e for e in active if e.blamed_at > now - AT_ONCE]
            total = max(exits, len(active))
            breaker: _Breaker = ev
            if total <= 1 or (len(suspected) >= 2 and len(suspected) > self._site_share * total):
                breaker = place
            return self._open(
                place, ev, breaker, retry_after, now, f"{why}; {len(suspected)} of {total} exits suspected", first=True
            )
        if suspected_at is None:
            return Decision(
                Blame.PENDING, self._session_wait(retry_after, 1), 1, evidence="first block of this session"
            )
        # its first request after the wait was blocked too
        others_blocked = sum(1 for other, t in ev.recent.items() if other != sid and t >= suspected_at)
        others_good = ev.good_from_another(sid) >= suspected_at
        strikes = session.strikes + 1
        evidence = (
            f"block {strikes} in a row; since its first, other sessions of the exit: "
            f"{'good answers' if others_good else 'no good answer'}, {others_blocked} blocked"
        )
        if strikes >= self._max_strikes:
            ev.condemned.pop(sid, None)
            return Decision(Blame.SESSION, strikes=strikes, evidence=evidence)
        if others_good and not (ev.probing or place.probing):
            if ev.good_from_another(sid) >= sent_at:  # the control is in already: another session got through after
                return Decision(
                    Blame.SESSION, strikes=strikes, evidence=evidence + "; another session got through since"
                )
            ev.condemned[sid] = (sent_at, signal)
            return Decision(
                Blame.PENDING,
                self._session_wait(retry_after, strikes),
                strikes,
                condemned=True,
                evidence=evidence + "; condemned, unless the next answer through the exit is blocked too",
            )
        return Decision(Blame.PENDING, self._session_wait(retry_after, strikes), strikes, evidence=evidence)

    def _newcomer(
        self, place: _Site, ev: _Exit, sid: str, sent_at: float, now: float, retry_after: float | None
    ) -> Decision | None:
        """A brand-new session refused on its first request, while the exit serves its established
        sessions (a good answer of one to a request sent after this one): drop it; several in a row
        mean a cap on new sessions. If established sessions of the exit were blocked lately too, or the
        exit or its site was blamed, the refusal is not about being new (a rate limit, say): an ordinary block."""
        if ev.good_established < sent_at:
            return None  # nothing says the exit works for its established sessions now: an ordinary block
        since = now - self._window
        if ev.blamed_at > since or place.blamed_at > since or any(t > since for t in ev.recent.values()):
            return None  # the established are blocked too (or the exit or site was): nothing singles out the new
        ev.newcomers[sid] = now
        if len(ev.newcomers) < self._exit_sessions:
            return Decision(Blame.NEWCOMER, newcomers=(sid,), evidence="a new session refused on its first request")
        ev.newcomer_pauses += 1
        pause = self._pause(retry_after, ev.newcomer_pauses)
        refused = tuple(ev.newcomers)
        ev.newcomers.clear()
        return Decision(
            Blame.EXIT,
            pause,
            newcomers=refused,
            evidence=f"{len(refused)} new sessions refused in a row while established ones got good answers",
        )

    def _open(
        self,
        place: _Site,
        ev: _Exit,
        breaker: _Breaker,
        retry_after: float | None,
        now: float,
        why: str,
        first: bool = False,
    ) -> Decision:
        """Suspect the exit (or the whole site, when ``breaker`` is the site): probe it at once on a
        first suspicion without ``Retry-After``, else pause it, then probe it."""
        if now - breaker.closed_at < SETTLE:  # closed a moment ago: the same episode goes on, its rate is no new one
            first = False
        breaker.blamed_at = now
        began = min(
            (t for e in (place.exits.values() if breaker is place else (ev,)) for t in e.run.values()), default=now
        )
        if first and retry_after is None:
            pause = 0.0
        else:
            breaker.consecutive += 1
            pause = self._pause(retry_after, breaker.consecutive)
        breaker.probing = True
        breaker.known_until = now + pause
        if breaker is place:
            suspects = tuple(dict.fromkeys(sid for e in place.exits.values() for sid in e.run))
            lifted = tuple(e.url for e in place.exits.values() if e.known_until > now or e.probing)
            for e in place.exits.values():
                e.run.clear()
                e.probing, e.known_until = False, min(e.known_until, now)
            return Decision(
                Blame.SITE, pause, suspects=suspects, lifted=lifted, slow_down=first, began=began, evidence=why
            )
        suspects = tuple(ev.run)
        ev.run.clear()
        return Decision(Blame.EXIT, pause, suspects=suspects, slow_down=first, began=began, evidence=why)

    def _coincidences(self, ev: _Exit, now: float) -> int:
        """Where sessions are often found guilty, a few blocked in a row may be chance: ask for more."""
        while ev.guilty and ev.guilty[0] <= now - self._window:
            ev.guilty.popleft()
        return len(ev.guilty) // GUILTY_PER_EXTRA

    def guilty(self, exit_url: str | None, site: str) -> None:
        """A session of this exit was found guilty (retired for its blocks)."""
        _, ev = self._place(site, exit_url)
        ev.guilty.append(self._clock())

    def forget(self, session_id: str) -> None:
        """The session left the pool: it is no longer awaiting a control."""
        for place in self._sites.values():
            for ev in place.exits.values():
                ev.condemned.pop(session_id, None)

    def _forget(self, ev: _Exit, now: float) -> None:
        since = now - self._window
        if ev.run and min(ev.run.values()) <= since:
            ev.run = {sid: t for sid, t in ev.run.items() if t > since}
        if len(ev.recent) > 8 and min(ev.recent.values()) <= since:
            ev.recent = {sid: t for sid, t in ev.recent.items() if t > since}

    def suspect_wait(self, retry_after: float | None, strikes: int) -> float:
        return self._session_wait(retry_after, strikes)

    def _session_wait(self, retry_after: float | None, strikes: int) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self._backoff_max)
        return min(self._suspect_wait * 2.0 ** (max(strikes, 1) - 1), self._backoff_max)

    def _pause(self, retry_after: float | None, consecutive: int) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self._backoff_max)
        ceiling = min(self._backoff_max, self._backoff_base * 2 ** (consecutive - 1))
        return self._rng.uniform(ceiling / 2, ceiling)


def _close(breaker: _Breaker, sent_at: float, now: float) -> bool:
    """A good answer to a request sent after the breaker's last decision closes it."""
    if sent_at < breaker.known_until:
        return False
    breaker.consecutive = 0
    if breaker.probing:
        breaker.probing, breaker.closed_at = False, now
        return True
    return False
