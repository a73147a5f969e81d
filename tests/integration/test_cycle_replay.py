"""`trader cycle --venue replay` through Prefect: candles and cycle rows land in DuckDB."""

from __future__ import annotations

import duckdb
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName

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
        btc_1h_last = con.execute(
            "SELECT max(ts) FROM candles WHERE symbol = 'BTC/USD:USD' AND timeframe = '1h'"
        ).fetchone()[0]
        # Only closed candles: the last 1h candle opened one hour before the last decision.
        assert (cycles[2][1] - btc_1h_last).total_seconds() == 3600
    finally:
        con.close()

    import asyncio

    runs = asyncio.run(_cycle_runs())
    ours = {str(r.id) for r in runs if r.state and r.state.is_completed()}
    assert {c[3] for c in cycles} <= ours
