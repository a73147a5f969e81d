"""Cycle records, market registry snapshots and per-market errors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from store.db import one, transaction

CYCLE_FIELDS = (
    "flow_run_id",
    "finished_at",
    "duration_s",
    "markets_total",
    "tradeable_markets",
    "coins_processed",
    "candles_upserted",
    "signals",
    "candidates",
    "winners_selected",
    "intents",
    "orders_placed",
    "orders_cancelled",
    "open_positions",
    "unprotected_positions",
    "equity",
    "margin_utilization",
    "system_state",
    "market_errors",
    "failed_stages",
    "summary",
)


def start_cycle(
    con: duckdb.DuckDBPyConnection, venue: str, clock_ts: datetime, started_at: datetime
) -> int:
    """Open a cycle row and return its id (one more than the last)."""
    with transaction(con):
        row = one(con.execute("SELECT coalesce(max(cycle_id), 0) + 1 FROM cycles"))
        cycle_id = int(row[0]) if row else 1
        con.execute(
            "INSERT INTO cycles (cycle_id, venue, clock_ts, started_at) VALUES (?, ?, ?, ?)",
            [cycle_id, venue, clock_ts, started_at],
        )
    return cycle_id


def finish_cycle(con: duckdb.DuckDBPyConnection, cycle_id: int, values: Mapping[str, Any]) -> None:
    unknown = set(values) - set(CYCLE_FIELDS)
    if unknown:
        raise ValueError(f"unknown cycle fields {sorted(unknown)}; known: {CYCLE_FIELDS}")
    columns = [c for c in CYCLE_FIELDS if c in values]
    assignments = ", ".join(f"{c} = ?" for c in columns)
    with transaction(con):
        con.execute(
            f"UPDATE cycles SET {assignments} WHERE cycle_id = ?",
            [values[c] for c in columns] + [cycle_id],
        )


def last_clock_ts(con: duckdb.DuckDBPyConnection, venue: str) -> datetime | None:
    """Clock time of the last finished cycle on this venue (to resume a simulated clock)."""
    row = one(con.execute(
        "SELECT max(clock_ts) FROM cycles WHERE venue = ? AND finished_at IS NOT NULL", [venue]
    ))
    return row[0] if row else None


def save_markets(
    con: duckdb.DuckDBPyConnection, markets: pl.DataFrame, venue: str, cycle_id: int, ts: datetime
) -> None:
    """Replace the registry snapshot for this venue with this cycle's view."""
    frame = markets.with_columns(
        pl.lit(venue).alias("venue"),
        pl.lit(cycle_id).cast(pl.Int64).alias("cycle_id"),
        pl.lit(ts).alias("updated_at"),
    )
    columns = [c[0] for c in con.execute("DESCRIBE markets").fetchall()]
    con.register("market_batch", frame.select(columns).to_arrow())
    try:
        with transaction(con):
            con.execute("DELETE FROM markets WHERE venue = ?", [venue])
            con.execute("INSERT INTO markets SELECT * FROM market_batch")
    finally:
        con.unregister("market_batch")


def record_market_errors(
    con: duckdb.DuckDBPyConnection,
    cycle_id: int,
    stage: str,
    errors: Mapping[str, str],
    ts: datetime,
) -> None:
    if not errors:
        return
    with transaction(con):
        con.executemany(
            "INSERT INTO market_errors VALUES (?, ?, ?, ?, ?)",
            [[cycle_id, symbol, stage, message, ts] for symbol, message in errors.items()],
        )


def last_markets(con: duckdb.DuckDBPyConnection, venue: str) -> pl.DataFrame | None:
    """The registry snapshot the last cycle saved for this venue (None before the first):
    what a cycle whose market discovery failed still manages its positions with."""
    frame = con.sql(
        "SELECT * EXCLUDE (venue, cycle_id, updated_at) FROM markets WHERE venue = ? "
        "ORDER BY symbol",
        params=[venue],
    ).pl()
    return frame if frame.height else None


def cycles_since_clear(con: duckdb.DuckDBPyConnection, venue: str) -> list[tuple[Any, ...]]:
    """(cycle_id, system_state, unprotected_positions) of the finished cycles of `venue`,
    newest first, back to the last one that ended NORMAL with no unprotected position
    (included): every alert streak lies within them."""
    return con.execute(
        """
        SELECT cycle_id, system_state, coalesce(unprotected_positions, 0) FROM cycles
        WHERE venue = ? AND finished_at IS NOT NULL AND cycle_id >= coalesce((
            SELECT max(cycle_id) FROM cycles WHERE venue = ? AND finished_at IS NOT NULL
            AND system_state = 'NORMAL' AND coalesce(unprotected_positions, 0) = 0), 0)
        ORDER BY cycle_id DESC
        """,
        [venue, venue],
    ).fetchall()
