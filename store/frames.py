"""Append validated frames to tables by column name (extra frame columns are ignored)."""

from __future__ import annotations

import duckdb
import polars as pl

from store.db import transaction


def append_frame(
    con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, **constants: object
) -> int:
    """INSERT the frame's columns that the table has, plus constant columns (e.g. cycle_id)."""
    if frame.is_empty():
        return 0
    columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    batch = frame.with_columns(pl.lit(v).alias(k) for k, v in constants.items())
    batch = batch.select([c for c in columns if c in batch.columns])
    name = f"batch_{table}"
    con.register(name, batch.to_arrow())
    try:
        with transaction(con):
            con.execute(f"INSERT OR REPLACE INTO {table} BY NAME SELECT * FROM {name}")
    finally:
        con.unregister(name)
    return batch.height
