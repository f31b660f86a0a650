"""Redis: one live pool shared by every crawler process configured with the same URL and key.

Picks, marks and cookie writes are atomic Lua scripts (``redis_scripts``).
Writes are queued locally and sent in batches, inside the next pick's script
(one round trip per pick), so a process always sees its own writes and every
process sees a retirement before its next pick; one batch is on its way at a
time, so Redis applies the writes in order. When Redis cannot be reached, the
pool goes on with the sessions it knows, queues its writes (compacted, see
``redis_queue``), and replays them once Redis answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any

from ..core import reasons
from ..core.cookies import cookie_to_state, jar_cookies
from ..core.exceptions import StateError
from ..core.pool import STATE_VERSION, SessionPool
from ..core.proxies import redact
from ..core.session import SESSION_ID_RE, Session, SessionOptions
from ..shared import scripts as redis_scripts
from ..shared.queue import Op, WriteQueue
from ..shared.scripts import REPLY_GONE, REPLY_RETIRED

if TYPE_CHECKING:
    from ..settings import PoolSettings

__all__ = ["RedisStore", "SharedPool"]

logger = logging.getLogger(__name__)

#: How long a process waits before asking an unreachable Redis again.
RECONNECT_EVERY = 1.0
#: Queued writes sent in one batch at most.
BATCH = 500
#: Offline, the write queue is compacted whenever it doubles, and not below this length.
COMPACT_AT = 10_000
#: Retirements that follow from a session's counts and age: Redis decides them when it is reachable.
COMPUTED_REASONS = reasons.COMPUTED
#: How long a write waits for a pick to carry it before it is sent on its own.
FLUSH_DELAY = 0.02


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("The Redis store needs the redis package: pip install 'scrapy-sessionpool[redis]'") from exc
    return redis


def pool_base(prefix: str, key: str) -> str:
    return f"{prefix}:{{{key}}}"


def _keys(base: str) -> list[str]:
    return [f"{base}:live", f"{base}:ready", f"{base}:meta", f"{base}:proxies", f"{base}:asleep", f"{base}:condemned"]


def _cookie_field(cookie: Any) -> str:
    return f"{cookie.domain};{cookie.path};{cookie.name}"


class RedisStore:
    """Snapshots of a Redis pool, for the ``scrapy sessionpool`` command and for tests.

    The crawl itself uses a :class:`SharedPool` per pool: the pool lives in Redis.
    """

    shared = True

    def __init__(self, url: str, *, prefix: str = "sessionpool", ttl: float | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self.ttl = ttl
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            redis = _import_redis()
            self._client = redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=10)
        return self._client

    def describe(self, key: str) -> str:
        return f"{redact(self.url)} {pool_base(self.prefix, key)}"

    def load(self, key: str) -> dict[str, Any] | None:
        """The pool under ``key`` as a state dict (as ``SessionPool.get_state()``), or None."""
        base = pool_base(self.prefix, key)
        client = self.client
        ids = client.zrange(f"{base}:live", 0, -1)
        meta = client.hgetall(f"{base}:meta")
        if not ids and not meta:
            return None
        with client.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hgetall(f"{base}:s:{sid}")
                pipe.hgetall(f"{base}:c:{sid}")
            replies = pipe.execute()
        sessions = []
        for sid, fields, cookies in zip(ids, replies[::2], replies[1::2], strict=True):
            if fields:
                sessions.append(_state_from_fields(sid, fields, cookies))
        return {"version": STATE_VERSION, "retired_sessions_count": int(meta.get("retired", 0)), "sessions": sessions}

    def save(self, key: str, state: dict[str, Any]) -> None:
        """Replace the pool under ``key`` with ``state`` (seeding a shared pool from a file)."""
        self.delete(key)
        base = pool_base(self.prefix, key)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(f"{base}:meta", mapping={"retired": state.get("retired_sessions_count", 0), "created": 0})
            for s in state.get("sessions", []):
                proxy = s.get("proxy_url") or ""
                pipe.hset(
                    f"{base}:s:{s['id']}",
                    mapping={
                        "created_at": repr(float(s["created_at"])),
                        "usage": s["usage_count"],
                        "handed": s["usage_count"],
                        "errors": repr(float(s["error_score"])),
                        "proxy": proxy,
                        "ua": s.get("user_agent") or "",
                        "ud": json.dumps(s["user_data"]) if s.get("user_data") else "",
                        "cv": 0,
                        "uv": 0,
                        **_suspicion_fields(s.get("suspicion")),
                    },
                )
                for c in s.get("cookies", []):
                    pipe.hset(f"{base}:c:{s['id']}", f"{c['domain']};{c['path']};{c['name']}", json.dumps(c))
                pipe.zadd(f"{base}:live", {s["id"]: float(s["created_at"])})
                pipe.zadd(f"{base}:ready", {s["id"]: 0})
                pipe.hincrby(f"{base}:proxies", proxy, 1)
            pipe.execute()

    def delete(self, key: str) -> bool:
        base = pool_base(self.prefix, key)
        client = self.client
        names = list(client.scan_iter(match=_glob_escape(base) + ":*", count=1000))
        for i in range(0, len(names), 500):
            client.delete(*names[i : i + 500])
        return bool(names)


def _suspicion_fields(suspicion: dict[str, Any] | None) -> dict[str, Any]:
    if not suspicion:
        return {"sus": "", "until": "0", "strikes": 0, "cond": 0}
    return {
        "sus": repr(float(suspicion["since"])),
        "until": repr(float(suspicion["until"])),
        "strikes": suspicion["strikes"],
        "cond": 0,
    }


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\{}" else c for c in text)


def _state_from_fields(sid: str, fields: dict[str, str], cookies: dict[str, str]) -> dict[str, Any]:
    """A session's state dict from its Redis hashes; StateError when a value is not what we write."""
    try:
        state = {
            "id": sid,
            "created_at": float(fields["created_at"]),
            "usage_count": int(fields["usage"]),
            "error_score": float(fields["errors"]),
            "proxy_url": fields.get("proxy") or None,
            "user_agent": fields.get("ua") or None,
            "user_data": json.loads(fields["ud"]) if fields.get("ud") else {},
            "cookies": [_json_or_raw(v) for v in cookies.values()],
            "retired": None,
        }
        if fields.get("sus"):
            state["suspicion"] = {
                "since": float(fields["sus"]),
                "until": float(fields.get("until") or 0),
                "strikes": int(fields.get("strikes") or 0),
            }
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        raise StateError(f"Redis session {sid}: unusable field ({str(exc)[:200]})") from None
    return state


def _json_or_raw(text: str) -> Any:
    """A cookie's JSON, or the text itself when it is not JSON (the loader then leaves that cookie out)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _left_out(kind: str, error: StateError) -> None:
    logger.warning("Left out an unusable %s of a shared session: %s", kind, error)


class _RecordingJar(CookieJar):
    """A session's jar that tells the shared pool about every cookie set or cleared."""

    def __init__(self, session: RemoteSession) -> None:
        super().__init__(policy=DefaultCookiePolicy(strict_ns_domain=DefaultCookiePolicy.DomainStrictNonDomain))
        self._session = session
        self.recording = True

    def set_cookie(self, cookie: Any) -> None:
        super().set_cookie(cookie)
        if self.recording:
            self._session._cookie_changed(_cookie_field(cookie), json.dumps(cookie_to_state(cookie)))

    def clear(self, domain: str | None = None, path: str | None = None, name: str | None = None) -> None:
        if self.recording and domain is not None and path is not None and name is not None:
            self._session._cookie_changed(f"{domain};{path};{name}", "")
        super().clear(domain, path, name)


class RemoteSession(Session):
    """A process's copy of a session of a shared pool; its verbs are queued for Redis."""

    __slots__ = ("_counted", "_cv", "_sent_user_data", "_settled", "_shared", "_unsent", "_uv")

    def __init__(self, shared: SharedPool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shared = shared
        self._cv = self._uv = -1
        self._sent_user_data = ""
        self._unsent = False  # made while Redis was away, not sent yet
        self._settled = False  # retired while Redis was away: only the retirement still matters
        self._counted = False  # its retirement went to on_retired

    @property
    def cookie_jar(self) -> CookieJar:
        if self._jar is None:
            self._jar = _RecordingJar(self)
        return self._jar

    def mark_good(self) -> None:
        super().mark_good()
        self._shared._queue(self, "good")

    def mark_bad(self) -> None:
        super().mark_bad()
        self._shared._queue(self, "bad")

    def release(self) -> None:
        had_lease = bool(self._leases)
        super().release()
        if had_lease:
            self._shared._queue(self, "release")

    def retire(self, reason: str = "manual") -> None:
        if self._retired is not None:
            return
        online = self._shared._online
        if online and reason in COMPUTED_REASONS:
            return  # Redis decides these from the marks of every process; its reply retires this copy
        self._shared._queue(self, "retire", reason)
        super().retire(reason)
        if not online:  # this process decides alone until Redis is back
            self._shared._retired_offline(self)

    def suspect(self, until: float, *, strikes: int | None = None, condemned: bool = False) -> None:
        if self._retired is not None:
            return
        super().suspect(until, strikes=strikes, condemned=condemned)
        self._shared._queue(
            self,
            "suspect",
            json.dumps({"since": self._suspected_at, "until": until, "strikes": self._strikes, "cond": int(condemned)}),
        )

    def acquit(self) -> None:
        if self._condemned:
            super().acquit()
            self._shared._queue(self, "acquit")

    def clear_suspicion(self) -> None:
        if self._suspected_at is None and not self._sits_out_until:
            return
        super().clear_suspicion()
        self._shared._queue(self, "clear")

    def _cookie_changed(self, field: str, value: str) -> None:
        self._shared._queue(self, "cookie", field, value)

    def _user_data_json(self) -> str:
        return json.dumps(self._user_data, allow_nan=False) if self._user_data else ""


class SharedPool:
    """The pool interface the manager uses, backed by a Redis pool shared by many processes.

    ``acquire()`` is a coroutine (one round trip); everything else is local and quick.
    """

    shared = True

    def __init__(
        self,
        *,
        url: str,
        key: str,
        settings: PoolSettings,
        prefix: str = "sessionpool",
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
        rng: Any = None,
        on_created: Callable[[Session], Any] | None = None,
        on_retired: Callable[[Session], Any] | None = None,
        refuses_new: Callable[[str | None], bool] | None = None,
    ) -> None:
        redis = _import_redis()
        # errors after which Redis may well take the same writes later: handled as an outage
        self._redis_errors = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            OSError,
            redis.exceptions.ReadOnlyError,
            redis.exceptions.OutOfMemoryError,
        )
        self._client = redis.asyncio.Redis.from_url(
            url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        self._no_script = redis.exceptions.NoScriptError
        self._shas: dict[str, str] = {}
        self.url = url
        self.key = key
        self.base = pool_base(prefix, key)
        self._keys = _keys(self.base)
        self.settings = settings
        self._options = SessionOptions.coerce(settings.session_options)
        self._ttl = ttl
        self._clock = clock
        self._rng = rng
        self._on_created = on_created
        self._on_retired = on_retired
        self._refuses_new = refuses_new or (lambda proxy: False)  # exits that take no new session now
        self._mirrors: dict[str, RemoteSession] = {}
        self._pending = WriteQueue()
        self._idle = asyncio.Event()  # cleared while a batch of writes is on its way (one at a time: in order)
        self._idle.set()
        self._flushing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._online = True
        self._last_attempt = 0.0
        self._fallback: SessionPool | None = None
        self._in_outage = False  # from the first failure to the end of a complete replay
        self._announced: set[str] = set()  # retired while offline, on_retired already called
        self._compact_at = COMPACT_AT
        self._paused: set[str] = set()
        self.live_count = 0
        self.retired_count = 0

    # -- the pool interface ----------------------------------------------------------

    @property
    def max_pool_size(self) -> int:
        return self.settings.max_pool_size

    @property
    def usable_sessions_count(self) -> int:
        return self.live_count if self._online else len(self._fallback or ())

    @property
    def retired_sessions_count(self) -> int:
        return self.retired_count

    def __iter__(self) -> Iterator[Session]:
        return iter([s for s in self._mirrors.values() if s.is_usable])

    def find(self, session_id: str) -> Session | None:
        session = self._mirrors.get(session_id)
        return session if session is not None and session.is_usable else None

    def pause_proxy(self, proxy_url: str | None) -> None:
        self._paused.add(proxy_url or "")
        if self._fallback is not None:
            self._fallback.pause_proxy(proxy_url)

    def resume_proxy(self, proxy_url: str | None) -> None:
        self._paused.discard(proxy_url or "")
        if self._fallback is not None:
            self._fallback.resume_proxy(proxy_url)

    # -- picking -----------------------------------------------------------------------

    async def _eval(self, script: str, args: list[Any]) -> Any:
        """Run one of ``redis_scripts`` by its SHA (loading it on first use or after a Redis restart)."""
        sha = self._shas.get(script)
        if sha is not None:
            try:
                return await self._client.evalsha(sha, len(self._keys), *self._keys, *args)
            except self._no_script:
                pass
        sha = self._shas[script] = await self._client.script_load(getattr(redis_scripts, script))
        return await self._client.evalsha(sha, len(self._keys), *self._keys, *args)

    async def acquire(self, session_id: str | None = None) -> tuple[Session | None, bool]:
        """A session for a request (or None: wait), and whether a pinned id was missing.

        One round trip carries the queued writes and the pick; a second one fetches the
        session's cookies and user data only when they changed since this process last saw them.
        """
        if not self._online and not await self._reconnect():
            return self._acquire_locally(session_id)
        cfg = self.settings
        candidates = [p or "" for p in (cfg.proxies or (None,)) if not self._refuses_new(p)]
        agent = self._rng.choice(cfg.user_agents) if cfg.user_agents else ""
        args = [
            self.base,
            repr(self._clock()),
            cfg.max_pool_size,
            cfg.max_usage_count,
            repr(cfg.max_age_secs),
            int(cfg.warm_up),
            cfg.reuse_strategy,
            repr(cfg.max_error_score),
            repr(cfg.error_score_decrement),
            session_id or "",
            "session_" + secrets.token_urlsafe(16),
            agent,
            len(self._paused),
            *self._paused,
            len(candidates),
            *candidates,
        ]
        batch = self._take_batch()  # none while another batch is on its way: the pick does not wait
        try:
            writes, pick, expired = await self._eval("ACQUIRE", args + _ops(batch))
        except self._redis_errors as exc:
            self._pending.put_back(batch)
            self._go_offline(exc)
            return self._acquire_locally(session_id)
        finally:
            self._batch_done(batch)
        self._applied(batch, writes)
        self._expired(expired)
        return await self._picked(pick)

    def _expired(self, ids: list[str]) -> None:
        """Count the sessions a pick of this process retired for their age (Redis does it, not a write)."""
        for sid in ids:
            if sid in self._announced:  # retired and counted here while Redis was away
                continue
            session = self._mirrors.pop(sid, None)
            if session is None and SESSION_ID_RE.fullmatch(sid):  # one this process never used
                session = RemoteSession(self, id=sid, options=self._options)
            if session is not None:
                if session._retired is None:
                    Session.retire(session, reasons.EXPIRED)  # Redis did it: nothing to send
                self._count_retired(session)

    def _count_retired(self, session: RemoteSession) -> None:
        if not session._counted:
            session._counted = True
            if self._on_retired is not None:
                self._on_retired(session)

    async def _picked(self, pick: list[Any]) -> tuple[Session | None, bool]:
        status, sid, usage, errors, cv, uv, live, retired, sus, until, strikes, condemned = pick
        self.live_count, self.retired_count = int(live), int(retired)
        missing = status.startswith("missing")
        session = self._mirrors.get(sid)
        if sid == "" or sid in self._announced or (session is not None and session.is_retired):
            return None, missing  # none, or one this process retired and Redis has not heard of it yet
        try:
            if session is None or session._cv != int(cv) or session._uv != int(uv):
                fields, cookies = await self._fetch(sid)
                if not fields:  # retired by another process a moment ago
                    return None, missing
                session = self._mirror(sid, fields, cookies)
            session._usage_count, session._error_score = int(usage), float(errors)
            # what every process knows of its suspicion (so that all of them judge it alike)
            session._suspected_at = float(sus) if sus else None
            session._sits_out_until, session._strikes = float(until), int(strikes)
            session._condemned = condemned == "1"
        except (StateError, ValueError) as exc:  # a hostile or broken value in Redis must not reach Scrapy
            logger.warning("Shared session %s has unusable data in Redis (%s): retiring it", sid, exc)
            if SESSION_ID_RE.fullmatch(sid):
                self._pending.append(
                    (RemoteSession(self, id=sid, options=self._options), "retire", reasons.CORRUPT_STATE, "")
                )
            return None, missing
        session._leases += 1
        if status.endswith("created") and self._on_created is not None:
            self._on_created(session)
        return session, missing

    async def _fetch(self, sid: str) -> tuple[dict[str, str], dict[str, str]]:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(f"{self.base}:s:{sid}")
            pipe.hgetall(f"{self.base}:c:{sid}")
            fields, cookies = await pipe.execute()
        return fields, cookies

    def _mirror(self, sid: str, fields: dict[str, str], cookies: dict[str, str]) -> RemoteSession:
        """This process's copy of a shared session, brought up to date. Raises StateError for bad data."""
        try:
            cv, uv = int(fields.get("cv", 0)), int(fields.get("uv", 0))
        except ValueError as exc:
            raise StateError(f"bad versions ({exc})") from None
        checked = Session.from_state(
            _state_from_fields(sid, fields, cookies),
            options=self._options,
            clock=self._clock,
            where="Redis session",
            on_problem=_left_out,
        )
        session = self._mirrors.get(sid)
        if session is None:
            session = RemoteSession(
                self,
                id=sid,
                options=self._options,
                clock=self._clock,
                created_at=checked.created_at,
                proxy_url=checked.proxy_url,
                user_agent=checked.user_agent,
            )
            self._mirrors[sid] = session
        session._user_data = checked._user_data
        session._sent_user_data = fields.get("ud", "")
        jar = session.cookie_jar
        assert isinstance(jar, _RecordingJar)
        jar.recording = False
        try:
            jar.clear()
            for cookie in jar_cookies(checked.cookie_jar):
                jar.set_cookie(cookie)
        finally:
            jar.recording = True
        session._cv, session._uv = cv, uv
        return session

    # -- writes ------------------------------------------------------------------------

    def _queue(self, session: RemoteSession, kind: str, a: str = "", b: str = "") -> None:
        if kind in ("good", "bad"):
            user_data = session._user_data_json()
            if user_data != session._sent_user_data:
                self._append((session, "ud", user_data, ""))
                session._sent_user_data = user_data
        self._append((session, kind, a, b))
        # cookies and retirements must reach the other processes before their next pick
        self._schedule_flush(0 if kind in ("cookie", "retire") else FLUSH_DELAY)

    def _take_batch(self) -> list[Op]:
        """The next writes to send, or none while a batch is on its way: one batch at a time, so
        Redis applies them in order. The caller sends them, then calls ``_batch_done()``."""
        if not self._idle.is_set():
            return []
        batch = self._pending.take(BATCH)
        if batch:
            self._idle.clear()
        return batch

    def _batch_done(self, batch: list[Op]) -> None:
        if batch:
            self._idle.set()

    def _apply_args(self, batch: list[Op]) -> list[Any]:
        cfg = self.settings
        return [
            self.base,
            repr(self._clock()),
            cfg.max_usage_count,
            repr(cfg.max_error_score),
            repr(cfg.error_score_decrement),
            int(cfg.warm_up),
            cfg.reuse_strategy,
            *_ops(batch),
        ]

    def _applied(self, batch: list[Op], replies: list[Any]) -> None:
        for (session, kind, _, _), reply in zip(batch, replies, strict=False):
            if reply[0] in (REPLY_RETIRED, REPLY_GONE):
                self._mirrors.pop(session.id, None)
                self._announced.discard(session.id)
                if not session.is_retired:  # Redis did it: nothing to send
                    Session.retire(session, reply[1] if reply[0] == REPLY_RETIRED else reasons.GONE)
                if reply[0] == REPLY_RETIRED:  # "gone": retired by another process, or by an earlier write
                    self._count_retired(session)
            elif reply[0] == "tallied":
                self._announced.discard(session.id)
            elif kind == "create":
                session._unsent = False
            elif kind in ("good", "bad", "marks") and len(reply) >= 3:
                session._usage_count, session._error_score = int(reply[1]), float(reply[2])

    def _schedule_flush(self, delay: float) -> None:
        """Send queued writes shortly, unless a pick carries them first (asyncio, as Scrapy's reactor)."""
        if self._flushing or not self._online:
            return
        self._flushing = True
        loop = asyncio.get_event_loop()
        loop.call_later(delay, lambda: self._tasks.add(loop.create_task(self.flush())))

    async def flush(self) -> None:
        """Send every queued write now."""
        self._tasks = {t for t in self._tasks if not t.done()}
        try:
            while self._pending and self._online:
                if not self._idle.is_set():
                    await self._idle.wait()
                    continue
                batch = self._take_batch()
                if not batch:  # every write taken was one Redis no longer needs
                    continue
                try:
                    replies = await self._eval("APPLY", self._apply_args(batch))
                except self._redis_errors as exc:
                    self._pending.put_back(batch)
                    self._go_offline(exc)
                    return
                finally:
                    self._batch_done(batch)
                self._applied(batch, replies)
        finally:
            self._flushing = False

    async def open(self) -> int:
        """Read the pool's size; returns how many live sessions other runs left in it."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zcard(self._keys[0])
                pipe.hget(self._keys[2], "retired")
                live, retired = await pipe.execute()
        except self._redis_errors as exc:
            self._go_offline(exc)
            return 0
        self.live_count, self.retired_count = int(live), int(retired or 0)
        return self.live_count

    async def touch(self) -> None:
        """Flush, and renew the TTL of the pool's keys when ``SESSIONPOOL_REDIS_TTL`` is set."""
        if not self._online and not await self._reconnect():
            return
        await self.flush()
        if self._ttl is not None and self._online:
            try:
                await self._eval("TOUCH", [self.base, int(self._ttl)])
            except self._redis_errors as exc:
                self._go_offline(exc)

    async def close(self) -> None:
        if not self._online:
            self._last_attempt = float("-inf")  # one last try, however recent the previous one
        await self.touch()
        if self._pending:
            logger.warning(
                "Redis at %s is still unreachable: %d write(s) queued since the outage are lost "
                "(Redis keeps every write it received)",
                redact(self.url),
                len(self._pending),
            )
        await self._client.aclose() if hasattr(self._client, "aclose") else await self._client.close()

    # -- when Redis is away ------------------------------------------------------------

    def _go_offline(self, error: Exception) -> None:
        self._last_attempt = time.monotonic()
        if not self._online:  # another request's call failed too: one outage, one fallback pool
            return
        self._online = False
        if self._in_outage:  # it answered a ping, then refused the replay: the same outage goes on
            logger.debug("Redis at %s failed again during the replay (%s)", redact(self.url), error)
        else:
            self._in_outage = True
            logger.warning(
                "Redis at %s is unreachable (%s): the session pool goes on with the %d session(s) this process "
                "knows and will catch up when Redis answers again",
                redact(self.url),
                error,
                len(self._mirrors),
            )
        self._compact_at = max(COMPACT_AT, 2 * len(self._pending))
        fallback = SessionPool(
            max_pool_size=self.settings.max_pool_size,
            session_options=self._options,
            create_session_function=self._create_locally,
            reuse_strategy=self.settings.reuse_strategy,
            clock=self._clock,
            warm_up=self.settings.warm_up,
            seed=None if self._rng is None else self._rng.randrange(2**32),
        )
        # sessions with requests in flight first: their answers are still to come
        for session in sorted(self._mirrors.values(), key=lambda session: not session._leases):
            if session.is_usable and len(fallback._live) < fallback.max_pool_size:
                leases = session._leases
                fallback.add_session(session)
                session._leases = leases
                fallback._refresh(session)
        for proxy in self._paused:
            fallback.pause_proxy(proxy or None)
        self._fallback = fallback

    def _retired_offline(self, session: RemoteSession) -> None:
        """Count a retirement now rather than at the replay; from now on the queue keeps only the
        session's retirement (a tally, if Redis never saw the session)."""
        self._announced.add(session.id)
        session._settled = True
        session._jar = None  # its cookies go nowhere now
        self._mirrors.pop(session.id, None)
        self._count_retired(session)

    def _append(self, op: Op) -> None:
        self._pending.append(op)
        if not self._online and len(self._pending) >= self._compact_at:
            self._pending.compact(merge_across=self.settings.reuse_strategy == "random")
            self._compact_at = max(COMPACT_AT, 2 * len(self._pending))

    def _create_locally(self, pool: SessionPool) -> Session:
        cfg = self.settings
        proxies = [p for p in (cfg.proxies or (None,)) if (p or "") not in self._paused and not self._refuses_new(p)]
        if not proxies:
            from ..core.exceptions import NoHealthyProxy

            raise NoHealthyProxy("every proxy is cooling down")
        proxy = min(proxies, key=pool.sessions_count_by_proxy)
        session = RemoteSession(
            self,
            options=self._options,
            clock=self._clock,
            proxy_url=proxy,
            user_agent=self._rng.choice(cfg.user_agents) if cfg.user_agents else None,
        )
        self._mirrors[session.id] = session
        fields = {
            "created_at": session.created_at,
            "usage": 0,
            "errors": "0",
            "proxy": proxy or "",
            "ua": session.user_agent or "",
            "ud": "",
        }
        session._unsent = True
        self._append((session, "create", json.dumps(fields), ""))
        if self._on_created is not None:
            self._on_created(session)
        return session

    def _acquire_locally(self, session_id: str | None) -> tuple[Session | None, bool]:
        assert self._fallback is not None
        from ..core.exceptions import NoHealthyProxy

        if session_id is not None:
            session = self._fallback.get_session(session_id)
            if session is not None:
                return session, False
        try:
            return self._fallback.get_session(), session_id is not None
        except NoHealthyProxy:
            return None, session_id is not None

    async def _reconnect(self) -> bool:
        if time.monotonic() - self._last_attempt < RECONNECT_EVERY:
            return False
        self._last_attempt = time.monotonic()
        try:
            await self._client.connection_pool.disconnect()  # connections from before the outage are dead
            await self._client.ping()
        except self._redis_errors:
            return False
        queued = len(self._pending)
        self._online = True
        self._fallback = None  # made anew, from what Redis told this process meanwhile, if the replay fails
        await self.flush()
        if not self._online:  # it answers pings but still refuses writes (out of memory, read-only)
            return False
        logger.warning("Redis at %s answers again: %d queued write(s) replayed", redact(self.url), queued)
        self._in_outage = False
        return True


def _ops(batch: list[Op]) -> list[str]:
    """Queued writes as the scripts' ARGV: kind, session id, a, b for each."""
    return [value for session, kind, a, b in batch for value in (kind, session.id, a, b)]
