"""Run by test_shared_leases: a worker that takes shared sessions and never answers for them.

It prints ``held <ids>`` once it holds them, then keeps its heartbeat going until it is killed
(or stopped: SIGSTOP freezes it, SIGCONT lets it answer for them).
"""

import asyncio
import json
import signal
import sys

from scrapy_sessionpool.settings import PoolSettings
from scrapy_sessionpool.shared import SharedPool


async def main(url: str, prefix: str, held: int, ttl: float) -> None:
    settings = PoolSettings(max_pool_size=held, warm_up=True, redis_lease_ttl=ttl)
    pool = SharedPool(url=url, key="spider", settings=settings, prefix=prefix)
    await pool.start()
    sessions = [(await pool.pick()).session for _ in range(held)]
    print("held", json.dumps([s.id for s in sessions]), flush=True)
    answer = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, answer.set)
    await answer.wait()  # SIGUSR1: answer for them, then leave
    for session in sessions:
        session.mark_good()
    await pool.close()
    print("answered", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
