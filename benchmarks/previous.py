"""The package as it was at an earlier commit, for benchmarks that run it beside the current code."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def extract(ref: str, target: Path) -> None:
    """Write ``scrapy_sessionpool`` at git ``ref`` under ``target`` (``git archive``); SystemExit if git refuses."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "scrapy_sessionpool"], capture_output=True, check=False
    )
    if archive.returncode:
        raise SystemExit(f"--previous {ref}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
