"""Reuse strategies: which ready session a full pool hands out next.

Each strategy keeps the pool's ready sessions in a structure that adds,
removes and picks in O(1).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import Session

__all__ = ["REUSE_STRATEGIES", "make_strategy"]


class RandomStrategy:
    """Any ready session, uniformly at random (the Apify SDK's behaviour)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._items: list[Session] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, session: Session) -> bool:
        return session.id in self._index

    def add(self, session: Session) -> None:
        if session.id not in self._index:
            self._index[session.id] = len(self._items)
            self._items.append(session)

    def discard(self, session: Session) -> None:
        i = self._index.pop(session.id, None)
        if i is None:
            return
        last = self._items.pop()
        if last is not session:
            self._items[i] = last
            self._index[last.id] = i

    def pick(self) -> Session:
        return self._items[int(self._rng.random() * len(self._items))]

    def failed(self, session: Session) -> None:
        pass


class RoundRobinStrategy:
    """Each ready session in turn."""

    def __init__(self, rng: random.Random) -> None:
        self._items: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, session: Session) -> bool:
        return session.id in self._items

    def add(self, session: Session) -> None:
        self._items.setdefault(session.id, session)

    def discard(self, session: Session) -> None:
        self._items.pop(session.id, None)

    def pick(self) -> Session:
        sid, session = next(iter(self._items.items()))
        self._items.move_to_end(sid)
        return session

    def failed(self, session: Session) -> None:
        pass


class UseUntilFailureStrategy(RoundRobinStrategy):
    """The same session again and again until it is marked bad, then the next one."""

    def pick(self) -> Session:
        return next(iter(self._items.values()))

    def failed(self, session: Session) -> None:
        if session.id in self._items:
            self._items.move_to_end(session.id)


REUSE_STRATEGIES: dict[str, type[RandomStrategy | RoundRobinStrategy]] = {
    "random": RandomStrategy,
    "round_robin": RoundRobinStrategy,
    "use_until_failure": UseUntilFailureStrategy,
}


def make_strategy(name: str, rng: random.Random) -> RandomStrategy | RoundRobinStrategy:
    try:
        cls = REUSE_STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"reuse_strategy: expected one of {', '.join(map(repr, REUSE_STRATEGIES))}, got {name!r}"
        ) from None
    return cls(rng)
