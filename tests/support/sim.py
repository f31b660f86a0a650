"""Simulated crawls: the pool's pure core (manager, judge, pacer) against a :class:`BlockModel`, in simulated time.

The request flow mirrors the middleware's: take a session (pinned or picked), wait for its turn,
send, judge the answer with the real :class:`BanPolicy`, then deliver it, re-fetch a challenge
with the same session, follow a redirect, retry a 500 (as ``RetryMiddleware``) or rotate. Time is
a :class:`FakeClock` moved by an event loop, so a crawl of 1,000 items takes a fraction of a
second and is exactly repeatable. Requests cost ``latency`` seconds (plus the page's own delay)
and ``concurrency`` of them are in flight at most, as ``CONCURRENT_REQUESTS``.
"""

from __future__ import annotations

import heapq
import itertools
import random
import re
from collections import Counter
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from scrapy.http import HtmlResponse, Request
from scrapy.settings import Settings
from twisted.web._newclient import ResponseNeverReceived

from scrapy_sessionpool.manager import PoolManager
from scrapy_sessionpool.policy import BanPolicy
from scrapy_sessionpool.settings import PoolSettings
from tests.clock import FakeClock
from tests.support.blocking import BAN_TEXT, CHALLENGE_TEXT, BlockModel, Cell, cell_options

SITE = "shop.test"
POLL = 0.25
RETRY_TIMES = 2
REDIRECT_PRIORITY = 2  # Scrapy's REDIRECT_PRIORITY_ADJUST
RETRY_PRIORITY = -1  # RETRY_PRIORITY_ADJUST
#: The settings the benchmark calls the add-on defaults: a ban pattern and a challenge pattern.
DEFAULTS = {"SESSIONPOOL_BAN_PATTERNS": [BAN_TEXT], "SESSIONPOOL_CHALLENGE_PATTERNS": [CHALLENGE_TEXT]}

_LINK = re.compile(r'href="(/[^"]+)"')


@dataclass
class _Req:
    path: str
    pin: str | None = None  # the session it is pinned to (a spider's pin, a retry, a redirect, a challenge)
    picked: bool = False  # the pin is the middleware's own choice
    rotations: int = 0
    challenges: int = 0
    retries: int = 0
    origin: str | None = None  # the first URL of a redirect chain
    not_before: float = 0.0
    sent_at: float | None = None  # when the first request of a redirect chain left
    priority: int = 0


@dataclass
class Result:
    """What a simulated crawl did."""

    cell: str
    items: int
    obtained: int
    requests: int
    seconds: float
    stats: dict[str, int]
    site: dict[str, Any]
    innocent_retired: int  # sessions retired that had worked and that the site had not banned
    banned_kept: int  # sessions the site banned that were still in the pool (not suspect) at the end
    leaked: int = 0  # block or challenge pages delivered to the spider as content
    lost: list[str] = field(default_factory=list)  # requests given up

    @property
    def share(self) -> float:
        return self.obtained / self.items

    @property
    def per_item(self) -> float:
        return self.requests / max(self.obtained, 1)


class Simulation:
    def __init__(
        self,
        cell: Cell,
        *,
        proxies: int = 4,
        concurrency: int = 16,
        latency: float = 0.03,
        settings: dict[str, Any] | None = None,
        seed: int = 1,
        max_seconds: float = 600.0,
        **model: Any,
    ) -> None:
        self.clock = FakeClock(0.0)
        self._ids = random.Random(seed)
        self.model = BlockModel(cell, clock=self.clock, seed=seed, **{**cell_options(cell), **model})
        names = [f"proxy{i}" for i in range(proxies)]
        self.exit_names = {f"http://10.0.0.{i + 1}:3128": name for i, name in enumerate(names)}
        raw = {
            "SESSIONPOOL_ENABLED": True,
            "SESSIONPOOL_SEED": seed,
            "CONCURRENT_REQUESTS": concurrency,
            "SESSIONPOOL_PROXIES": list(self.exit_names),
            **DEFAULTS,
            **(settings or {}),
        }
        cfg = PoolSettings.from_settings(Settings(raw))
        self.stats: Counter[str] = Counter()
        self.manager = PoolManager(cfg, clock=self.clock, stats=self._stat)
        self.policy = BanPolicy(cfg, (OSError, TimeoutError))
        self.concurrency = concurrency
        self.latency = latency
        self.max_seconds = max_seconds
        self._events: list[tuple[float, int, Generator[float, None, None]]] = []
        self._seq = itertools.count()
        self._queue: list[tuple[int, int, _Req]] = []  # Scrapy's scheduler: by priority, newest first
        self._seen: set[str] = set()
        self._active = 0
        self._jars: dict[str, dict[str, str]] = {}
        self.requests = 0
        self.retired: dict[str, str] = {}  # session id -> reason
        self.sids: dict[str, str] = {}  # session id -> the site's sid cookie
        self.lost: list[str] = []
        self.leaked = 0
        self.trace = False  # record each session's requests in ``history`` (for debugging)
        self.history: dict[str, list[tuple[Any, ...]]] = {}
        self.used: set[str] = set()  # sessions that got a good answer (identities, not failed creations)
        self.manager.pool().add_listener("session_retired", lambda s: self.retired.__setitem__(s.id, s.retired_reason))

    def _stat(self, key: str, count: int = 1, gauge: bool = False) -> None:
        if gauge:
            self.stats[key] = count
        else:
            self.stats[key] += count

    # -- the crawl ------------------------------------------------------------------

    def run(self) -> Result:
        self._schedule_request(_Req("/"))
        # Scrapy's queue is LIFO: depth first
        while self._events and self.clock.now < self.max_seconds:
            at, _, flow = heapq.heappop(self._events)
            self.clock.now = max(self.clock.now, at)
            self._step(flow)
            self._fill()
        return self._result()

    def _schedule_request(self, req: _Req, dont_filter: bool = False) -> None:
        if not dont_filter:
            if req.path in self._seen:
                return
            self._seen.add(req.path)
        heapq.heappush(self._queue, (-req.priority, -next(self._seq), req))
        self._fill()

    def _fill(self) -> None:
        while self._queue and self._active < self.concurrency:
            self._active += 1
            self._start(self._flow(heapq.heappop(self._queue)[2]))

    def _start(self, flow: Generator[float, None, None]) -> None:
        self._step(flow)

    def _step(self, flow: Generator[float, None, None]) -> None:
        try:
            wait = next(flow)
        except StopIteration:
            self._active -= 1
            return
        heapq.heappush(self._events, (self.clock.now + max(wait, 0.0), next(self._seq), flow))

    def _flow(self, req: _Req) -> Generator[float, None, None]:
        m = self.manager
        if req.not_before > self.clock.now:
            yield req.not_before - self.clock.now
        if req.origin is not None and req.pin is not None and not m.alive(None, req.pin):
            self._schedule_request(_Req(req.origin, None, False, req.rotations), True)  # restart the chain
            return
        chained = req.sent_at is not None and req.pin is not None  # a redirect goes on at once, with its session
        session = m.acquire(None, req.pin, SITE, chained=chained)
        if session is None or not chained:
            session = yield from self._turn(session, req)
        picked = req.pin is None or req.picked
        sent_at = self.clock.now if req.sent_at is None else req.sent_at
        self.requests += 1
        exit_name = self.exit_names.get(session.proxy_url or "", "direct")
        answer = self.model.answer(req.path, dict(self._jars.get(session.id, {})), exit_name)
        if self.trace:
            self.history.setdefault(session.id, []).append(
                (round(self.clock.now, 3), req.path, answer.status, answer.challenge, answer.blocked)
            )
        yield self.latency + answer.delay
        for name, value in answer.headers:
            if name == "Set-Cookie":
                cookie, _, _ = value.partition(";")
                key, _, val = cookie.partition("=")
                self._jars.setdefault(session.id, {})[key] = val
                if key == "sid":
                    self.sids[session.id] = val
        url = f"http://{SITE}{req.path}"
        request = Request(url, meta={"redirect_urls": [f"http://{SITE}{req.origin}"]} if req.origin else None)
        if answer.status == 0:
            verdict = self.policy.exception_verdict(request, ResponseNeverReceived([]))
        else:
            response = HtmlResponse(
                url, status=answer.status, headers=list(answer.headers), body=answer.body.encode(), request=request
            )
            verdict = self.policy.response_verdict(request, response)
        if verdict.kind.value == "good":
            self.used.add(session.id)
        outcome = m.settle(session, verdict, site=SITE, sent_at=sent_at, challenges=req.challenges)
        if outcome.retry:
            if outcome.challenge:
                self._schedule_request(
                    _Req(
                        req.path,
                        session.id,
                        picked,
                        req.rotations,
                        req.challenges + 1,
                        req.retries,
                        req.origin,
                        self.clock.now + outcome.delay,
                        priority=req.priority + REDIRECT_PRIORITY,
                    ),
                    True,
                )
            elif outcome.counted and req.rotations >= m.settings.max_session_rotations:
                self.lost.append(req.origin or req.path)
                self.stats["rotations_exhausted"] += 1
            else:
                keep = outcome.same_session and not picked
                self._schedule_request(
                    _Req(
                        req.origin or req.path,
                        session.id if keep else None,
                        False,
                        req.rotations + outcome.counted,
                        priority=req.priority + RETRY_PRIORITY,
                    ),
                    True,
                )
            return
        if answer.challenge or (answer.blocked and answer.status not in (0, 301, 302)):
            self.leaked += 1  # a block or a challenge page would reach the spider as content
        if answer.status in (301, 302):
            location = dict(answer.headers)["Location"]
            self._schedule_request(
                _Req(
                    location,
                    session.id,
                    picked,
                    req.rotations,
                    0,
                    req.retries,
                    req.origin or req.path,
                    sent_at=sent_at,
                    priority=req.priority + REDIRECT_PRIORITY,
                ),
                True,
            )
        elif answer.status >= 500:
            if req.retries < RETRY_TIMES:
                self._schedule_request(
                    _Req(
                        req.path,
                        session.id,
                        picked,
                        req.rotations,
                        0,
                        req.retries + 1,
                        req.origin,
                        priority=req.priority + RETRY_PRIORITY,
                    ),
                    True,
                )
            else:
                self.lost.append(req.path)
        elif answer.status == 200:
            for link in _LINK.findall(answer.body):
                self._schedule_request(_Req(link))

    def _turn(self, session: Any, req: _Req) -> Generator[float, None, Any]:
        """Wait for a session and its turn, as the middleware's ``_wait`` does."""
        m = self.manager
        turn = m.turn(SITE, session) if session is not None else None
        while True:
            if turn == 0:
                return session
            if session is not None and not m.fit(session):
                session.release()
                session = None
            if session is None:
                yield m.wait_hint()
                session = m.acquire(None, req.pin, SITE)
                turn = None if session is None else m.turn(SITE, session)
                continue
            yield POLL if turn is None else min(turn, POLL)
            turn = m.turn(SITE, session)

    def _result(self) -> Result:
        banned = self.model.banned_sessions
        innocent = sum(
            1
            for sid, reason in self.retired.items()
            if self.sids.get(sid) not in banned
            and sid in self.used
            and reason not in ("max_usage_count", "expired", "error_score")
        )
        kept = sum(1 for s in self.manager.pool() if self.sids.get(s.id) in banned and not s.is_suspect)
        return Result(
            self.model.cell.name,
            self.model.items,
            len(self.model.served),
            self.requests,
            self.clock.now,
            dict(self.stats),
            self.model.summary(),
            innocent,
            kept,
            self.leaked,
            self.lost,
        )


def simulate(cell: Cell | str, **kwargs: Any) -> Result:
    return Simulation(Cell.parse(cell) if isinstance(cell, str) else cell, **kwargs).run()


def table(results: Iterable[Result]) -> str:
    """One line per cell: items %, requests per item, sessions created, blame counts, seconds."""
    lines = [
        (
            f"{'cell':36} {'items':>7} {'req/item':>8} {'created':>7} {'session':>7} {'exit':>5} {'site':>5} "
            f"{'innoc':>5} {'secs':>6}"
        )
    ]
    for r in results:
        s = r.stats
        lines.append(
            f"{r.cell:36} {100 * r.share:6.1f}% {r.per_item:8.2f} {s.get('created', 0):7} "
            f"{s.get('blame/session', 0):7} {s.get('blame/exit', 0):5} {s.get('blame/site', 0):5} "
            f"{r.innocent_retired:5} {r.seconds:6.1f}"
        )
    return "\n".join(lines)
