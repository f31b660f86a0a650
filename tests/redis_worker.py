"""Run by test_storage_redis in several processes at once: hammer the same shared sessions."""

import asyncio
import json
import random
import sys

from scrapy_sessionpool.settings import PoolSettings
from scrapy_sessionpool.shared import SharedPool


async def main(url: str, prefix: str, rounds: int, seed: int) -> None:
    # decrement 0: a good mark leaves the error score alone, so the final scores are exact sums
    settings = PoolSettings(
        max_pool_size=3, max_usage_count=10**6, max_error_score=10**6, error_score_decrement=0, warm_up=False
    )
    pool = SharedPool(url=url, key="shared", settings=settings, prefix=prefix, rng=random.Random(seed))
    counts = {"good": 0, "bad": 0}
    for i in range(rounds):
        session, _ = await pool.pick()
        if i % 3 == 0:
            session.mark_bad()
            counts["bad"] += 1
        else:
            session.mark_good()
            counts["good"] += 1
    await pool.close()
    print(json.dumps(counts))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
