"""One engine for live and backtest: replay cycles (the flow's own wiring, each stage's plain
function, DuckDB store, the paper venue restored every cycle) and a backtest of the same
window and configuration make identical decisions: signals, intents, orders, fills and
equity to the cent.

The window holds several real markets (../shared/data/binance-usdm), one that lists
mid-window (RIVER, from 2025-10-17) and one with a 2-hour hole cut into a copy of its data.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.cycle import replay_cycles
from schemas.config import AppConfig
from tasks.backtest import BacktestRequest, run_backtest
from venues.factory import make_venue

pytestmark = [pytest.mark.integration, pytest.mark.realdata]

BASES = ("BTC", "ETH", "SOL", "XRP", "RIVER")
START = datetime(2025, 10, 14, tzinfo=UTC)
HOURS = 200
HOLE = (datetime(2025, 10, 15, 10, tzinfo=UTC), datetime(2025, 10, 15, 12, tzinfo=UTC))


def _data_with_a_hole(real: Path, to: Path) -> Path:
    to.mkdir()
    for base in BASES:
        for kind in ("1h", "1d", "funding"):
            shutil.copy(real / f"{base}USDT_{kind}.parquet", to / f"{base}USDT_{kind}.parquet")
    hourly = pl.read_parquet(to / "XRPUSDT_1h.parquet")
    kept = hourly.filter(~pl.col("ts").is_between(*HOLE, closed="left"))
    assert hourly.height - kept.height == 2
    kept.write_parquet(to / "XRPUSDT_1h.parquet")
    return to


def _config(data: Path, db: Path) -> AppConfig:
    return AppConfig.model_validate(
        {
            "venue": {"kind": "replay", "data_dir": str(data), "replay_start": START.isoformat()},
            "cycle": {"db_path": str(db)},
        }
    )


def _live(db: Path, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("SET TimeZone='UTC'")
        return con.sql(sql).pl()
    finally:
        con.close()


@pytest.fixture(scope="module")
def both(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("parity")
    data = _data_with_a_hole(real_data_dir, work / "data")
    db = work / "live.duckdb"
    config = _config(data, db)
    replay_cycles(config, make_venue(config.venue), HOURS)
    end = START + timedelta(hours=HOURS - 1)
    result = run_backtest(BacktestRequest(data, config, start=START, end=end))
    return db, result


def test_the_window_is_not_trivial(both):
    _, result = both
    assert result.intents.filter(pl.col("status") == "approved").height >= 3
    assert result.fills.height >= 6
    assert "RIVER/USD:USD" in set(result.decisions["symbol"])  # listed inside the window
    river = result.decisions.filter(pl.col("symbol") == "RIVER/USD:USD")
    assert river["ts"].min() > START


def test_same_signals(both):
    db, result = both
    cols = ["symbol", "ts", "side", "entry", "stop", "tp1", "tp2", "tp3", "score", "tier"]
    live = _live(db, f"SELECT {', '.join(cols)} FROM signals ORDER BY ts, symbol")
    ours = result.signals.select(cols).sort("ts", "symbol")
    assert live.height > 0
    assert live.equals(ours)


def test_same_intents(both):
    db, result = both
    cols = ["client_intent_id", "symbol", "side", "size", "notional", "status", "reason"]
    live = _live(db, f"SELECT {', '.join(cols)} FROM order_intents ORDER BY client_intent_id")
    assert live.equals(result.intents.select(cols).sort("client_intent_id"))


def test_same_orders(both):
    db, result = both
    cols = ["client_id", "action_type", "symbol", "side", "state", "payload"]
    live = _live(db, f"SELECT {', '.join(cols)} FROM wal WHERE client_id IS NOT NULL "
                 "ORDER BY client_id")
    ours = result.orders.filter(pl.col("client_id").is_not_null()).select(cols).sort("client_id")
    assert live.height > 0
    assert live.equals(ours)


def test_same_fills(both):
    db, result = both
    cols = ["fill_id", "ts", "symbol", "side", "size", "price", "fee", "position_id"]
    live = _live(db, f"SELECT {', '.join(cols)} FROM fills ORDER BY ts, fill_id")
    assert live.equals(result.fills.select(cols).sort("ts", "fill_id"))


def test_same_equity_to_the_cent_every_hour(both):
    db, result = both
    live = _live(db, "SELECT cycle_id, round(equity, 2) AS equity FROM equity_marks "
                 "ORDER BY cycle_id")
    ours = result.equity.select("cycle_id", pl.col("equity").round(2))
    assert live.height == HOURS
    assert live.equals(ours)
