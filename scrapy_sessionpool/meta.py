"""The request meta keys of the package: the public ones users set and read, and the private flags
by which the middleware knows what it put on a request (to undo it on a retry or redirect copy).
Values are plain strings, numbers and booleans, so requests stay picklable for ``JOBDIR``."""

from __future__ import annotations

STATS_PREFIX = "sessionpool/"
META_SESSION_ID = "sessionpool_session_id"
META_POOL = "sessionpool_pool"
META_ENABLED = "sessionpool_enabled"
META_ROTATIONS = "sessionpool_rotations"
META_CHALLENGES = "sessionpool_challenges"
#: Scrapy's redirect bookkeeping, reset when a blocked request goes back to its first URL.
REDIRECT_KEYS = ("redirect_urls", "redirect_reasons", "redirect_times", "redirect_ttl")
# Private flags: what the middleware itself put on a request, to undo it on a retry copy.
FLAG_INIT = "_sessionpool_init"  # a request of its session's init: it may use the session before it is ready
FLAG_PICKED = "_sessionpool_picked"  # the middleware chose the session (the request was not pinned to it)
FLAG_NOT_BEFORE = "_sessionpool_not_before"  # a challenge re-fetch waits until this time
FLAG_REQUEUED = "_sessionpool_requeued"  # handed back to the scheduler while the crawl closes
FLAG_SENT_AT = "_sessionpool_sent_at"  # when the first request of a redirect chain left
FLAG_AWAY_FROM = "_sessionpool_away_from"  # a rotated request of a cookiejar key leaves this session
FLAG_COOKIES = "_sessionpool_cookies"
FLAG_COOKIE_HEADER = "_sessionpool_cookie_header"
FLAG_PROXY = "_sessionpool_proxy"
FLAG_SLOT = "_sessionpool_slot"
FLAG_USER_AGENT = "_sessionpool_user_agent"
FLAG_HEADERS = "_sessionpool_headers"  # the names of the profile headers it set
FLAG_IMPERSONATE = "_sessionpool_impersonate"
