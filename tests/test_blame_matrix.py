"""The judge over the whole block matrix: simulated crawls (the pure core, simulated time) of 1,000
items against every (key, signal, trigger) cell of ``tests.support.blocking``."""

from __future__ import annotations

import pytest

from tests.support.blocking import MATRIX
from tests.support.sim import simulate

#: What every cell must reach with the defaults (the benchmark aims at 1.15 requests per item on
#: real crawls; the simulated site is harsher in a few cells: sessions bound to rotating IPs, caps
#: on new sessions).
MIN_SHARE = 0.99
MAX_PER_ITEM = 1.35


@pytest.mark.parametrize("cell", MATRIX, ids=[c.name for c in MATRIX])
def test_every_cell_gets_its_items_without_blaming_the_innocent(cell):
    result = simulate(cell)
    assert result.share >= MIN_SHARE, result
    assert result.per_item <= MAX_PER_ITEM, result
    assert result.innocent_retired == 0  # no session that worked and that the site never banned was retired
    assert result.banned_kept == 0  # no session the site banned is kept as if it were clean
    assert result.leaked == 0  # no block or challenge page reaches the spider
    assert not result.lost


@pytest.mark.parametrize("name", ["session/budget/429_retry_after", "exit/ip_rate/403", "site/site_rate/503"])
def test_blame_goes_where_the_block_is(name):
    result = simulate(name, items=3000)  # long enough for suspects to be tested after their Retry-After
    blame = {k: result.stats.get(f"blame/{k}", 0) for k in ("session", "exit", "site")}
    key = name.split("/")[0]
    if key == "session":  # a per-cookie limiter that never forgives: its sessions are retired, no exit is
        assert blame["session"] >= 0.8 * result.site["session_bans"] and result.site["session_bans"] >= blame["session"]
        assert blame["exit"] + blame["site"] <= 5  # a few bans at the same moment look like an exit event, no more
    else:  # nobody is retired for an IP or a site that throttles
        assert blame["session"] == 0 and blame["exit"] + blame["site"] >= 1


def test_a_simulation_repeats_exactly():
    first, second = simulate("exit/ip_rate/403"), simulate("exit/ip_rate/403")
    assert (first.requests, first.seconds, first.stats) == (second.requests, second.seconds, second.stats)
