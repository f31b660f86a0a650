"""``scrapy sessionpool [SPIDER]``: show, or clear, the session pools a spider has stored.

Never prints a cookie value or a proxy password.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from ..core.exceptions import StateError
from ..core.pool import parse_state
from ..core.proxies import redact
from ..settings import PoolSettings, SettingsError
from ..stores import open_store

if TYPE_CHECKING:
    import argparse

    from scrapy.settings import Settings

    from ..core.session import Session

__all__ = ["Command"]

UA_WIDTH = 40


class Command(ScrapyCommand):
    requires_project = False
    requires_crawler_process = False  # Scrapy >= 2.14; older versions ignore it
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}

    def syntax(self) -> str:
        return "[options] [SPIDER]"

    def short_desc(self) -> str:
        return "Show or clear the stored session pools of a spider"

    def long_desc(self) -> str:
        return (
            "Show the sessions of the pools stored for SPIDER (its default pool and the named pools of "
            "SESSIONPOOL_POOLS), with the spider's custom_settings over the project settings: id, age, "
            "usage, error score, proxy (password hidden), User-Agent and cookie names (never values). "
            "SPIDER is required when SESSIONPOOL_PERSIST_STATE_KEY contains %(spider)s, unless --key is given."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--key", metavar="KEY", help="the store key to use, instead of SESSIONPOOL_PERSIST_STATE_KEY"
        )
        parser.add_argument("--json", action="store_true", help="print the pools as JSON")
        parser.add_argument("--clear", action="store_true", help="delete the stored pools (asks first)")
        parser.add_argument("-y", "--yes", action="store_true", help="with --clear: do not ask")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) > 1:
            raise UsageError("expected at most one SPIDER name")
        if opts.clear and opts.json:
            raise UsageError("--clear and --json do not go together", print_help=False)
        if opts.yes and not opts.clear:
            raise UsageError("--yes only goes with --clear", print_help=False)
        spider = args[0] if args else None
        settings = self._settings(spider)
        if settings is None:
            return
        try:
            pool_settings = PoolSettings.from_settings(settings)
        except SettingsError as exc:
            return self._fail(f"Error: {exc}")
        if not pool_settings.persist_state:
            print("SESSIONPOOL_PERSIST_STATE is False: no session pool is stored.", file=sys.stderr)
            if opts.json:
                print(json.dumps({"pools": []}))
            return
        key = opts.key or self._key(pool_settings.persist_state_key, spider)
        try:
            store = open_store(pool_settings, settings)
        except ImportError as exc:
            return self._fail(f"Error: cannot open the session pool store ({exc})")
        pools: list[tuple[str | None, str]] = [(None, key), *((name, f"{key}.{name}") for name in pool_settings.pools)]
        if opts.clear:
            self._clear(store, pools, ask=not opts.yes)
        else:
            self._show(store, pools, as_json=opts.json)

    # -- settings and key ----------------------------------------------------------

    def _settings(self, spider: str | None) -> Settings | None:
        """The project settings, with ``spider``'s ``custom_settings`` over them."""
        assert self.settings is not None
        if spider is None:
            return self.settings
        try:
            spidercls = self._spider_loader().load(spider)
        except KeyError:
            self._fail(f"Spider not found: {spider}")
            return None
        settings = self.settings.copy()
        spidercls.update_settings(settings)
        return settings

    def _spider_loader(self) -> Any:
        try:
            from scrapy.spiderloader import get_spider_loader
        except ImportError:  # Scrapy < 2.14 always builds a crawler process
            assert self.crawler_process is not None
            return self.crawler_process.spider_loader
        assert self.settings is not None
        return get_spider_loader(self.settings)

    @staticmethod
    def _key(template: str, spider: str | None) -> str:
        if spider is None:
            if template % {"spider": "a"} != template % {"spider": "b"}:
                raise UsageError(
                    f"SESSIONPOOL_PERSIST_STATE_KEY ({template!r}) names the spider: give a SPIDER, or --key KEY",
                    print_help=False,
                )
            spider = ""
        return template % {"spider": spider}

    # -- show ----------------------------------------------------------------------

    def _show(self, store: Any, pools: list[tuple[str | None, str]], *, as_json: bool) -> None:
        now = time.time()
        shown = []
        for name, key in pools:
            where = store.describe(key)
            try:
                state = store.load(key)
                sessions, retired = parse_state(state) if state is not None else ([], 0)
            except StateError as exc:
                message = str(exc) if where in str(exc) else f"{where}: {exc}"
                self._fail(f"Error: unusable session pool state: {message}")
                continue
            except Exception as exc:  # noqa: BLE001 - a store that cannot be reached (Redis down...)
                self._fail(f"Error: cannot read {where}: {type(exc).__name__}: {exc}")
                continue
            shown.append(_pool_json(name, key, where, state is not None, sessions, retired, now))
        if as_json:
            print(json.dumps({"pools": shown}, indent=2))
        else:
            print("\n\n".join(_pool_text(pool) for pool in shown))

    # -- clear ---------------------------------------------------------------------

    def _clear(self, store: Any, pools: list[tuple[str | None, str]], *, ask: bool) -> None:
        wheres = [store.describe(key) for _, key in pools]
        if ask:
            if not sys.stdin.isatty():
                self._fail("Not clearing: no terminal to confirm on; add --yes to clear without asking.", exitcode=2)
                return
            noun = "pool" if len(wheres) == 1 else "pools"
            try:
                answer = input(f"Delete the stored {noun} at {', '.join(map(_clean, wheres))}? [y/N] ")
            except EOFError:
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing deleted.")
                return
        for (_, key), where in zip(pools, wheres, strict=True):
            try:
                deleted = store.delete(key)
            except Exception as exc:  # noqa: BLE001 - as above
                self._fail(f"Error: cannot delete {where}: {type(exc).__name__}: {exc}")
                continue
            print(f"{'Deleted' if deleted else 'Nothing stored at'} {_clean(where)}")

    def _fail(self, message: str, exitcode: int = 1) -> None:
        print(_clean(redact(message) or ""), file=sys.stderr)
        self.exitcode = exitcode


# -- formatting ------------------------------------------------------------------------


def _pool_json(
    name: str | None, key: str, where: str, stored: bool, sessions: list[Session], retired: int, now: float
) -> dict[str, Any]:
    return {
        "name": name,
        "key": key,
        "where": where,
        "stored": stored,
        "sessions": [
            {
                "id": s.id,
                "created_at": s.created_at,
                "age_secs": round(max(0.0, now - s.created_at), 1),
                "usage_count": s.usage_count,
                "error_score": s.error_score,
                "proxy": redact(s.proxy_url),
                "user_agent": s.user_agent,
                "account": s.account,  # its label: accounts' fields are never saved
                "initialized": s.initialized,
                "cookie_names": list(dict.fromkeys(c["name"] for c in s.cookies)),
                "user_data_keys": sorted(s.user_data),
            }
            for s in sessions
        ],
        "retired_sessions_count": retired,
    }


def _pool_text(pool: dict[str, Any]) -> str:
    title = "Default pool" if pool["name"] is None else f"Pool {pool['name']!r}"
    lines = [_clean(f"{title}: {pool['where']}")]
    sessions = pool["sessions"]
    if not pool["stored"]:
        return "\n".join([*lines, "  nothing stored"])
    if sessions:
        accounts = any(s["account"] for s in sessions)
        rows: list[tuple[str, ...]] = [
            ("ID", "AGE", "USES", "ERRORS", "PROXY", *(("ACCOUNT",) if accounts else ()), "USER AGENT", "COOKIES")
        ]
        rows += [
            (
                s["id"],
                _age(s["age_secs"]),
                str(s["usage_count"]),
                f"{s['error_score']:g}",
                s["proxy"] or "direct",
                *((s["account"] or "-",) if accounts else ()),
                _shorten(s["user_agent"] or "-", UA_WIDTH),
                ",".join(s["cookie_names"]) or "-",
            )
            for s in sessions
        ]
        rows = [tuple(_clean(cell) for cell in row) for row in rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            lines.append("  " + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip())
    else:
        lines.append("  no sessions")
    per_proxy = Counter(s["proxy"] or "direct" for s in sessions)
    lines.append(f"  {len(sessions)} session(s), {pool['retired_sessions_count']} retired over the pool's life")
    if per_proxy:
        lines.append(_clean("  per proxy: " + ", ".join(f"{p} {n}" for p, n in sorted(per_proxy.items()))))
    return "\n".join(lines)


def _age(secs: float) -> str:
    secs = int(secs)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _clean(text: str) -> str:
    """``text`` without control characters (a stored state is not trusted with the terminal)."""
    return "".join(c if c.isprintable() else "?" for c in text)
