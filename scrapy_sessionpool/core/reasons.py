"""Why sessions retire: the reasons this package gives (users may retire with any reason of their own).

Stats count them as ``sessionpool/retired/<reason>``; the shared pool's Lua scripts give the
first three and ``pool_full`` back in their replies (``shared/scripts.py``, checked by a test).
"""

from __future__ import annotations

__all__ = [
    "COMPUTED",
    "CORRUPT_STATE",
    "ERROR_SCORE",
    "EXPIRED",
    "GONE",
    "INIT_ERROR",
    "INIT_FAILED",
    "INIT_INTERRUPTED",
    "MANUAL",
    "MAX_USAGE_COUNT",
    "NEW_SESSION_REFUSED",
    "NOT_ACCOUNT_BLOCKS",
    "POOL_FULL",
]

ERROR_SCORE = "error_score"  #: its error score reached max_error_score
MAX_USAGE_COUNT = "max_usage_count"  #: used max_usage_count times
EXPIRED = "expired"  #: older than max_age_secs
NEW_SESSION_REFUSED = "new_session_refused"  #: its exit refused new sessions
CORRUPT_STATE = "corrupt_state"  #: its data in Redis is unusable
GONE = "gone"  #: retired by another process of a shared pool
POOL_FULL = "pool_full"  #: made while Redis was away; the shared pool was full when it caught up
MANUAL = "manual"  #: ``session.retire()`` without a reason
INIT_FAILED = "init_failed"  #: its init (``SESSIONPOOL_SESSION_INIT``) did not make it ready
INIT_ERROR = "init_error"  #: its init raised an error of its own (a bug in the hook says nothing of the account)
INIT_INTERRUPTED = "init_interrupted"  #: its init was cut short: the crawl closed, or SESSIONPOOL_INIT_TIMEOUT
#: Reasons a session's own counters and age decide (every process of a shared pool reaches them alike).
COMPUTED = frozenset({ERROR_SCORE, MAX_USAGE_COUNT, EXPIRED})
#: Reasons that say nothing against a session's account: it rests after any other.
NOT_ACCOUNT_BLOCKS = frozenset(
    {
        MAX_USAGE_COUNT,
        EXPIRED,
        MANUAL,
        NEW_SESSION_REFUSED,
        CORRUPT_STATE,
        GONE,
        POOL_FULL,
        INIT_ERROR,
        INIT_INTERRUPTED,
    }
)
