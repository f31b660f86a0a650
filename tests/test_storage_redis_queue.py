"""The write queue of a shared pool: what it sends, and how it shrinks while Redis is away.

That compaction leaves Redis with the same pool is checked against a real Redis in
``test_storage_redis.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from scrapy_sessionpool.shared.queue import Op, WriteQueue


@dataclass(eq=False)
class S:
    id: str
    retired_offline: bool = False
    awaiting_create: bool = False


def kinds(ops):
    return [(op[0].id, op[1], op[2], op[3]) for op in ops]


def queue(*ops):
    q = WriteQueue()
    for op in ops:
        q.append(Op(*op))
    return q


def test_take_keeps_order_and_drops_what_settled_sessions_no_longer_need():
    live, known, unsent = S("a"), S("b", retired_offline=True), S("c", retired_offline=True, awaiting_create=True)
    q = queue(
        (live, "good", "", ""),
        (known, "good", "", ""),
        (unsent, "create", "{}", ""),
        (known, "cookie", "f", "v"),
        (unsent, "good", "", ""),
        (known, "retire", "status_403", ""),
        (unsent, "retire", "max_usage_count", ""),
        (live, "bad", "", ""),
    )
    batch = q.take(7)
    assert kinds(batch.ops) == [("a", "good", "", ""), ("b", "retire", "status_403", ""), ("c", "tally", "1", "")]
    assert kinds(q) == [("a", "bad", "", "")] and len(q) == 1


def test_a_batch_without_an_answer_is_sent_again_as_it_was_and_compaction_leaves_it_alone():
    a, b = S("a"), S("b")
    q = queue(*[(a, "good", "", "") for _ in range(3)], (b, "create", "{}", ""))
    first = q.take(4)
    assert first.id == "1" and kinds(first.ops)[-1] == ("b", "create", "{}", "")
    assert not b.awaiting_create  # from now on Redis has it, or will: the batch is applied once
    q.failed(first)
    q.append(Op(a, "good"))
    q.append(Op(a, "bad"))
    b.retired_offline = True  # what happens meanwhile does not change what was sent
    q.compact()
    assert len(q) == 5 and [op.kind for op in q][:4] == ["good", "good", "good", "create"]
    again = q.take(10)
    assert again is first and again.args() == first.args()
    q.confirmed(again)
    assert q.unconfirmed is None
    then = q.take(10)
    assert then.id == "2" and kinds(then.ops) == [("a", "marks", "gb", "")]


def test_an_empty_take_is_no_batch():
    q = WriteQueue()
    batch = q.take(5)
    assert not batch and batch.id == "" and batch.args() == [""]
    q.failed(batch)
    assert q.unconfirmed is None


def test_compact_merges_each_sessions_marks_and_keeps_the_last_write_of_each_cookie():
    a, b, gone = S("a"), S("b"), S("g", retired_offline=True)
    q = queue(
        (a, "create", "{}", ""),
        (a, "good", "", ""),
        (b, "bad", "", ""),
        (a, "cookie", "x", "1"),
        (gone, "good", "", ""),
        (a, "good", "", ""),
        (a, "release", "", ""),
        (b, "good", "", ""),
        (a, "cookie", "x", "2"),
        (a, "cookie", "y", "3"),
        (gone, "retire", "status_403", ""),
        (a, "retire", "manual", ""),
        (a, "bad", "", ""),
        (b, "marks", "gg", ""),
    )
    q.compact()
    assert kinds(q) == [
        ("a", "create", "{}", ""),
        ("a", "marks", "ggr", ""),  # cookie writes in between do not part a run (they commute)
        ("b", "marks", "bggg", ""),
        ("a", "cookie", "x", "2"),  # x=1 is gone: only the last write of a cookie matters
        ("a", "cookie", "y", "3"),
        ("g", "retire", "status_403", ""),
        ("a", "retire", "manual", ""),
        ("a", "marks", "b", ""),  # an answer after the retirement stays after it
    ]
    again = kinds(q)
    q.compact()
    assert kinds(q) == again


def test_compact_keeps_the_last_user_data_and_drops_nothing_a_live_session_needs():
    a = S("a")
    q = queue(*[op for n in range(100) for op in ((a, "ud", f'{{"n": {n}}}', ""), (a, "good", "", ""))])
    q.compact()
    assert kinds(q) == [("a", "marks", "g" * 100, ""), ("a", "ud", '{"n": 99}', "")]


def test_compact_without_merge_across_keeps_the_order_of_marks_between_sessions():
    a, b = S("a"), S("b")
    q = queue(
        (a, "bad", "", ""),
        (a, "good", "", ""),
        (b, "bad", "", ""),
        (a, "bad", "", ""),
        (a, "cookie", "x", "1"),
        (a, "release", "", ""),
    )
    q.compact(merge_across=False)  # the ordered strategies pick by the order of these marks
    assert kinds(q) == [
        ("a", "marks", "bg", ""),
        ("b", "marks", "b", ""),
        ("a", "marks", "b", ""),
        ("a", "cookie", "x", "1"),
        ("a", "marks", "r", ""),
    ]
