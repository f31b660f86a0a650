"""Leases: a process's hand-outs of shared sessions last as long as its heartbeat.

Each pick leases its session to the process (``B:lease:<process>`` in Redis). The process
renews its heartbeat key (``B:hb:<process>``, which expires after the lease TTL) several times
per TTL; each renewal also gives back the hand-outs of every process whose heartbeat lapsed,
so a crashed or frozen worker holds its sessions for one lease TTL at most. A process that
closes gives its own hand-outs back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ..core.proxies import redact

if TYPE_CHECKING:
    from .pool import SharedPool

__all__ = ["BEATS_PER_TTL", "Heartbeat"]

logger = logging.getLogger(__name__)

#: Renewals per lease TTL: a dead process's hand-outs come back within 1 + 1/BEATS_PER_TTL TTLs.
BEATS_PER_TTL = 10


class Heartbeat:
    """Renews a shared pool's heartbeat on the event loop, and reaps the leases of the dead."""

    def __init__(self, shared: SharedPool) -> None:
        self.shared = shared
        self.ttl = shared.settings.redis_lease_ttl
        self._task: asyncio.Task[None] | None = None

    def _args(self) -> list[object]:
        cfg = self.shared.settings
        return [cfg.max_usage_count, int(cfg.warm_up), cfg.reuse_strategy]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_event_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            if self.shared.outage is None:
                try:
                    await self.beat()
                except Exception:
                    logger.exception("Session pool %s: the heartbeat failed", self.shared.base)
            await asyncio.sleep(self.ttl / BEATS_PER_TTL)

    async def beat(self) -> int:
        """Renew this process's heartbeat; returns how many hand-outs of dead processes came back."""
        shared = self.shared
        args = [shared.base, repr(shared.clock()), shared.process_id, int(self.ttl * 1000), *self._args()]
        try:
            dead, back = await shared.link.eval("HEARTBEAT", args)
        except shared.link.errors as exc:  # the next pick notices the outage; the beat just waits
            logger.debug("Heartbeat to Redis at %s failed: %s", redact(shared.url), exc)
            return 0
        if dead:
            shared.stat("redis/leases_reaped", back)
            logger.warning(
                "Session pool %s: %d process(es) stopped renewing their heartbeat; %d hand-out(s) of "
                "their sessions given back",
                shared.base,
                dead,
                back,
            )
        return int(back)

    async def stop(self) -> None:
        """Stop renewing, and give this process's own hand-outs back."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        shared = self.shared
        if shared.outage is not None:
            return
        try:
            await shared.link.eval("LEAVE", [shared.base, repr(shared.clock()), shared.process_id, *self._args()])
        except shared.link.errors as exc:  # they come back when the heartbeat lapses
            logger.debug("Could not give hand-outs back to Redis at %s: %s", redact(shared.url), exc)
