"""Candle reads and writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from schemas.frames import UTC_TS
from store.db import transaction

CANDLE_COLUMNS = ["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"]


def upsert_candles(con: duckdb.DuckDBPyConnection, candles: pl.DataFrame) -> int:
    """Insert or replace candles by (symbol, timeframe, ts). Returns rows written.

    Duplicate keys inside one batch would win unpredictably in DuckDB, so the batch
    is deduplicated first (the last occurrence, the freshest fetch, wins).
    """
    if candles.is_empty():
        return 0
    batch = candles.select(CANDLE_COLUMNS).unique(
        subset=["symbol", "timeframe", "ts"], keep="last", maintain_order=True
    )
    # Registered outside the transaction: an unregister inside an aborted one would raise
    # and hide the real error.
    con.register("candle_batch", batch.to_arrow())
    try:
        with transaction(con):
            con.execute(
                "INSERT OR REPLACE INTO candles "
                "SELECT symbol, timeframe, ts, open, high, low, close, volume FROM candle_batch"
            )
    finally:
        con.unregister("candle_batch")
    return batch.height


def last_candle_times(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], datetime]:
    """The newest stored candle per (symbol, timeframe)."""
    rows = con.execute("SELECT symbol, timeframe, max(ts) FROM candles GROUP BY ALL").fetchall()
    return {(symbol, tf): ts for symbol, tf, ts in rows}


def read_candles(
    con: duckdb.DuckDBPyConnection,
    symbols: list[str] | None = None,
    since: datetime | None = None,
) -> pl.DataFrame:
    """Stored candles (optionally for some symbols, from `since`), sorted, Candles-shaped."""
    clauses, params = [], []
    if symbols is not None:
        clauses.append("list_contains(?, symbol)")
        params.append(symbols)
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    frame = con.sql(
        f"SELECT {', '.join(CANDLE_COLUMNS)} FROM candles {where} ORDER BY symbol, timeframe, ts",
        params=params,
    ).pl()
    return frame.with_columns(pl.col("ts").cast(UTC_TS))


def stored_gaps(
    con: duckdb.DuckDBPyConnection, step_seconds: dict[str, int], since: datetime
) -> pl.DataFrame:
    """Holes inside the stored series since `since`: (symbol, timeframe, gap_start, gap_end)."""
    steps = pl.DataFrame({"timeframe": list(step_seconds), "step_s": list(step_seconds.values())})
    con.register("tf_steps", steps.to_arrow())
    try:
        frame = con.sql(
            """
            WITH ordered AS (
                SELECT c.symbol, c.timeframe, c.ts, s.step_s,
                       lead(c.ts) OVER (PARTITION BY c.symbol, c.timeframe ORDER BY c.ts) AS nxt
                FROM candles c JOIN tf_steps s USING (timeframe)
                WHERE c.ts >= ?
            )
            SELECT symbol, timeframe,
                   ts + to_seconds(step_s) AS gap_start, nxt AS gap_end
            FROM ordered
            WHERE nxt IS NOT NULL AND epoch(nxt) - epoch(ts) > step_s
            ORDER BY symbol, timeframe, gap_start
            """,
            params=[since],
        ).pl()
    finally:
        con.unregister("tf_steps")
    return frame


@dataclass(frozen=True, slots=True)
class GapRecord:
    symbol: str
    timeframe: str
    gap_start: datetime
    gap_end: datetime
    attempted: bool
    filled: bool


def record_gaps(con: duckdb.DuckDBPyConnection, gaps: list[GapRecord], cycle_id: int) -> None:
    """Remember gaps and count fill attempts (a gap the venue never fills stops being asked)."""
    if not gaps:
        return
    with transaction(con):
        con.executemany(
            """
            INSERT INTO candle_gaps VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (symbol, timeframe, gap_start) DO UPDATE
            SET attempts = candle_gaps.attempts + excluded.attempts, filled = excluded.filled
            """,
            [
                [
                    g.symbol,
                    g.timeframe,
                    g.gap_start,
                    g.gap_end,
                    int(g.attempted),
                    g.filled,
                    cycle_id,
                ]
                for g in gaps
            ],
        )


def exhausted_gaps(
    con: duckdb.DuckDBPyConnection, max_attempts: int
) -> set[tuple[str, str, datetime]]:
    rows = con.execute(
        "SELECT symbol, timeframe, gap_start FROM candle_gaps WHERE NOT filled AND attempts >= ?",
        [max_attempts],
    ).fetchall()
    return {(s, tf, ts) for s, tf, ts in rows}


def read_candle_windows(
    con: duckdb.DuckDBPyConnection, symbols: list[str], since: dict[str, datetime]
) -> pl.DataFrame:
    """Candles of `symbols` with, per timeframe, ts >= since[timeframe]."""
    windows = pl.DataFrame({"timeframe": list(since), "since": list(since.values())})
    con.register("tf_windows", windows.to_arrow())
    try:
        frame = con.sql(
            "SELECT c.symbol, c.timeframe, c.ts, c.open, c.high, c.low, c.close, c.volume "
            "FROM candles c JOIN tf_windows w ON c.timeframe = w.timeframe AND c.ts >= w.since "
            "WHERE list_contains(?, c.symbol) ORDER BY c.symbol, c.timeframe, c.ts",
            params=[symbols],
        ).pl()
    finally:
        con.unregister("tf_windows")
    return frame.with_columns(pl.col("ts").cast(UTC_TS))
