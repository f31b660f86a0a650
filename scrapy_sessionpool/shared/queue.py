"""The writes a process owes a shared Redis pool, in order, kept small while Redis is away.

An :class:`Op` is one write; its kinds are those of ``scripts.apply_ops``. The queue reads two
flags of a session: ``retired_offline`` (retired while Redis was away: only its retirement still
matters) and ``awaiting_create`` (made while Redis was away and never sent: Redis only needs to
count it, as a ``tally``).

Ops leave the queue in a :class:`Batch` with an id. A batch that was sent but not answered may
have been applied: it is sent again as it is, with its id, before anything else (Redis applies
a batch id once), and compaction never touches it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .remote_session import RemoteSession


class Op(NamedTuple):
    """One write for Redis: ``kind`` of ``session``, with up to two arguments.

    ``value``: the letters of a ``marks`` op, a cookie's field, a retirement reason, the JSON of
    a ``create``, a ``suspect`` or of ``ud`` (user data), the count of a ``tally``; ``extra``: a
    cookie's JSON (empty: the cookie is cleared). ``fetch``: how many times the session's data had
    been fetched from Redis when a cookie or user-data write was made (not sent).
    """

    session: RemoteSession
    kind: str
    value: str = ""
    extra: str = ""
    fetch: int = 0


#: The marks that merge into one ``marks`` op, and the letter each leaves in it.
MARK_CODES = {"good": "g", "bad": "b", "release": "r"}


@dataclass(eq=False)
class Batch:
    """Ops sent together under one id (empty: no ops, nothing to apply)."""

    id: str = ""
    ops: list[Op] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def args(self) -> list[str]:
        """The batch id, then its ops as the scripts' ARGV: kind, session id, value, extra for each."""
        return [self.id, *(value for op in self.ops for value in (op.kind, op.session.id, op.value, op.extra))]


class WriteQueue:
    """Ops waiting for Redis. ``compact()`` shrinks it without changing what Redis ends up with."""

    def __init__(self) -> None:
        self._ops: list[Op] = []
        self._ids = itertools.count(1)
        #: a batch sent without an answer: sent again, as it is, before any other
        self.unconfirmed: Batch | None = None

    def __len__(self) -> int:
        return len(self._ops) + (len(self.unconfirmed.ops) if self.unconfirmed else 0)

    def __iter__(self) -> Iterator[Op]:
        return iter([*(self.unconfirmed.ops if self.unconfirmed else ()), *self._ops])

    def append(self, op: Op) -> None:
        self._ops.append(op)

    def take(self, n: int) -> Batch:
        """The unconfirmed batch, else a new one of the first ``n`` ops, less those a settled
        session no longer needs. Its creates count as sent from now on: the batch is applied once."""
        if self.unconfirmed is not None:
            return self.unconfirmed
        ops, self._ops = self._ops[:n], self._ops[n:]
        ops = [_needed(op) for op in ops if not op.session.retired_offline or op.kind in ("retire", "tally")]
        for op in ops:
            if op.kind == "create":
                op.session.awaiting_create = False
        return Batch(str(next(self._ids)), ops) if ops else Batch()

    def failed(self, batch: Batch) -> None:
        """``batch`` got no answer: Redis may or may not have applied it."""
        if batch:
            self.unconfirmed = batch

    def confirmed(self, batch: Batch) -> None:
        if batch is self.unconfirmed:
            self.unconfirmed = None

    def compact(self, *, merge_across: bool = True) -> None:
        """Drop what settled sessions no longer need, merge each session's run of marks into one
        ``marks`` op, and keep only the last write of each cookie and of the user data.

        ``merge_across=False`` merges only marks next to each other: with the ordered reuse
        strategies, moving a session's marks past another session's changes the pick order.
        """
        out: list[Op | None] = []
        marks_at: dict[str, int] = {}  # session id -> index of its open marks op
        last_at: dict[tuple[str, str], int] = {}  # (session id, cookie field or "ud") -> index of its last write
        for op in self._ops:
            session, kind, value = op.session, op.kind, op.value
            if session.retired_offline and kind not in ("retire", "tally"):
                continue
            code = value if kind == "marks" else MARK_CODES.get(kind)
            if code is not None:
                at = marks_at.get(session.id)
                if at is not None and not merge_across and at != len(out) - 1:
                    at = None
                if at is None:
                    marks_at[session.id] = len(out)
                    out.append(Op(session, "marks", code))
                else:
                    out[at] = Op(session, "marks", out[at].value + code)  # type: ignore[union-attr]
                continue
            if kind in ("create", "retire", "suspect", "clear", "acquit"):  # marks commute with cookie and
                # user-data writes, not with these
                marks_at.pop(session.id, None)
            if kind in ("cookie", "ud"):  # each write replaces the one before
                field = (session.id, value if kind == "cookie" else "ud")
                earlier = last_at.get(field)
                if earlier is not None:
                    out[earlier] = None
                last_at[field] = len(out)
            out.append(op)
        self._ops = [op for op in out if op is not None]


def _needed(op: Op) -> Op:
    if op.kind == "retire" and op.session.retired_offline and op.session.awaiting_create:
        return Op(op.session, "tally", "1")  # Redis never saw it: count it as made and retired
    return op
