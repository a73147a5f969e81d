"""The DuckDB store: migrations, candle upserts, UTC timestamps, file locking, transactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from store.candles import last_candle_times, read_candles, upsert_candles
from store.cycles import finish_cycle, last_clock_ts, start_cycle
from store.db import StoreError, one, open_store, transaction
from store.migrations import MIGRATIONS

T0 = datetime(2025, 3, 1, tzinfo=UTC)
LATEST = max(m.version for m in MIGRATIONS)
EVERY_VERSION = [(m.version,) for m in MIGRATIONS]


def candles(symbol: str, closes: list[float], start: datetime = T0) -> pl.DataFrame:
    """Hourly candles, one per close, each a flat bar around its close."""
    n = len(closes)
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "timeframe": ["1h"] * n,
            "ts": [start + timedelta(hours=i) for i in range(n)],
            "open": closes,
            "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes],
            "close": closes,
            "volume": [10.0] * n,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


def stored_closes(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, datetime], float]:
    rows = con.execute("SELECT symbol, ts, close FROM candles").fetchall()
    return {(s, ts): c for s, ts, c in rows}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "trading.duckdb"


# --- migrations ---------------------------------------------------------------------


def test_a_fresh_file_is_created_with_its_folder_and_migrated_to_the_latest_version(
    db: Path,
) -> None:
    with open_store(db) as con:
        versions = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    assert db.exists()
    assert versions == EVERY_VERSION
    assert {"markets", "candles", "candle_gaps", "cycles", "market_errors"} <= tables


def test_opening_twice_applies_no_migration_again_and_keeps_the_data(db: Path) -> None:
    with open_store(db) as con:
        upsert_candles(con, candles("BTC/USD:USD", [100.0]))
    with open_store(db) as con:
        versions = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        count = one(con.execute("SELECT count(*) FROM candles"))
    assert versions == EVERY_VERSION
    assert count == (1,)


def test_a_database_from_a_newer_schema_is_refused_with_the_fix(db: Path) -> None:
    with open_store(db) as con:
        con.execute(
            "INSERT INTO schema_version (version, name) VALUES (?, 'from the future')", [LATEST + 1]
        )
    with pytest.raises(StoreError) as err, open_store(db):
        pass
    message = str(err.value)
    assert f"version {LATEST + 1}" in message
    assert "newer" in message
    assert "upgrade the code" in message


def test_reading_a_file_that_does_not_exist_says_to_run_a_cycle_first(db: Path) -> None:
    with pytest.raises(StoreError, match="does not exist yet"), open_store(db, read_only=True):
        pass
    assert not db.exists()


# --- candle upserts -------------------------------------------------------------------


def test_duplicate_keys_within_one_batch_keep_the_last_row(db: Path) -> None:
    batch = pl.concat([candles("BTC/USD:USD", [100.0, 101.0]), candles("BTC/USD:USD", [200.0])])
    with open_store(db) as con:
        written = upsert_candles(con, batch)
        stored = stored_closes(con)
    assert written == 2
    assert stored == {("BTC/USD:USD", T0): 200.0, ("BTC/USD:USD", T0 + timedelta(hours=1)): 101.0}


def test_an_upsert_replaces_a_stored_candle_with_the_same_key_and_keeps_the_others(
    db: Path,
) -> None:
    with open_store(db) as con:
        upsert_candles(con, candles("BTC/USD:USD", [100.0, 101.0, 102.0]))
        upsert_candles(con, candles("ETH/USD:USD", [3000.0]))
        upsert_candles(con, candles("BTC/USD:USD", [150.0], start=T0 + timedelta(hours=1)))
        stored = stored_closes(con)
    assert stored == {
        ("BTC/USD:USD", T0): 100.0,
        ("BTC/USD:USD", T0 + timedelta(hours=1)): 150.0,
        ("BTC/USD:USD", T0 + timedelta(hours=2)): 102.0,
        ("ETH/USD:USD", T0): 3000.0,
    }


def test_an_empty_batch_writes_nothing(db: Path) -> None:
    with open_store(db) as con:
        assert upsert_candles(con, candles("BTC/USD:USD", [])) == 0
        assert one(con.execute("SELECT count(*) FROM candles")) == (0,)


# --- timestamps -----------------------------------------------------------------------


def test_stored_times_come_back_as_the_same_utc_instants(db: Path) -> None:
    with open_store(db) as con:
        upsert_candles(con, candles("BTC/USD:USD", [100.0, 101.0]))
        cycle_id = start_cycle(con, "sim", T0, T0)
        finish_cycle(con, cycle_id, {"finished_at": T0 + timedelta(seconds=3)})
    with open_store(db) as con:
        last = last_candle_times(con)[("BTC/USD:USD", "1h")]
        clock = last_clock_ts(con, "sim")
    for value in (last, clock):
        assert value is not None
        assert value.utcoffset() == timedelta(0)
    assert last == T0 + timedelta(hours=1)
    assert clock == T0


def test_read_candles_returns_a_utc_candles_frame(db: Path) -> None:
    with open_store(db) as con:
        upsert_candles(con, candles("BTC/USD:USD", [100.0, 101.0]))
        upsert_candles(con, candles("ETH/USD:USD", [3000.0]))
        frame = read_candles(con, symbols=["BTC/USD:USD"], since=T0 + timedelta(hours=1))
    assert frame.schema["ts"] == pl.Datetime("us", "UTC")
    assert frame["ts"].to_list() == [T0 + timedelta(hours=1)]
    assert frame["close"].to_list() == [101.0]


# --- the file is not held open ----------------------------------------------------------


def test_another_process_can_read_the_file_once_the_store_block_closed(db: Path) -> None:
    with open_store(db) as con:
        upsert_candles(con, candles("BTC/USD:USD", [100.0]))
    reader = duckdb.connect(str(db), read_only=True)
    try:
        assert one(reader.execute("SELECT count(*) FROM candles")) == (1,)
    finally:
        reader.close()
    with open_store(db, read_only=True) as con:
        assert one(con.execute("SELECT count(*) FROM candles")) == (1,)


# --- transactions ---------------------------------------------------------------------


def test_a_failing_transaction_leaves_nothing_half_written(db: Path) -> None:
    with open_store(db) as con:
        upsert_candles(con, candles("BTC/USD:USD", [100.0]))
        with pytest.raises(RuntimeError, match="boom"), transaction(con):
            con.execute("DELETE FROM candles")
            con.execute(
                "INSERT INTO cycles (cycle_id, venue, clock_ts, started_at) "
                "VALUES (1, 'sim', ?, ?)",
                [T0, T0],
            )
            raise RuntimeError("boom")
        assert one(con.execute("SELECT count(*) FROM candles")) == (1,)
        assert one(con.execute("SELECT count(*) FROM cycles")) == (0,)


def broken_batch() -> pl.DataFrame:
    """Two candles, the second with a NULL open (refused by the table's NOT NULL)."""
    return candles("BTC/USD:USD", [500.0, 501.0]).with_columns(
        pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("open")).alias("open")
    )


def test_an_upsert_that_fails_midway_keeps_the_previous_candles(db: Path) -> None:
    with open_store(db) as con:
        upsert_candles(con, candles("BTC/USD:USD", [100.0, 101.0]))
        with pytest.raises(duckdb.Error):
            upsert_candles(con, broken_batch())
        # Neither row of the refused batch landed, not even the valid first one.
        assert stored_closes(con) == {
            ("BTC/USD:USD", T0): 100.0,
            ("BTC/USD:USD", T0 + timedelta(hours=1)): 101.0,
        }
        # The connection is usable afterwards: the failed transaction was rolled back.
        upsert_candles(con, candles("ETH/USD:USD", [3000.0]))
        assert one(con.execute("SELECT count(*) FROM candles")) == (3,)


def test_a_refused_upsert_reports_the_constraint_it_broke(db: Path) -> None:
    with open_store(db) as con, pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
        upsert_candles(con, broken_batch())
