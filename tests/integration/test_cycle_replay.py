"""`trader cycle --venue replay` through Prefect: candles and cycle rows land in DuckDB."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName

from core.precision import is_multiple
from store.db import one
from trader.cli import main

pytestmark = pytest.mark.integration


async def _cycle_runs() -> list:
    async with get_client() as client:
        return await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["trading-cycle"]))
        )


def test_three_replay_cycles_store_candles_and_cycle_rows(
    prefect_server, real_data_dir, tmp_path, cli_logs
):
    db = tmp_path / "trading.duckdb"
    code = main(
        [
            "cycle",
            "--venue",
            "replay",
            "--data-dir",
            str(real_data_dir),
            "--db",
            str(db),
            "--cycles",
            "3",
        ]
    )
    assert code == 0
    ends = [line for line in cli_logs().splitlines() if " CYCLE_END " in line]
    assert len(ends) == 3

    # The service closed the file: another process-style read-only open works.
    con = duckdb.connect(str(db), read_only=True)
    try:
        cycles = con.execute(
            "SELECT cycle_id, clock_ts, coins_processed, flow_run_id FROM cycles "
            "WHERE finished_at IS NOT NULL ORDER BY cycle_id"
        ).fetchall()
        assert [c[0] for c in cycles] == [1, 2, 3]
        # The replay clock advanced one hour per cycle.
        assert (cycles[2][1] - cycles[0][1]).total_seconds() == 2 * 3600
        assert all(c[2] > 0 for c in cycles)
        per_tf = dict(con.execute("SELECT timeframe, count(*) FROM candles GROUP BY 1").fetchall())
        assert set(per_tf) == {"1h", "4h", "1d"}
        btc_1h_last = one(con.execute(
            "SELECT max(ts) FROM candles WHERE symbol = 'BTC/USD:USD' AND timeframe = '1h'"
        ))[0]
        # Only closed candles: the last 1h candle opened one hour before the last decision.
        assert (cycles[2][1] - btc_1h_last).total_seconds() == 3600
        # Issue 4: the replay's intents respect every gate.
        intents = con.sql(
            "SELECT i.*, m.lot_size FROM order_intents i JOIN markets m USING (symbol)"
        ).pl()
        approved = intents.filter(pl.col("status") == "approved")
        assert approved.height >= 1, "this replay window produces at least one approved intent"
        for row in approved.iter_rows(named=True):
            assert row["notional"] <= 0.25 * row["equity"] + 1e-9
            assert row["notional"] >= 10.0
            assert is_multiple(row["size"], row["lot_size"])
            below = row["stop"] < row["entry"]
            assert below if row["side"] == "long" else not below
        refused = intents.filter(pl.col("status") == "refused")
        assert refused["reason"].null_count() == 0
        # Issue 3: one gate-trace row per market per cycle, and the reasons are recorded.
        per_cycle = con.sql("SELECT cycle_id, count(*) AS n FROM gate_trace GROUP BY 1").pl()
        assert per_cycle["n"].to_list() == [12, 12, 12]
        reasons = {r[0] for r in con.execute("SELECT reason FROM why_no_trades").fetchall()}
        assert "4H_STRUCTURE_REQUIRED" in reasons or "entry not in OTE/Key Fib" in reasons
        # Issue 5: the position opened from the approved intent is protected at the venue.
        positions = con.sql("SELECT * FROM open_exposure").pl()
        assert positions.height >= 1
        assert positions["stop_order_id"].null_count() == 0
        assert one(con.execute(
            "SELECT count(*) FROM wal WHERE state NOT IN ('acknowledged', 'rejected')"
        ))[0] == 0
    finally:
        con.close()
    log = cli_logs()
    assert "Active Portfolio: 1 open" in log
    assert "SIGNAL BTC/USD:USD" in log

    import asyncio

    runs = asyncio.run(_cycle_runs())
    ours = {str(r.id) for r in runs if r.state and r.state.is_completed()}
    assert {c[3] for c in cycles} <= ours


def test_a_cycle_that_halts_completes_with_a_state_named_halted(
    prefect_server, real_data_dir, tmp_path, cli_logs
):
    db = tmp_path / "halt.duckdb"
    common = ["--venue", "replay", "--data-dir", str(real_data_dir), "--db", str(db)]
    assert main(["cycle", *common]) == 0
    assert main(["halt", "--db", str(db), "--reason", "integration test"]) == 0
    assert main(["cycle", *common]) == 0

    import asyncio

    runs = asyncio.run(_cycle_runs())
    con = duckdb.connect(str(db), read_only=True)
    try:
        last = con.execute(
            "SELECT flow_run_id, system_state, summary FROM cycles ORDER BY cycle_id DESC LIMIT 1"
        ).fetchall()[0]
    finally:
        con.close()
    assert last[1] == "HALTED"
    state = next(r.state for r in runs if str(r.id) == last[0])
    assert state.is_completed() and state.name == "Halted"
    assert "Kill switch active" in cli_logs()
