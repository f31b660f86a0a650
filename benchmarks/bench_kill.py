"""Kill benchmark: SIGKILL a process while it saves its pool to the file store, many times.

Run: ``python benchmarks/bench_kill.py [--kills 50] [--sessions 3000] [--seed 1]``.

A child process (plain Python, no Scrapy) restores the pool from the store
(``FileStore.load`` + ``SessionPool.from_state``, as a crawl does at start),
then saves it with ``FileStore.save`` in a tight loop. Each save is one
generation: the generation number goes in the ``user_data`` of the session
with the smallest id, and one more session is marked good, so the total usage
count is ``sessions + generation``. After ``save`` returns, the child appends the
generation number to a log file (one ``write`` to an ``O_APPEND`` file: a
killed process never leaves half a line there).

The parent measures a save first, then, for each kill, starts a child, waits
until it has restored the pool and completed 0 to 2 saves, and kills it with
SIGKILL: a third of the kills (chosen by a seeded RNG) at a random moment
within one save cycle, the others once the child's temporary file appears,
after a random delay within the time a temporary file exists (measured first),
so that many kills land between ``mkstemp`` and ``os.replace``. Then it checks:

- the state file loads (``FileStore.load`` and ``SessionPool.from_state``) and is
  whole: every session there with its cookies, and a total usage count that
  matches its generation (no mix of two saves);
- its generation is the last one the log shows as completed (*old*) or the one
  being written (*new*: killed after the rename, before the log line); never
  older, never anything else;
- its mode is 0600;
- at most one new temporary file is left behind (the one the kill
  interrupted: a killed writer cannot remove it), it is never what ``load``
  reads, and the next child restores from the state file regardless.

The leftovers are kept, so they pile up over the run (one per kill that landed
mid-write) and every later load happens next to them. Exit status 1 on any
violation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scrapy_sessionpool import SessionPool  # noqa: E402
from scrapy_sessionpool.stores import FileStore  # noqa: E402

KEY = "bench"
#: Sessions must neither expire nor retire during the run: the check counts them.
POOL_OPTIONS: dict[str, Any] = {"session_options": {"max_usage_count": 10**9, "max_age_secs": 10**8}}
READY = "ready"


# -- the pool and its generations --------------------------------------------------


def new_pool(sessions: int) -> SessionPool:
    """``sessions`` sessions with two cookies each, each used once; generation 0."""
    pool = SessionPool(max_pool_size=sessions, seed=1, **POOL_OPTIONS)
    for _ in range(sessions):
        s = pool.get_session()
        s.set_cookie("sid", s.id, domain="shop.example", expires=4_000_000_000)
        s.set_cookie("pref", "eur", domain=".shop.example")
        s.mark_good()
    _ordered(pool)[0].user_data["generation"] = 0
    return pool


def restore(state: Any, sessions: int) -> SessionPool:
    return SessionPool.from_state(state, max_pool_size=sessions, **POOL_OPTIONS)


def _ordered(pool: SessionPool) -> list[Any]:
    return sorted(pool, key=lambda s: s.id)


def next_generation(pool: SessionPool, ordered: list[Any]) -> int:
    """Make the pool's state differ from the last one: generation + 1, one more use."""
    marker = ordered[0]
    generation = marker.user_data["generation"] + 1
    marker.user_data["generation"] = generation
    ordered[generation % len(ordered)].mark_good()
    return generation


def check_state(state: Any, sessions: int) -> int:
    """The generation of a whole, consistent state; raises AssertionError otherwise."""
    pool = restore(state, sessions)
    ordered = _ordered(pool)
    assert len(ordered) == sessions, f"{len(ordered)} sessions restored, expected {sessions}"
    generation = ordered[0].user_data.get("generation")
    assert isinstance(generation, int), f"no generation in the marker session: {ordered[0].user_data!r}"
    usage = sum(s.usage_count for s in ordered)
    assert usage == sessions + generation, f"usage {usage} != {sessions} + generation {generation}: a mixed state"
    bad = [s.id for s in ordered if sorted(c["name"] for c in s.cookies) != ["pref", "sid"]]
    assert not bad, f"{len(bad)} session(s) lost cookies, e.g. {bad[0]}"
    return generation


# -- the child: restore, then save generation after generation until killed ---------


def child(directory: str, log: str, sessions: int) -> None:
    store = FileStore(directory)
    state = store.load(KEY)
    pool = new_pool(sessions) if state is None else restore(state, sessions)
    ordered = _ordered(pool)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{READY} {ordered[0].user_data['generation']}\n".encode())
    while True:
        generation = next_generation(pool, ordered)
        store.save(KEY, pool.get_state())
        os.write(fd, f"{generation}\n".encode())


def read_log(log: Path) -> tuple[int | None, int | None]:
    """(the generation the child restored, the last generation it completed or restored)."""
    words = log.read_text().split()
    if words[:1] != [READY] or len(words) < 2:
        return None, None
    return int(words[1]), int(words[-1])


# -- the parent ------------------------------------------------------------------------


@dataclass
class Timing:
    cycle: float  # get_state + save: one generation of the child
    save: float  # FileStore.save: encode and write
    window: float  # how long a temporary file exists: mkstemp, write, fsync, rename
    size: int


def measure(directory: Path, sessions: int, repeat: int = 5) -> Timing:
    """Time the child's loop in this process, leaving generation 0 saved in ``directory``.

    The window is timed by repeating ``FileStore.save_bytes``'s steps up to the
    rename (not the directory fsync after it) on a file of the same size.
    """
    store = FileStore(directory)
    pool = new_pool(sessions)
    ordered = _ordered(pool)
    cycles, saves, windows = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        state = pool.get_state()
        t1 = time.perf_counter()
        store.save(KEY, state)
        t2 = time.perf_counter()
        data = store.path(KEY).read_bytes()
        t3 = time.perf_counter()
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".measure.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / "measure.json")
        t4 = time.perf_counter()
        cycles.append(t2 - t0)
        saves.append(t2 - t1)
        windows.append(t4 - t3)
        next_generation(pool, ordered)
    os.unlink(directory / "measure.json")
    store.save(KEY, new_pool(sessions).get_state())  # the run starts from a fresh generation 0
    return Timing(statistics.median(cycles), statistics.median(saves), statistics.median(windows), len(data))


def temp_files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.name.endswith(".tmp")}


@dataclass
class Result:
    kills: int = 0
    mid_write: int = 0  # a temporary file of the killed child was left: the kill landed between mkstemp and rename
    complete_leftovers: int = 0  # ... of which the data was all written (killed during fsync or before the rename)
    old: int = 0  # the file holds the last completed generation
    new: int = 0  # the file holds the generation being written
    leftovers: int = 0  # temporary files in the directory now
    violations: list[str] = field(default_factory=list)
    on_disk: int = 0  # the generation in the state file
    load_failures: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        clean = "yes" if self.kills and not self.load_failures else "NO"
        return (
            f"kills={self.kills} mid_write={self.mid_write} all_loads_clean={clean} "
            f"generations old={self.old} new={self.new} leftover_tmp={self.leftovers} "
            f"(complete={self.complete_leftovers}) last_generation={self.on_disk} "
            f"violations={len(self.violations)}"
        )


def _wait_generations(log: Path, proc: subprocess.Popen, count: int, timeout: float = 30.0) -> float | None:
    """Wait until the child has restored its pool and completed ``count`` more saves.

    Returns the child's own save cycle as seen (the time between the last two
    log lines), None when ``count`` is 0.
    """
    deadline = time.monotonic() + timeout
    seen = 0  # log lines: "ready", then one per completed save
    last = time.perf_counter()
    cycle = None
    while seen < count + 1:
        lines = log.read_text().count("\n")
        if lines > seen:
            now = time.perf_counter()
            if seen:
                cycle = (now - last) / (lines - seen)
            seen, last = lines, now
            continue
        if proc.poll() is not None:
            raise RuntimeError(f"the child exited with status {proc.returncode} before it was killed")
        if time.monotonic() > deadline:
            raise RuntimeError("the child is too slow")
        time.sleep(0.0005)
    return cycle


def _wait_for_new_temp(directory: Path, known: set[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with os.scandir(directory) as entries:
            if any(e.name.endswith(".tmp") and e.name not in known for e in entries):
                return True
    return False


def _sleep(seconds: float) -> None:
    """Sleep precisely for short delays (time.sleep overshoots by ~50-100 us)."""
    end = time.perf_counter() + seconds
    if seconds > 0.002:
        time.sleep(seconds - 0.001)
    while time.perf_counter() < end:
        pass


def kill_once(
    directory: Path,
    log: Path,
    sessions: int,
    timing: Timing,
    rng: random.Random,
    result: Result,
    stderr: Any = None,
    in_write_share: float = 2 / 3,
) -> bool:
    """Start a child, kill it, check what it left; False if the child died or hung on its own."""
    store = FileStore(directory)
    before = temp_files(directory)
    log.write_text("")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            str(directory),
            "--log",
            str(log),
            "--sessions",
            str(sessions),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        cycle = _wait_generations(log, proc, rng.randint(0, 2)) or timing.cycle
        if rng.random() >= in_write_share:  # anywhere in a save cycle
            _sleep(rng.uniform(0, cycle))
        elif _wait_for_new_temp(directory, before, timeout=20 * cycle + 1):  # within the write
            _sleep(rng.uniform(0, timing.window))
        os.kill(proc.pid, signal.SIGKILL)
    except RuntimeError as exc:  # the child could not restore the pool (see its stderr), or hung
        result.kills += 1
        result.load_failures += 1
        result.violations.append(f"kill {result.kills}: {exc}")
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    n = result.kills = result.kills + 1
    if proc.returncode != -signal.SIGKILL:
        result.violations.append(f"kill {n}: the child exited with status {proc.returncode}, not by SIGKILL")
        return False

    restored, completed = read_log(log)
    if restored != result.on_disk:
        result.violations.append(f"kill {n}: the child restored generation {restored}, not {result.on_disk}")
    after = temp_files(directory)
    new = after - before
    result.leftovers = len(after)
    if len(new) > 1:
        result.violations.append(f"kill {n}: {len(new)} new temporary files: {sorted(new)}")
    for name in new:
        result.mid_write += 1
        leftover = directory / name
        if stat.S_IMODE(leftover.stat().st_mode) != 0o600:
            result.violations.append(f"kill {n}: {name} has mode {stat.S_IMODE(leftover.stat().st_mode):o}")
        try:
            json.loads(leftover.read_bytes())
        except ValueError:
            pass  # killed during the write: a truncated file
        else:
            result.complete_leftovers += 1  # killed during the fsync, or before the rename
    if any(not name.startswith(".") or name.endswith(".json") for name in after):
        result.violations.append(f"kill {n}: a temporary file could pass for a state file: {sorted(after)}")
    path = store.path(KEY)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        raw = path.read_bytes()
        state = store.load(KEY)
        generation = check_state(state, sessions)
    except Exception as exc:  # any failure here is what this benchmark is after
        result.load_failures += 1
        result.violations.append(f"kill {n}: the state file does not load cleanly: {type(exc).__name__}: {exc}")
        return True
    if json.loads(raw) != state:
        result.violations.append(f"kill {n}: load() did not return the content of {path.name}")
    if mode != 0o600:
        result.violations.append(f"kill {n}: {path.name} has mode {mode:o}, not 600")
    if completed is None:
        result.violations.append(f"kill {n}: the child logged no generation, not even the one it restored")
    elif generation == completed:
        result.old += 1
    elif generation == completed + 1:
        result.new += 1
    else:
        result.violations.append(f"kill {n}: generation {generation} on disk, last completed {completed}")
    result.on_disk = generation
    return True


def run(
    kills: int,
    sessions: int = 3000,
    seed: int = 1,
    directory: Path | None = None,
    verbose: bool = False,
    in_write_share: float = 2 / 3,
    min_mid_write: int = 0,
    max_kills: int | None = None,
) -> tuple[Result, Timing]:
    """Kill ``kills`` children, or more until ``min_mid_write`` kills landed mid-write (``max_kills`` at most).

    The state lives in ``directory`` (a new temporary directory by default).
    ``in_write_share`` of the kills wait for a temporary file to appear.
    """
    rng = random.Random(seed)
    result = Result()
    with tempfile.TemporaryDirectory(prefix="bench-kill-") as scratch:
        directory = Path(directory or Path(scratch) / "store")
        directory.mkdir(parents=True, exist_ok=True)
        log = Path(scratch) / "generations.log"
        errors = Path(scratch) / "child.stderr"
        timing = measure(directory, sessions)
        with open(errors, "wb") as stderr:
            while result.kills < kills or (result.mid_write < min_mid_write and result.kills < (max_kills or kills)):
                if not kill_once(directory, log, sessions, timing, rng, result, stderr, in_write_share):
                    break
                if verbose:
                    print(
                        f"  kill {result.kills}: generation {result.on_disk}, {result.mid_write} mid-write so far",
                        file=sys.stderr,
                    )
        text = errors.read_text(errors="replace").strip()
        if text:
            result.violations.append(f"the children wrote to stderr: {text[-2000:]}")
    return result, timing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="the store directory (default: a temporary one)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.log, args.sessions)
        return 0
    started = time.perf_counter()
    result, timing = run(args.kills, args.sessions, args.seed, args.dir, args.verbose)
    print(
        f"{args.sessions} sessions, {timing.size / 1e6:.2f} MB a state; one save cycle {timing.cycle * 1e3:.1f} ms "
        f"(save {timing.save * 1e3:.1f} ms, temporary file present {timing.window * 1e3:.1f} ms)"
    )
    for violation in result.violations:
        print("VIOLATION:", violation)
    print(result.summary(), f"({time.perf_counter() - started:.1f} s)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
