"""The embedded file store: one JSON file per key, written atomically, readable only by you.

A file that cannot be read, does not parse or has the wrong shape is never
deleted or overwritten: it is moved aside with a timestamp.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..core.exceptions import StateError

__all__ = ["FileStore"]

logger = logging.getLogger(__name__)

#: Pool states are small JSON; anything far larger is not ours (or is an attack).
MAX_FILE_BYTES = 1 << 30
#: Temporary files of saves that a crash interrupted are removed once this old (they hold cookies).
STALE_TMP_SECS = 3600


class FileStore:
    """Keeps each key's state in ``<directory>/<key>.json`` (mode 0600)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser()

    def __repr__(self) -> str:
        return f"FileStore({str(self.directory)!r})"

    def path(self, key: str) -> Path:
        """The file of ``key``; any character outside ``[A-Za-z0-9_.-]`` is %-escaped."""
        name = quote(key, safe="")
        if name.startswith("."):
            name = "%2E" + name[1:]
        return self.directory / f"{name}.json"

    def describe(self, key: str) -> str:
        return str(self.path(key))

    def load(self, key: str) -> dict[str, Any] | None:
        """The state saved under ``key``, None when there is none.

        Raises :class:`StateError` when the file exists but cannot be read or
        is not a JSON object; the caller decides whether to :meth:`set_aside` it.
        """
        path = self.path(key)
        self._remove_temporaries(path, older_than=STALE_TMP_SECS)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > MAX_FILE_BYTES:
                    raise StateError(f"{path}: {size} bytes is too large for a session pool state")
                data = f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StateError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
        try:
            state = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise StateError(f"{path}: not valid JSON ({str(exc)[:200]})") from exc
        if not isinstance(state, dict):
            raise StateError(f"{path}: expected a JSON object, got {type(state).__name__}")
        return state

    def save(self, key: str, state: dict[str, Any]) -> None:
        """Write ``state`` atomically: a temporary file in the same directory, fsynced, then renamed."""
        self.save_bytes(key, json.dumps(state, separators=(",", ":"), allow_nan=False).encode())

    def save_bytes(self, key: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(self.directory)

    def set_aside(self, key: str) -> Path | None:
        """Rename the file of ``key`` to ``<file>.bad-<timestamp>``; return the new path."""
        return self._aside(key, os.rename)

    def keep_copy(self, key: str) -> Path | None:
        """Copy the file of ``key`` to ``<file>.bad-<timestamp>`` (mode 0600); return the copy's path."""

        def copy(source: Path, target: Path) -> None:
            data = source.read_bytes()
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())

        return self._aside(key, copy)

    def _aside(self, key: str, move: Callable[[Path, Path], None]) -> Path | None:
        path = self.path(key)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for n in range(1000):
            target = path.with_name(f"{path.name}.bad-{stamp}" + (f"-{n}" if n else ""))
            if target.exists():
                continue
            try:
                move(path, target)
            except FileNotFoundError:
                return None
            except FileExistsError:
                continue
            return target
        raise OSError(f"{path}: too many files set aside already")

    def delete(self, key: str) -> bool:
        """Remove the state of ``key`` (``scrapy sessionpool --clear``), with any temporary files."""
        path = self.path(key)
        self._remove_temporaries(path, older_than=0)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _remove_temporaries(self, path: Path, older_than: float) -> None:
        """Remove temporary files of ``path`` left by interrupted saves (not another process's save
        in progress: only those older than ``older_than`` seconds)."""
        cutoff = time.time() - older_than
        for tmp in self.directory.glob(f".{glob.escape(path.name)}.*.tmp"):
            try:
                if tmp.lstat().st_mtime <= cutoff:
                    tmp.unlink()
            except OSError:
                pass


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
