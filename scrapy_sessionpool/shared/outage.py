"""The shared pool while Redis is away: a local pool of the sessions this process knows.

It hands those out, makes new sessions locally, and decides retirements alone; every change
is queued (and compacted, see ``queue``) for the replay once Redis answers again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..core.exceptions import NoHealthyProxy
from ..core.pool import SessionPool
from .queue import Op
from .remote_session import RemoteSession

if TYPE_CHECKING:
    from ..core.session import Session
    from .pool import SharedPool

__all__ = ["COMPACT_AT", "Outage"]

#: The write queue is compacted whenever it doubles, and not below this length.
COMPACT_AT = 10_000


class Outage:
    """The pool a shared pool falls back on while Redis is away."""

    def __init__(self, shared: SharedPool) -> None:
        self.shared = shared
        cfg = shared.settings
        self.compact_at = max(COMPACT_AT, 2 * len(shared.queue))
        self.pool = SessionPool(
            **cfg.pool_options,
            create_session_function=self._create,
            clock=shared.clock,
            seed=shared.rng.randrange(2**32),
        )

    def take_in(self, sessions: list[RemoteSession]) -> None:
        """Hold the sessions this process knows: those with requests in flight first (their answers
        are still to come), as many as the pool takes."""
        held = 0
        for session in sorted(sessions, key=lambda session: not session.in_flight):
            if session.is_usable and held < self.pool.max_pool_size:
                self.pool.add_session(session)  # it goes on reporting to the shared pool, which passes it on
                held += 1
        for proxy in self.shared.paused:
            self.pool.pause_proxy(proxy or None)

    def queued(self) -> None:
        """A write was queued: compact the queue whenever it has doubled."""
        queue = self.shared.queue
        if len(queue) >= self.compact_at:
            queue.compact(merge_across=self.shared.settings.reuse_strategy == "random")
            self.compact_at = max(COMPACT_AT, 2 * len(queue))

    def retired(self, session: RemoteSession) -> None:
        """Count a retirement now rather than at the replay; from now on the queue keeps only the
        session's retirement (a tally, if Redis never saw the session)."""
        shared = self.shared
        shared.announced.add(session.id)
        session.retired_offline = True
        session.forget_cookies()  # its cookies go nowhere now
        shared.mirrors.pop(session.id, None)
        shared.count_retired(session)

    def _create(self, pool: SessionPool) -> Session:
        shared, cfg = self.shared, self.shared.settings
        proxies = [p for p in (cfg.proxies or (None,)) if (p or "") not in shared.paused and not shared.refuses_new(p)]
        if not proxies:
            raise NoHealthyProxy("every proxy is cooling down")
        proxy = min(proxies, key=pool.sessions_count_by_proxy)
        session = RemoteSession(
            shared,
            options=shared.options,
            clock=shared.clock,
            proxy_url=proxy,
            user_agent=shared.rng.choice(cfg.user_agents) if cfg.user_agents else None,
        )
        shared.mirrors[session.id] = session
        fields = {
            "created_at": session.created_at,
            "usage": 0,
            "errors": "0",
            "proxy": proxy or "",
            "ua": session.user_agent or "",
            "ud": "",
        }
        session.awaiting_create = True
        shared.append(Op(session, "create", json.dumps(fields)))
        shared.on_created(session)
        return session
