"""The writes a process owes a shared Redis pool, in order, kept small while Redis is away.

An op is ``(session, kind, a, b)``; the kinds are those of ``redis_scripts.apply_ops``. The queue
reads two flags of a session: ``_settled`` (retired while Redis was away: only its retirement
still matters) and ``_unsent`` (made while Redis was away and never sent: Redis only needs to
count it, as a ``tally``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Op = tuple[Any, str, str, str]

#: The marks that merge into one ``marks`` op, and the letter each leaves in it.
MARK_CODES = {"good": "g", "bad": "b", "release": "r"}


class WriteQueue:
    """Ops waiting for Redis. ``compact()`` shrinks it without changing what Redis ends up with."""

    def __init__(self) -> None:
        self._ops: list[Op] = []

    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self._ops)

    def append(self, op: Op) -> None:
        self._ops.append(op)

    def take(self, n: int) -> list[Op]:
        """The first ``n`` ops, less those a settled session no longer needs."""
        batch, self._ops = self._ops[:n], self._ops[n:]
        return [_needed(op) for op in batch if not op[0]._settled or op[1] in ("retire", "tally")]

    def put_back(self, batch: list[Op]) -> None:
        """Ops of a batch that did not reach Redis, back at the front, in their order."""
        self._ops[:0] = batch

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
            session, kind, a, _ = op
            if session._settled and kind not in ("retire", "tally"):
                continue
            code = a if kind == "marks" else MARK_CODES.get(kind)
            if code is not None:
                at = marks_at.get(session.id)
                if at is not None and not merge_across and at != len(out) - 1:
                    at = None
                if at is None:
                    marks_at[session.id] = len(out)
                    out.append((session, "marks", code, ""))
                else:
                    out[at] = (session, "marks", out[at][2] + code, "")  # type: ignore[index]
                continue
            if kind in ("create", "retire", "suspect", "clear", "acquit"):  # marks commute with cookie and
                # user-data writes, not with these
                marks_at.pop(session.id, None)
            if kind in ("cookie", "ud"):  # each write replaces the one before
                field = (session.id, a if kind == "cookie" else "ud")
                earlier = last_at.get(field)
                if earlier is not None:
                    out[earlier] = None
                last_at[field] = len(out)
            out.append(op)
        self._ops = [op for op in out if op is not None]


def _needed(op: Op) -> Op:
    session, kind, _, _ = op
    if kind == "retire" and session._settled and session._unsent:
        return (session, "tally", "1", "")  # Redis never saw it: count it as made and retired
    return op
