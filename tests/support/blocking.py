"""A site's block semantics, configurable: what a block is keyed on, how it is signalled, what triggers it.

The model is pure (an injected clock, a seeded generator) so that the same semantics serve the
HTTP test site (``blocksite.py``) and the simulated crawls of the judge's unit tests (``sim.py``).
Each :class:`Cell` is one combination:

* ``key``, what a block is on: ``session`` (the session cookie, for good), ``session_ip`` (the
  same, and a cookie that comes back from another IP than the one it was born on is banned; the
  exits are rotating proxies, whose IP changes every ``rotate_every`` requests), ``exit`` (the
  exit IP, for ``ban_secs``), ``site`` (every request, for ``ban_secs``);
* ``signal``, how a refused request is answered: ``403``, ``429``, ``429_retry_after``, ``503``,
  ``503_retry_after``, ``ban_page`` (200 with a captcha), ``redirect`` (302 to a captcha page),
  ``drop`` (the connection is closed without an answer);
* ``trigger``, what starts a block: ``budget`` (a hidden request budget of the key: per session
  cookie, per exit, or for the site), ``ip_rate`` (an exit over ``ip_rate`` requests a second),
  ``site_rate`` (the site over ``site_rate`` requests a second), ``ip_reputation`` (session
  budgets, and an exit that got ``reputation`` sessions banned within a minute is blocked),
  ``new_sessions`` (an exit that started ``new_session_cap`` sessions within a minute gets no new
  one until the minute is over).

Every cell also has the noise of a real site: a first visit gets an interstitial challenge (a
page that sets a ``pass`` cookie and refreshes to itself), some pages are slow, and some fail once
with 500; none of those is a block.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

KEYS = ("session", "session_ip", "exit", "site")
SIGNALS = ("403", "429", "429_retry_after", "503", "503_retry_after", "ban_page", "redirect", "drop")
TRIGGERS = ("budget", "ip_rate", "site_rate", "ip_reputation", "new_sessions")
#: The (key, trigger) pairs of the matrix: each is crossed with every signal.
PAIRS = (
    ("session", "budget"),
    ("session", "ip_rate"),
    ("session_ip", "budget"),
    ("exit", "budget"),
    ("exit", "ip_rate"),
    ("exit", "ip_reputation"),
    ("exit", "new_sessions"),
    ("site", "site_rate"),
)

BAN_TEXT = "Please complete the captcha"
CHALLENGE_TEXT = "Checking your browser"
BLOCK_PAGE = "/blocked"


@dataclass(frozen=True)
class Cell:
    key: str
    signal: str
    trigger: str

    def __post_init__(self) -> None:
        if self.key not in KEYS or self.signal not in SIGNALS or self.trigger not in TRIGGERS:
            raise ValueError(f"unknown cell {self}")

    @property
    def name(self) -> str:
        return f"{self.key}/{self.trigger}/{self.signal}"

    @classmethod
    def parse(cls, name: str) -> Cell:
        key, trigger, signal = name.split("/")
        return cls(key, signal, trigger)


MATRIX = tuple(Cell(key, signal, trigger) for key, trigger in PAIRS for signal in SIGNALS)

#: Per-trigger (and per-key) parameters that make the trigger fire within a crawl of 1,000 items.
CELL_DEFAULTS: dict[str, dict[str, object]] = {
    "ip_reputation": {"reputation": 2},
    "new_sessions": {"new_session_cap": 4},
    "session_ip": {"rotate_every": 150},
}


def cell_options(cell: Cell) -> dict[str, object]:
    """The model parameters of ``cell`` (``CELL_DEFAULTS`` of its trigger and key)."""
    return {**CELL_DEFAULTS.get(cell.trigger, {}), **CELL_DEFAULTS.get(cell.key, {})}


@dataclass(frozen=True)
class Answer:
    """What the site answers: a status (0 for a dropped connection), headers, a body, a delay before it."""

    status: int
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    blocked: bool = False
    challenge: bool = False
    item: int | None = None  # the item served, when it is one


@dataclass
class _Session:
    budget: int
    born_on: str
    used: int = 0
    banned: bool = False


@dataclass
class _Exit:
    hits: deque[float] = field(default_factory=deque)  # request times within the last second
    bans: deque[float] = field(default_factory=deque)  # session bans within the last minute
    issued: deque[float] = field(default_factory=deque)  # sessions started within the last minute
    banned_until: float = 0.0
    used: int = 0  # requests since its last ban (the exit's budget)
    budget: int = 0
    hits_total: int = 0
    generation: int = 0  # a rotating proxy's current IP


class BlockModel:
    """One site's block semantics (see the module docstring); ``answer()`` judges one request.

    Items are numbered 1 to ``items``; the home page lists ``categories`` category pages, each
    listing its items (``per_page`` to a page, with a next link).
    """

    def __init__(
        self,
        cell: Cell,
        *,
        clock: Callable[[], float],
        seed: int = 1,
        items: int = 1000,
        categories: int = 5,
        per_page: int = 50,
        budget: tuple[int, int] = (25, 60),
        exit_budget: tuple[int, int] = (150, 250),
        ip_rate: float = 10.0,
        site_rate: float = 30.0,
        reputation: int = 4,
        new_session_cap: int = 8,
        rotate_every: int | None = None,
        ban_secs: float = 5.0,
        retry_after: int = 5,
        challenge: bool = True,
        slow: float = 0.02,
        slow_secs: tuple[float, float] = (0.2, 0.5),
        flaky: float = 0.02,
    ) -> None:
        self.cell = cell
        self.clock = clock
        self.items = items
        self.categories = categories
        self.per_page = per_page
        self.budget = budget
        self.exit_budget = exit_budget
        self.ip_rate = ip_rate
        self.site_rate = site_rate
        self.reputation = reputation
        self.new_session_cap = new_session_cap
        self.rotate_every = rotate_every
        self.ban_secs = ban_secs
        self.retry_after = retry_after
        self.challenge = challenge
        self._rng = random.Random(seed)
        numbers = list(range(1, items + 1))
        self.slow_items = {n: self._rng.uniform(*slow_secs) for n in self._rng.sample(numbers, round(items * slow))}
        self.flaky_items = set(self._rng.sample(numbers, round(items * flaky)))
        self._failed: set[int] = set()
        self._sessions: dict[str, _Session] = {}
        self._passes: set[str] = set()
        self._exits: dict[str, _Exit] = {}
        self._site_hits: deque[float] = deque()
        self._site_banned_until = 0.0
        self._site_used = 0
        self._site_budget = self._rng.randint(*exit_budget) * 3
        self.served: set[int] = set()
        self.counts: Counter[str] = Counter()
        self.banned_sessions: set[str] = set()  # sids the site refuses for good
        self.sessions_seen: set[str] = set()

    # -- the pages ------------------------------------------------------------------

    def category_of(self, n: int) -> int:
        return (n - 1) % self.categories

    def page(self, path: str) -> str:
        """The HTML of a page that is served (no guard): home, category pages, items, the block page."""
        if path == "/":
            links = "".join(
                f'<a class="category" href="/category/{c}">Category {c}</a>' for c in range(self.categories)
            )
            return _html("Home", links)
        if path.startswith("/category/"):
            rest = path.removeprefix("/category/")
            category, _, page = rest.partition("?page=")
            c, p = int(category), int(page or 1)
            numbers = [n for n in range(1, self.items + 1) if self.category_of(n) == c]
            shown = numbers[(p - 1) * self.per_page : p * self.per_page]
            links = "".join(f'<a class="item" href="/item/{n}">Item {n}</a>' for n in shown)
            if p * self.per_page < len(numbers):
                links += f'<a class="next" href="/category/{c}?page={p + 1}">Next</a>'
            return _html(f"Category {c}", links)
        if path.startswith("/item/"):
            n = int(path.removeprefix("/item/"))
            return _html(f"Item {n}", f'<h1 class="name">Item {n}</h1><span class="price">{n}.00</span>')
        if path.startswith(BLOCK_PAGE):
            return _html("Blocked", f"<p>{BAN_TEXT}.</p>")
        return _html("Not found", "")

    # -- the guard ------------------------------------------------------------------

    def answer(self, path: str, cookies: dict[str, str], exit_name: str) -> Answer:
        """Judge one request: ``cookies`` as the client sent them, ``exit_name`` its exit IP."""
        now = self.clock()
        self.counts["requests"] += 1
        if path.startswith(BLOCK_PAGE):
            return Answer(200, self.page(path))
        if not (path == "/" or path.startswith(("/category/", "/item/"))):
            return Answer(404, self.page(path))
        ex = self._exits.get(exit_name)
        if ex is None:
            ex = self._exits[exit_name] = _Exit(budget=self._rng.randint(*self.exit_budget))
        key, trigger = self.cell.key, self.cell.trigger
        ex.hits_total += 1
        if self.rotate_every and ex.hits_total % self.rotate_every == 0:
            ex.generation += 1
            self.counts["ip_rotations"] += 1
        ip = f"{exit_name}#{ex.generation}"
        _trim(ex.hits, now - 1.0)
        ex.hits.append(now)  # refused requests count too: a client that ignores the block stays blocked
        _trim(self._site_hits, now - 1.0)
        self._site_hits.append(now)

        if now < self._site_banned_until:
            return self._refuse(self._site_banned_until - now)
        if now < ex.banned_until:
            return self._refuse(ex.banned_until - now)
        sid = cookies.get("sid")
        session = self._sessions.get(sid) if sid else None
        if session is not None:
            self.sessions_seen.add(sid)
            if key == "session_ip" and session.born_on != ip and not session.banned:
                self._ban_session(sid, session, ex, now)
            if session.banned:
                return self._refuse(None)

        headers: list[tuple[str, str]] = []
        if session is None:
            _trim(ex.issued, now - 60.0)
            if trigger == "new_sessions" and len(ex.issued) >= self.new_session_cap:
                self.counts["new_refused"] += 1
                return self._refuse(ex.issued[0] + 60.0 - now)
            ex.issued.append(now)
            sid = self._token(8)
            session = self._sessions[sid] = _Session(self._rng.randint(*self.budget), ip)
            headers.append(("Set-Cookie", f"sid={sid}; Path=/; HttpOnly"))
            self.counts["sessions_issued"] += 1
        if self.challenge and cookies.get("pass") not in self._passes:
            token = self._token(6)
            self._passes.add(token)
            headers.append(("Set-Cookie", f"pass={token}; Path=/"))
            self.counts["challenges"] += 1
            body = _html("One moment", f"<p>{CHALLENGE_TEXT}...</p>", '<meta http-equiv="refresh" content="0">')
            return Answer(200, body, tuple(headers), challenge=True)

        # the triggers
        refusal = None
        session.used += 1
        ex.used += 1
        self._site_used += 1
        if (
            trigger in ("budget", "ip_reputation")
            and key in ("session", "session_ip", "exit")
            and (key != "exit" or trigger == "ip_reputation")
        ):
            if session.used > session.budget:
                self._ban_session(sid, session, ex, now)
                refusal = self._refuse(None, headers)
                if trigger == "ip_reputation":
                    _trim(ex.bans, now - 60.0)
                    if len(ex.bans) >= self.reputation:
                        ex.banned_until = now + self.ban_secs
                        ex.bans.clear()
                        self.counts["exit_bans"] += 1
        elif trigger == "budget" and key == "exit" and ex.used > ex.budget:
            ex.banned_until, ex.used = now + self.ban_secs, 0
            ex.budget = self._rng.randint(*self.exit_budget)
            self.counts["exit_bans"] += 1
            refusal = self._refuse(self.ban_secs, headers)
        elif (trigger == "ip_rate" and len(ex.hits) > self.ip_rate) or (
            trigger == "site_rate" and len(self._site_hits) > self.site_rate
        ):
            refusal = self._ban(key, sid, session, ex, now, headers)
        if refusal is not None:
            return refusal

        # a good page, with the noise of a real site
        if path.startswith("/item/"):
            n = int(path.removeprefix("/item/"))
            if not 1 <= n <= self.items:
                return Answer(404, self.page("/missing"), tuple(headers))
            if n in self.flaky_items and n not in self._failed:
                self._failed.add(n)
                self.counts["server_errors"] += 1
                return Answer(500, _html("Error", "<p>Something went wrong.</p>"), tuple(headers))
            self.served.add(n)
            return Answer(200, self.page(path), tuple(headers), delay=self.slow_items.get(n, 0.0), item=n)
        return Answer(200, self.page(path), tuple(headers))

    def _ban(
        self, key: str, sid: str, session: _Session, ex: _Exit, now: float, headers: list[tuple[str, str]]
    ) -> Answer:
        if key in ("session", "session_ip"):
            self._ban_session(sid, session, ex, now)
            return self._refuse(None, headers)
        if key == "exit":
            ex.banned_until = now + self.ban_secs
            self.counts["exit_bans"] += 1
        else:
            self._site_banned_until = now + self.ban_secs
            self.counts["site_bans"] += 1
        return self._refuse(self.ban_secs, headers)

    def _ban_session(self, sid: str, session: _Session, ex: _Exit, now: float) -> None:
        session.banned = True
        self.banned_sessions.add(sid)
        ex.bans.append(now)
        self.counts["session_bans"] += 1

    def _refuse(self, seconds_left: float | None, headers: list[tuple[str, str]] | None = None) -> Answer:
        """The block answer of the cell's signal; ``seconds_left`` of a temporary block (None: for good)."""
        self.counts["blocks"] += 1
        signal = self.cell.signal
        headers = list(headers or ())
        retry = self.retry_after if seconds_left is None else max(1, math.ceil(seconds_left))
        if signal.endswith("_retry_after"):
            headers.append(("Retry-After", str(retry)))
        if signal == "drop":
            return Answer(0, blocked=True)
        if signal == "ban_page":
            return Answer(200, _html("Are you human?", f"<p>{BAN_TEXT}.</p>"), tuple(headers), blocked=True)
        if signal == "redirect":
            headers.append(("Location", f"{BLOCK_PAGE}?r={self._token(4)}"))
            return Answer(302, "", tuple(headers), blocked=True)
        status = int(signal.split("_", 1)[0])
        return Answer(status, _html("Refused", "<p>Access denied.</p>"), tuple(headers), blocked=True)

    def _token(self, size: int) -> str:
        return self._rng.randbytes(size).hex()

    def summary(self) -> dict[str, object]:
        return {"items": self.items, "served": len(self.served), **self.counts}


def _trim(times: deque[float], since: float) -> None:
    while times and times[0] <= since:
        times.popleft()


def _html(title: str, body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head><title>{title}</title>{head}</head><body>{body}</body></html>"
