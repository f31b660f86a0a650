"""Accounts for a pool: one per live session, never two sessions on one; blocked accounts rest, then retire.

An :class:`Account` shows its label only: its secrets (``password``, or any field whose name
says secret, token or key) never reach a ``repr``, a log line or a saved state. The pool keeps,
per label, how often the account's sessions were blocked and until when it rests; that is
saved with the pool, so the next run respects a rest.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import StateError

__all__ = ["Account", "Accounts", "load_accounts"]

logger = logging.getLogger(__name__)

#: Fields whose values are secrets (matched in the field's name, any case).
SECRET = re.compile(r"pass|pwd|pin|secret|token|key|otp|cookie|auth|cred|session", re.IGNORECASE)
#: Fields that may name an account, in order, when it has no ``label``.
LABEL_FIELDS = ("label", "username", "login", "email", "user", "name", "id")
MAX_LABEL = 200


class Account(Mapping[str, Any]):
    """One account's fields (``account["username"]``, ``account["password"]``...), read-only."""

    __slots__ = ("_fields", "label")

    def __init__(self, label: str, fields: Mapping[str, Any]) -> None:
        self.label = label
        self._fields = dict(fields)

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"<Account {self.label!r} {_shown(self._fields)}>"

    __str__ = __repr__

    def secrets(self) -> set[str]:
        """The text of every secret value (nested ones too), for masking."""
        found: set[str] = set()
        _collect(self._fields, False, found)
        return {value for value in found if len(value) >= 3}


def _shown(value: Any, secret: bool = False) -> Any:
    """``value`` with the values of secret fields (at any depth) as ``***``."""
    if isinstance(value, Mapping):
        return {k: _shown(v, secret or (isinstance(k, str) and bool(SECRET.search(k)))) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shown(v, secret) for v in value]
    return "***" if secret else value


def _collect(value: Any, secret: bool, found: set[str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _collect(v, secret or (isinstance(k, str) and bool(SECRET.search(k))), found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect(v, secret, found)
    elif secret and value is not None and not isinstance(value, bool):
        found.add(str(value))


def load_accounts(value: Any, name: str) -> tuple[Account, ...]:
    """Accounts from a setting: a list of dicts, or the path of a JSON-lines file (one account
    per line). Raises ValueError naming ``name`` (and the line) and what was expected."""
    where = name
    if isinstance(value, (str, Path)):
        path = Path(value)
        where = f"{name} file {str(path)!r}"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"{where}: cannot read it ({exc.strerror or exc})") from None
        items: list[Any] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except ValueError:
                raise ValueError(f"{where} line {number}: expected a JSON object per line") from None
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"{name}: expected a list of accounts (dicts) or the path of a JSON-lines file")
    accounts: list[Account] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not all(isinstance(k, str) for k in item):
            raise ValueError(f"{where}[{i}]: expected an object of fields (username, password...)")
        label = next((item[k] for k in LABEL_FIELDS if isinstance(item.get(k), str) and item[k]), None)
        if label is None or len(label) > MAX_LABEL:
            raise ValueError(f"{where}[{i}]: expected a 'label' or 'username' (a string of 1-{MAX_LABEL} characters)")
        if label in seen:
            raise ValueError(f"{where}[{i}]: the label {label!r} is given twice; labels name accounts")
        seen.add(label)
        accounts.append(Account(label, item))
    return tuple(accounts)


@dataclass
class _Health:
    blocks: int = 0
    rests_until: float = 0.0
    retired: bool = False
    held_by: str | None = None
    released_at: float = 0.0


class Accounts:
    """Who holds which account, and which accounts rest or retired.

    :param rest_secs: how long an account rests after its session was blocked.
    :param max_blocks: blocks after which an account is retired for good.
    """

    def __init__(
        self,
        accounts: Iterable[Account],
        *,
        rest_secs: float,
        max_blocks: int,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self._accounts = {a.label: a for a in accounts}
        self._health = {label: _Health() for label in self._accounts}
        self.rest_secs = rest_secs
        self.max_blocks = max_blocks
        #: ``on_event(label, "rests" or "retired")``
        self.on_event = on_event

    def __len__(self) -> int:
        """How many accounts can still be used (in this run or after a rest)."""
        return sum(not h.retired for h in self._health.values())

    def get(self, label: str) -> Account | None:
        return self._accounts.get(label)

    def free(self, now: float) -> int:
        """How many accounts a new session could take now."""
        return sum(h.held_by is None and not h.retired and h.rests_until <= now for h in self._health.values())

    def take(self, session_id: str, now: float) -> Account | None:
        """A free account for a new session (the one released longest ago), or None."""
        best: str | None = None
        for label, health in self._health.items():
            free = health.held_by is None and not health.retired and health.rests_until <= now
            if free and (best is None or health.released_at < self._health[best].released_at):
                best = label
        if best is None:
            return None
        self._health[best].held_by = session_id
        return self._accounts[best]

    def hold(self, label: str, session_id: str) -> bool:
        """A restored session keeps its account, if the account is still there and free."""
        health = self._health.get(label)
        if health is None or health.retired or health.held_by not in (None, session_id):
            return False
        health.held_by = session_id
        return True

    def release(self, label: str, session_id: str, now: float, *, blocked: bool) -> str | None:
        """The session of ``label`` retired; a block rests the account (``"rests"``) or, at the
        ``max_blocks``-th, retires it (``"retired"``). Returns what became of it, or None."""
        health = self._health.get(label)
        if health is None or health.held_by != session_id:
            return None
        health.held_by = None
        health.released_at = now
        if not blocked:
            return None
        health.blocks += 1
        if health.blocks >= self.max_blocks:
            health.retired = True
            event = "retired"
            logger.warning(
                "Account %r is retired: its sessions were blocked %d times (SESSIONPOOL_ACCOUNT_MAX_BLOCKS)",
                label,
                health.blocks,
            )
        else:
            health.rests_until = now + self.rest_secs
            event = "rests"
            logger.info("Account %r rests for %g s after a block (%d so far)", label, self.rest_secs, health.blocks)
        if self.on_event is not None:
            self.on_event(label, event)
        return event

    def to_state(self) -> dict[str, Any]:
        """Each account's blocks and rest, by label (never its fields)."""
        return {
            label: {"blocks": h.blocks, "rests_until": h.rests_until, "retired": h.retired}
            for label, h in self._health.items()
            if h.blocks or h.retired or h.rests_until
        }

    def restore(self, state: Any, where: str = "pool state.accounts") -> list[StateError]:
        """Take blocks and rests back from :meth:`to_state` output; a bad entry is left out alone
        (returned). Accounts no longer configured are forgotten."""
        if state is None:
            return []
        if not isinstance(state, dict):
            return [StateError(f"{where}: expected an object by account label")]
        problems = []
        for label, entry in state.items():
            health = self._health.get(label)
            if health is None:
                continue
            try:
                blocks, until, retired = entry["blocks"], entry["rests_until"], entry["retired"]
                if not isinstance(blocks, int) or isinstance(blocks, bool) or not 0 <= blocks < 10**6:
                    raise TypeError
                if not isinstance(until, (int, float)) or isinstance(until, bool) or abs(until) > 1e12:
                    raise TypeError
                if not isinstance(retired, bool):
                    raise TypeError
            except (TypeError, KeyError):
                problems.append(StateError(f"{where}[{label!r}]: expected {{blocks, rests_until, retired}}"))
                continue
            health.blocks, health.rests_until, health.retired = blocks, float(until), retired
        return problems
