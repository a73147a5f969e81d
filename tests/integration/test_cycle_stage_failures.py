"""A stage that fails never stops the safety stages: the invariant monitor and the kill switch
run every cycle on the latest known state, the run ends Failed after them, and
`trader cycle --cycles N` runs every cycle and reports the failed ones (issue 9, item 5)."""

from __future__ import annotations

import duckdb
import pytest

from core.errors import VenueError
from trader.cli import main

pytestmark = pytest.mark.integration


def _broken_tickers(self):  # a bad answer from the venue, not worth retrying
    raise VenueError("tickers: the venue answered a malformed document")


def test_a_failed_discovery_still_checks_invariants_and_runs_the_kill_switch_then_fails_the_run(
    prefect_server, tmp_path, monkeypatch, cli_logs, capsys
):
    db = tmp_path / "trading.duckdb"
    assert main(["cycle", "--db", str(db), "--cycles", "1"]) == 0  # a healthy first cycle
    assert main(["halt", "--db", str(db), "--reason", "operator test"]) == 0

    from venues.sim import SimVenue

    monkeypatch.setattr(SimVenue, "tickers", _broken_tickers)
    assert main(["cycle", "--db", str(db), "--cycles", "3"]) == 1
    err = capsys.readouterr().err
    assert "3 of 3 cycles failed" in err

    logs = cli_logs()
    assert logs.count("stage discover_markets failed") == 3
    assert logs.count(" CYCLE_END ") == 4  # every cycle summarised, failed or not
    assert "Kill switch active" in logs
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT cycle_id, system_state, failed_stages, open_positions FROM cycles "
            "ORDER BY cycle_id"
        ).fetchall()
        checked = con.execute("SELECT DISTINCT cycle_id FROM invariant_checks").fetchall()
    finally:
        con.close()
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert [r[1] for r in rows[1:]] == ["HALTED"] * 3
    assert [r[2] for r in rows] == [0, 1, 1, 1]
    # positions were still managed with the last known markets: reconcile ran every cycle
    assert all(r[3] is not None for r in rows)
    assert {c for (c,) in checked} == {1, 2, 3, 4}  # the monitor ran every cycle
