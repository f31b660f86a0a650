"""The example project: the demo end to end (twice: the second run resumes), and the account spider."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.example import EXAMPLE, imported


@pytest.fixture(scope="module")
def demo() -> Iterator[ModuleType]:
    """The example project's ``demo.shop``, importable for this module's tests only."""
    with imported("demo.shop") as module:
        yield module


def run_demo(state: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "run_demo.py"), "--state", str(state), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return result.stdout


def obtained(output: str, column: int = 0) -> tuple[int, int]:
    line = next(ln for ln in output.splitlines() if ln.startswith("items obtained"))
    found = re.findall(r"(\d+) / (\d+)", line)[column]
    return int(found[0]), int(found[1])


def test_the_demo_wins_against_blocking_and_resumes_its_pool(tmp_path):
    first = run_demo(tmp_path, "--items", "120")
    got, total = obtained(first)
    assert total == 120 and got >= 0.99 * total
    plain, _ = obtained(first, 1)
    assert plain < got  # the same crawl without the pool, side by side
    assert "Run the demo again" in first
    assert (tmp_path / "sessionpool" / "catalogue.json").exists()
    wanted = r"^(items with member prices|logins|pages asked before a login)\s+(\d+)$"
    signed_in = dict(re.findall(wanted, first, re.MULTILINE))
    assert signed_in["items with member prices"] == "24"  # every item of the category, at the member price
    assert 1 <= int(signed_in["logins"]) <= 6 and signed_in["pages asked before a login"] == "0"
    assert "demo-password" not in (tmp_path / "signed-in.log").read_text()

    second = run_demo(tmp_path, "--items", "120", "--no-compare", "--no-accounts")
    got, total = obtained(second)
    assert got >= 0.99 * total
    assert re.search(r"This run resumed the pool saved by the previous one \((\d+) sessions restored", second)
    stats = json.loads((tmp_path / "stats-with-pool.json").read_text())
    assert stats["sessionpool/restored"] >= 1


def test_the_account_spider_signs_each_session_in_with_its_own_account(demo, tmp_path):
    accounts = {f"customer{i}": f"pw-{i}-secret" for i in range(3)}
    accounts_file = tmp_path / "accounts.jsonl"
    accounts_file.write_text("".join(json.dumps({"username": u, "password": p}) + "\n" for u, p in accounts.items()))
    with demo.DemoShop(
        items=40, seed=3, rate_limit=None, exit_block_after=None, flagged=0.0, accounts=accounts
    ) as shop:
        out = tmp_path / "items.jsonl"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "scrapy",
                "crawl",
                "account",
                "-a",
                f"site={shop.url}",
                "-a",
                "category=books",
                "-O",
                str(out),
                "-s",
                f"SESSIONPOOL_PERSIST_STATE_STORE={tmp_path / 'pool'}",
                "-s",
                f"SESSIONPOOL_ACCOUNTS={accounts_file}",
                "-s",
                "LOG_LEVEL=INFO",
            ],
            cwd=EXAMPLE,
            check=True,
            timeout=120,
            capture_output=True,
            text=True,
        )
        items = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(items) == 8 and {i["number"] % 5 for i in items} == {1}  # every book (items 1, 6, 11, ...)
        assert all(i["member_price"] for i in items)  # fetched signed in
        served = shop.summary()
        assert 1 <= served["logins"] <= len(accounts)
        assert served["requests_before_login"] == 0 and served["kicked"] == 0
        saved = json.loads((tmp_path / "pool" / "account.account.json").read_text())
        assert all(s["initialized"] and s["account"] in accounts for s in saved["sessions"])
        assert any("warmed_up_at" in s["user_data"] for s in saved["sessions"])
    for secret in accounts.values():
        assert secret not in result.stdout + result.stderr
        assert secret not in json.dumps(saved)


def test_two_scrapy_redis_workers_crawl_the_demo_shop_together(own_redis, tmp_path):
    command = [sys.executable, str(EXAMPLE / "run_workers.py"), "--items", "60", "--redis", own_redis.url]
    result = subprocess.run(
        [*command, "--state", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.strip()}
    assert rows["items"][-3:] == ["60", "/", "60"]  # all workers together: every item, none twice
    assert sum(int(n) for n in rows["items"][:2]) == 60  # (how they share it: tests/test_crawl_distributed.py)


def test_the_browser_demo_passes_the_shop_challenge_in_a_browser_and_crawls_over_http(tmp_path):
    pytest.importorskip("scrapy_playwright", reason="scrapy-playwright is not installed (the browser extra)")
    if shutil.which("chromium") is None:
        reason = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "run_browser.py"), "--items", "40", "--state", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    got, total = obtained(result.stdout)
    plain, _ = obtained(result.stdout, 1)
    assert (got, total, plain) == (40, 40, 0)
    renders = int(re.search(r"^browser renders\s+(\d+)", result.stdout, re.MULTILINE)[1])
    sessions = int(re.search(r"^sessions created\s+(\d+)", result.stdout, re.MULTILINE)[1])
    assert 1 <= renders <= sessions  # one render per session life at most
