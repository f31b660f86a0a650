"""The file store under faults: SIGKILL mid-save, a full disk, a read-only directory, during a real crawl.

The faults are real where the sandbox allows it: a full disk is a small tmpfs
mounted on the store directory (root only), a read-only directory is
``chmod 0500`` (not as root: root ignores permission bits), ``chattr +i`` or a
read-only bind mount (root only). Each mount and attribute is undone in the
fixture's teardown. Where no tmpfs can be mounted, the full disk falls back to
``/dev/full``: the store's temporary file is created as usual, but its data
goes to ``/dev/full``, whose writes fail with ENOSPC (a real kernel error, only
not from the directory's own filesystem). A read-only way that does not work
here is skipped with the reason.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest
import pytest_twisted

from scrapy_sessionpool import SessionPool
from scrapy_sessionpool.stores import FileStore
from scrapy_sessionpool.stores import file as file_module
from tests.crawling import make_crawler, stats

ROOT = Path(__file__).resolve().parent.parent


def _load_benchmark(name: str) -> types.ModuleType:
    """Import ``benchmarks/<name>.py`` (not a package) without putting ``benchmarks/`` on sys.path."""
    spec = importlib.util.spec_from_file_location(f"_benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench_kill = _load_benchmark("bench_kill")


# -- SIGKILL during saves -------------------------------------------------------------


def test_sigkill_during_saves_always_leaves_the_previous_or_the_new_state(tmp_path):
    """A short run of ``benchmarks/bench_kill.py``: 5 kills (more, up to 10, until one lands mid-write)."""
    result, _ = bench_kill.run(
        5, sessions=500, seed=1, directory=tmp_path / "store", in_write_share=0.8, min_mid_write=1, max_kills=10
    )
    assert result.violations == []
    assert result.old + result.new == result.kills >= 5
    assert result.mid_write >= 1  # at least one kill interrupted a write ...
    leftovers = sorted(p.name for p in (tmp_path / "store").iterdir() if p.name.endswith(".tmp"))
    assert len(leftovers) == result.leftovers == result.mid_write  # ... and left its temporary file (a known limit)
    state = FileStore(tmp_path / "store").load(bench_kill.KEY)
    assert bench_kill.check_state(state, 500) == result.on_disk  # which is never read as the state


# -- the faults ------------------------------------------------------------------------


def _run(*command: str | os.PathLike[str]) -> None:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise OSError(f"{' '.join(map(str, command))}: {done.stderr.strip() or f'status {done.returncode}'}")


class Fault:
    """Breaks saving to ``directory`` for real: ``apply`` breaks it, ``undo`` repairs it."""

    name = ""
    errno = 0  # what a save gets

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.applied = False

    def prepare(self) -> None:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self.directory.mkdir(mode=0o700, exist_ok=True)

    def apply(self) -> None:
        raise NotImplementedError

    def undo(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        if self.applied:
            self.undo()
            self.applied = False

    def ensure_applied(self) -> None:
        """Apply, and check that writing a file as the store does fails now."""
        self.apply()
        self.applied = True
        try:
            fd, probe = file_module.tempfile.mkstemp(dir=self.directory)
        except OSError:
            return
        try:
            os.write(fd, b"x" * 65536)
        except OSError:
            return
        finally:
            os.close(fd)
            os.unlink(probe)
        raise OSError(f"{self.name} does not stop writes here")


class ChmodReadOnly(Fault):
    name = "chmod 0500"
    errno = errno.EACCES

    def apply(self) -> None:
        if os.geteuid() == 0:
            raise OSError("the tests run as root, whom permission bits do not stop")
        os.chmod(self.directory, 0o500)

    def undo(self) -> None:
        os.chmod(self.directory, 0o700)


class ImmutableDirectory(Fault):
    name = "chattr +i"
    errno = errno.EPERM

    def apply(self) -> None:
        if shutil.which("chattr") is None:
            raise OSError("chattr is not installed")
        _run("chattr", "+i", self.directory)

    def undo(self) -> None:
        _run("chattr", "-i", self.directory)


class ReadOnlyBindMount(Fault):
    name = "read-only bind mount"
    errno = errno.EROFS

    def apply(self) -> None:
        _run("mount", "--bind", self.directory, self.directory)
        try:
            _run("mount", "-o", "remount,ro,bind", self.directory)
        except OSError:
            _run("umount", self.directory)
            raise

    def undo(self) -> None:
        _unmount(self.directory)


class FullTmpfs(Fault):
    """A 256 KiB tmpfs on the directory; ``apply`` fills it up with a file."""

    name = "full tmpfs"
    errno = errno.ENOSPC
    size = 256 * 1024

    def prepare(self) -> None:
        super().prepare()
        _run("mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0700", "tmpfs", self.directory)

    def apply(self) -> None:
        chunk = b"\0" * 4096
        with open(self.directory / "filler", "wb", buffering=0) as f:
            while True:
                try:
                    f.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    return

    def undo(self) -> None:
        (self.directory / "filler").unlink()

    def teardown(self) -> None:
        super().teardown()
        _unmount(self.directory)


class DevFull(Fault):
    """The fallback full disk: the temporary file's data goes to /dev/full (see the module docstring)."""

    name = "/dev/full (no tmpfs could be mounted)"
    errno = errno.ENOSPC

    def prepare(self) -> None:
        super().prepare()
        if not os.path.exists("/dev/full"):
            raise OSError("/dev/full does not exist either")

    def apply(self) -> None:
        def mkstemp(**kwargs):
            fd, path = tempfile.mkstemp(**kwargs)
            os.close(fd)
            return os.open("/dev/full", os.O_WRONLY), path

        file_module.tempfile = types.SimpleNamespace(mkstemp=mkstemp)  # only the file store's tempfile

    def undo(self) -> None:
        file_module.tempfile = tempfile


def _unmount(directory: Path) -> None:
    try:
        _run("umount", directory)
    except OSError:
        _run("umount", "-l", directory)  # busy: detach it now, the kernel frees it when it can


READ_ONLY = {"chmod": ChmodReadOnly, "chattr": ImmutableDirectory, "bind": ReadOnlyBindMount}


def _prepared(fault: Fault) -> Fault:
    try:
        fault.prepare()
    except OSError as exc:
        pytest.skip(f"{fault.name}: cannot prepare it here ({exc})")
    return fault


def _probe(fault_cls: type[Fault], scratch: Path) -> str | None:
    """None if the fault works here, else why not."""
    fault = fault_cls(scratch / fault_cls.__name__)
    try:
        fault.prepare()
        fault.ensure_applied()
    except OSError as exc:
        return str(exc)
    finally:
        fault.teardown()
    return None


@pytest.fixture
def full_disk(tmp_path):
    fault: Fault = FullTmpfs(tmp_path / "store")
    try:
        fault.prepare()
    except OSError:
        fault = _prepared(DevFull(tmp_path / "store"))
    try:
        yield fault
    finally:
        fault.teardown()


@pytest.fixture(params=sorted(READ_ONLY))
def read_only(request, tmp_path):
    fault = READ_ONLY[request.param](tmp_path / "store")
    why = _probe(type(fault), tmp_path / "probe")
    if why:
        pytest.skip(f"{fault.name}: {why}")
    _prepared(fault)
    try:
        yield fault
    finally:
        fault.teardown()


@pytest.fixture
def any_read_only(tmp_path):
    """The first way to make a directory read-only that works here."""
    reasons = []
    for cls in READ_ONLY.values():
        why = _probe(cls, tmp_path / "probe")
        if why is None:
            fault = _prepared(cls(tmp_path / "store"))
            try:
                yield fault
            finally:
                fault.teardown()
            return
        reasons.append(f"{cls.name}: {why}")
    pytest.skip("no way to make a directory read-only here: " + "; ".join(reasons))


def _state(sessions: int, seed: int = 1) -> dict:
    pool = SessionPool(max_pool_size=sessions, seed=seed)
    for _ in range(sessions):
        session = pool.get_session()
        session.set_cookie("sid", session.id, domain="shop.example", expires=4_000_000_000)
        session.mark_good()
    return pool.get_state()


def _temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- one save ----------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["full before the save", "fills up during the save"])
def test_a_full_disk_fails_the_save_and_keeps_the_previous_state(full_disk, when):
    store = FileStore(full_disk.directory)
    old = _state(2)
    store.save("spider", old)
    before = store.path("spider").read_bytes()
    if when == "full before the save":
        full_disk.ensure_applied()
        new = _state(3, seed=2)
    else:  # about 480 KB for a 256 KiB tmpfs: the write starts, then runs out of room
        new = _state(1000, seed=2)
        if isinstance(full_disk, DevFull):
            full_disk.ensure_applied()
    with pytest.raises(OSError) as raised:
        store.save("spider", new)
    assert raised.value.errno == errno.ENOSPC
    assert _temporaries(full_disk.directory) == []
    assert store.path("spider").read_bytes() == before
    assert store.load("spider") == old


def test_a_read_only_directory_fails_the_save_and_keeps_the_previous_state(read_only):
    store = FileStore(read_only.directory)
    store.save("spider", _state(2))
    before = store.path("spider").read_bytes()
    read_only.ensure_applied()
    with pytest.raises(OSError) as raised:
        store.save("spider", _state(3, seed=2))
    assert raised.value.errno == read_only.errno
    assert _temporaries(read_only.directory) == []
    assert store.path("spider").read_bytes() == before
    assert SessionPool.from_state(store.load("spider"), max_pool_size=2).usable_sessions_count == 2


# -- a real crawl ----------------------------------------------------------------------


@pytest.fixture(params=["full", "read-only"])
def broken_later(request):
    return request.getfixturevalue("full_disk" if request.param == "full" else "any_read_only")


@pytest_twisted.inlineCallbacks
def test_the_crawl_goes_on_when_saving_breaks_after_a_first_save(site, broken_later, caplog, monkeypatch):
    """After the first periodic save the directory fills up or turns read-only (from the saving
    thread, so that no save is under way): every later save warns, the crawl goes on."""
    fault = broken_later
    site.budget = None
    first: list[bytes] = []
    save = FileStore.save

    def save_then_break(self, key, state):
        save(self, key, state)
        if not first:
            first.append(self.path(key).read_bytes())
            fault.ensure_applied()

    monkeypatch.setattr(FileStore, "save", save_then_break)
    crawler = make_crawler(
        settings={
            "SESSIONPOOL_PERSIST_STATE": True,
            "SESSIONPOOL_PERSIST_STATE_STORE": str(fault.directory),
            "SESSIONPOOL_PERSIST_INTERVAL": 0.1,
            "DOWNLOAD_DELAY": 0.1,
            "CONCURRENT_REQUESTS": 1,
        }
    )
    yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(8)])

    assert len(crawler.spider.responses) == 8 and not crawler.spider.failures
    warnings = [r for r in caplog.records if r.getMessage().startswith("Could not save session pool")]
    s = stats(crawler)
    assert len(warnings) == s["persist_failed"] >= 2 and s["persisted"] == 1
    assert all(r.levelname == "WARNING" and os.strerror(fault.errno) in r.getMessage() for r in warnings)
    store = FileStore(fault.directory)
    assert store.path("list").read_bytes() == first[0]
    assert SessionPool.from_state(store.load("list")).usable_sessions_count >= 1
    assert _temporaries(fault.directory) == []
