"""Backtest runs in the store: a run is recorded RUNNING first, its results land in one
transaction with the move to COMPLETE, and a run that fails is marked FAILED with the
error. A half-written run never looks complete.

Tables: backtest_runs, backtest_trades, backtest_equity, and per decision
backtest_gate_trace, backtest_signals, backtest_intents, backtest_fills (the live tables'
columns plus run_id), so `why_no_trades`-style SQL works on a backtest
(`SELECT * FROM backtest_why_no_trades('RUN_ID')`).

Backtests keep their own file (BACKTEST_DB), never the trading store: a backtest must not
take the lock a scheduled cycle needs, nor lose its results to one. After each run the
file's read copy is published, so `trader sql --db data/backtests.duckdb` never holds the
file either.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from core.backtest_result import BacktestResult, BacktestRun, RunStatus
from store.db import transaction
from store.publish import PublishError, publish

log = logging.getLogger("smc_trader.backtest")
BACKTEST_DB = Path("data/backtests.duckdb")


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def start_run(con: duckdb.DuckDBPyConnection, run: BacktestRun, at: datetime) -> None:
    """Record a run as RUNNING before any work (a crash leaves it visibly unfinished)."""
    with transaction(con):
        con.execute(
            "INSERT INTO backtest_runs (run_id, config_hash, config, data_dir, data_start, "
            "data_end, markets, code_version, fill_model, initial_equity, status, "
            "market_errors, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run.run_id,
                run.config_hash,
                _json(run.config),
                run.data_dir,
                run.start,
                run.end,
                _json(list(run.markets)),
                run.code_version,
                _json(asdict(run.fill_model)),
                run.initial_equity,
                str(RunStatus.RUNNING),
                _json(run.market_errors),
                at,
            ],
        )


def fail_run(con: duckdb.DuckDBPyConnection, run_id: str, error: str, at: datetime) -> None:
    with transaction(con):
        con.execute(
            "UPDATE backtest_runs SET status = ?, error = ?, finished_at = ? WHERE run_id = ?",
            [str(RunStatus.FAILED), error, at, run_id],
        )


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, run_id: str) -> None:
    if frame.is_empty():
        return
    columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    batch = frame.with_columns(pl.lit(run_id).alias("run_id"))
    batch = batch.select([c for c in columns if c in batch.columns])
    name = f"batch_{table}"
    con.register(name, batch.to_arrow())
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {name}")
    finally:
        con.unregister(name)


def trades_frame(result: BacktestResult) -> pl.DataFrame:
    rows = [
        {
            "position_id": t.position_id,
            "symbol": t.symbol,
            "side": str(t.side),
            "entry_ts": t.entry_ts,
            "exit_ts": t.exit_ts,
            "entry_price": t.entry_price,
            "exit_price": t.exit_price,
            "size": t.size,
            "pnl": t.pnl,
            "fees": t.fees,
            "funding": t.funding,
            "risk": t.risk,
            "r_multiple": t.r_multiple,
            "exit_reason": str(t.exit_reason),
        }
        for t in result.trades
    ]
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows, schema_overrides={"r_multiple": pl.Float64})


def finish_run(con: duckdb.DuckDBPyConnection, result: BacktestResult, at: datetime) -> None:
    """Every result row and the move to COMPLETE, in one transaction."""
    run_id = result.run.run_id
    metrics = asdict(result.metrics)
    for table in ("by_market", "by_exit_reason", "by_month"):
        metrics[table] = [asdict(r) for r in getattr(result.metrics, table)]
    with transaction(con):
        _insert(con, "backtest_trades", trades_frame(result), run_id)
        _insert(con, "backtest_equity", result.equity, run_id)
        _insert(con, "backtest_gate_trace", result.decisions, run_id)
        _insert(con, "backtest_signals", result.signals, run_id)
        _insert(con, "backtest_intents", result.intents, run_id)
        _insert(con, "backtest_fills", result.fills, run_id)
        con.execute(
            "UPDATE backtest_runs SET status = ?, duration_s = ?, metrics = ?, finished_at = ? "
            "WHERE run_id = ?",
            [str(RunStatus.COMPLETE), result.run.duration_s, _json(metrics), at, run_id],
        )


def publish_results(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """Refresh the read copy of the backtest store behind `con`. A failure is logged, never
    raised: the results are stored, only readers keep the previous copy."""
    try:
        publish(con, db)
    except (PublishError, duckdb.Error, OSError) as exc:
        log.error("backtest read copy of %s not published (readers keep the previous one): %s",
                  db, exc)
