"""Sweep runs and their results (migration 8). The sweep flow is the only writer.

A result is keyed by (config hash, data folder, markets, window start, window end, code
version): whichever sweep evaluated it, a later sweep over the same key reuses it, so a
rerun skips what is done and a killed sweep resumes where it stopped. Results arrive per
batch and are written in one transaction each, keys de-duplicated, existing keys kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from core.sweep_objective import WindowResult
from store.db import transaction


@dataclass(frozen=True, slots=True)
class DataKey:
    """What a result depends on besides its configuration and window."""

    data_dir: str
    markets: tuple[str, ...]  # base assets, sorted; empty = every market in the folder
    code_version: str

    @property
    def markets_text(self) -> str:
        return ",".join(self.markets) or "*"


@dataclass(frozen=True, slots=True)
class SweepRunRecord:
    sweep_id: str
    space_file: str
    space: dict[str, Any]
    data_start: datetime
    data_end: datetime
    folds: str
    search: str
    objective: str
    min_trades: int
    backtests: int


def start_sweep(
    con: duckdb.DuckDBPyConnection, run: SweepRunRecord, key: DataKey, at: datetime
) -> None:
    """Record the sweep RUNNING before any backtest (a crash leaves it visibly unfinished)."""
    with transaction(con):
        con.execute(
            "INSERT INTO sweep_runs (sweep_id, space_file, space, data_dir, markets, "
            "data_start, data_end, folds, search, objective, min_trades, code_version, "
            "status, backtests, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'RUNNING', ?, ?)",
            [
                run.sweep_id, run.space_file, json.dumps(run.space, default=str, sort_keys=True),
                key.data_dir, key.markets_text, run.data_start, run.data_end, run.folds,
                run.search, run.objective, run.min_trades, key.code_version, run.backtests, at,
            ],
        )


def finish_sweep(
    con: duckdb.DuckDBPyConnection,
    sweep_id: str,
    *,
    status: str,
    evaluated: int,
    reused: int,
    errors: dict[str, str],
    report: str | None,
    at: datetime,
) -> None:
    with transaction(con):
        con.execute(
            "UPDATE sweep_runs SET status = ?, evaluated = ?, reused = ?, errors = ?, "
            "report = ?, finished_at = ? WHERE sweep_id = ?",
            [status, evaluated, reused, json.dumps(errors, sort_keys=True), report, at, sweep_id],
        )


def done_results(
    con: duckdb.DuckDBPyConnection, key: DataKey, hashes: Iterable[str]
) -> dict[tuple[str, datetime, datetime], WindowResult]:
    """Every stored result for these configurations on this data and code, by window."""
    wanted = sorted(set(hashes))
    if not wanted:
        return {}
    rows = con.execute(
        "SELECT result FROM sweep_results WHERE data_dir = ? AND markets = ? "
        "AND code_version = ? AND list_contains(?, config_hash)",
        [key.data_dir, key.markets_text, key.code_version, wanted],
    ).fetchall()
    out = {}
    for (text,) in rows:
        result = WindowResult.from_json(json.loads(text))
        out[(result.config_hash, result.start, result.end)] = result
    return out


def store_results(
    con: duckdb.DuckDBPyConnection,
    sweep_id: str,
    key: DataKey,
    results: Sequence[WindowResult],
    configs: dict[str, dict[str, Any]],
    at: datetime,
) -> int:
    """Insert a batch's results in one transaction; a key already stored is kept as is.
    Returns the number of rows written."""
    unique = {(r.config_hash, r.start, r.end): r for r in results}
    if not unique:
        return 0
    before = _count(con)
    rows = [
        [
            r.config_hash, key.data_dir, key.markets_text, r.start, r.end, key.code_version,
            sweep_id, json.dumps(configs.get(r.config_hash, {}), sort_keys=True), r.trades,
            r.duration_s, json.dumps(r.to_json()), at,
        ]
        for r in unique.values()
    ]
    with transaction(con):
        con.executemany(
            "INSERT INTO sweep_results (config_hash, data_dir, markets, window_start, "
            "window_end, code_version, sweep_id, config, trades, duration_s, result, "
            "evaluated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            rows,
        )
    return _count(con) - before


def _count(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT count(*) FROM sweep_results").fetchone()
    return int(row[0]) if row else 0
