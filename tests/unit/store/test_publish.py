"""The read copy (store/publish.py): same tables and views as the store, published
atomically, only changed parts rewritten, readable by a held connection and by the PyPI
`duckdb` shell, and the README's SQL runs on it as written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

import store.publish as publish_module
from store.candles import upsert_candles
from store.cycles import finish_cycle, start_cycle
from store.db import connect_store
from store.publish import PublishError, connect_read_copy, publish, read_copy_of

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def candles(symbol: str, closes: list[float], start: datetime = T0) -> pl.DataFrame:
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


def readme_sql() -> list[str]:
    """Every statement of the README's SQL examples block, as written there."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no ```sql block of examples"
    return [s.query for block in blocks for s in duckdb.extract_statements(block)]


def catalog(con: duckdb.DuckDBPyConnection) -> tuple[set[str], set[str], set[str]]:
    """(tables, views, macros) a reader of this connection can query, by name."""
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()}
    views = {r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal "
        "AND database_name = current_database()"
    ).fetchall()}
    macros = {r[0] for r in con.execute(
        "SELECT function_name FROM duckdb_functions() WHERE NOT internal "
        "AND function_type = 'table_macro' AND database_name = current_database()"
    ).fetchall()}
    return tables, views, macros


@pytest.fixture
def store(tmp_path: Path):
    """A migrated store with two finished cycles and a month of candles."""
    db = tmp_path / "data" / "trading.duckdb"
    con = connect_store(db)
    con.execute("SET TimeZone='UTC'")
    upsert_candles(con, candles("BTC/USD:USD", [100.0 + i for i in range(24 * 40)]))
    for i in range(2):
        cycle = start_cycle(con, "sim", T0 + timedelta(hours=i), datetime.now(UTC))
        finish_cycle(con, cycle, {"finished_at": datetime.now(UTC), "system_state": "NORMAL"})
    yield db, con
    con.close()


def test_the_read_copy_has_every_table_view_and_macro_of_the_store_with_the_same_rows(store):
    db, con = store
    done = publish(con, db)
    assert (done.generation, done.cycle_id) == (1, 2)
    tables, views, macros = catalog(con)
    reader = connect_read_copy(db)
    try:
        r_tables, r_views, r_macros = catalog(reader)
        # every table of the store is a view over parquet in the read copy
        assert r_tables == set()
        assert r_views == tables | views
        assert r_macros == macros == {"why_no_trades_last", "backtest_why_no_trades"}
        for table in sorted(tables):
            query = f'SELECT count(*) FROM "{table}"'
            assert reader.execute(query).fetchall() == con.execute(query).fetchall(), table
        assert reader.execute("SELECT typeof(ts) FROM candles LIMIT 1").fetchall() == [
            ("TIMESTAMP WITH TIME ZONE",)
        ]
    finally:
        reader.close()


def test_the_readme_sql_examples_run_on_the_read_copy_as_written(store):
    db, con = store
    publish(con, db)
    reader = connect_read_copy(db)
    try:
        statements = readme_sql()
        assert len(statements) >= 6
        for statement in statements:
            reader.execute(statement).fetchall()
    finally:
        reader.close()


def test_a_republication_rewrites_only_the_parts_that_changed(store):
    db, con = store
    first = publish(con, db)
    again = publish(con, db)
    assert first.parts_written > 0 and first.parts_linked == 0
    assert (again.parts_written, again.bytes_written) == (0, 0)
    assert again.parts_linked == first.parts_written
    # one more hourly candle: only the newest day's part of the candles is rewritten
    last = T0 + timedelta(hours=24 * 40)
    upsert_candles(con, candles("BTC/USD:USD", [999.0], start=last))
    third = publish(con, db)
    manifest = json.loads((read_copy_of(db).current / "manifest.json").read_text())
    assert third.parts_written == 1
    assert f"d{last:%Y-%m-%d}" in manifest["tables"]["candles"]["parts"]
    assert not third.views_rewritten


def test_old_generations_are_pruned_and_the_current_link_names_the_newest(store):
    db, con = store
    for _ in range(5):
        last = publish(con, db)
    copy = read_copy_of(db)
    generations = sorted(p.name for p in copy.root.glob("g*"))
    assert generations == [f"g{n:08d}" for n in (3, 4, 5)]
    assert copy.current.resolve().name == f"g{last.generation:08d}"


def test_a_failed_publication_leaves_the_previous_one_whole_and_no_scraps(store, monkeypatch):
    db, con = store
    publish(con, db)
    con.execute("INSERT INTO kv VALUES ('k', 'v')")
    real = publish_module._copy_part

    def fail_on_kv(con, table, part, dest):
        if table == "kv":
            raise PublishError("disk full (simulated)")
        real(con, table, part, dest)

    monkeypatch.setattr(publish_module, "_copy_part", fail_on_kv)
    with pytest.raises(PublishError, match="simulated"):
        publish(con, db)
    copy = read_copy_of(db)
    assert copy.current.resolve().name == "g00000001"
    assert not list(copy.root.glob(".tmp-*"))
    reader = connect_read_copy(db)
    try:
        assert reader.execute("SELECT count(*) FROM kv WHERE key = 'k'").fetchall() == [(0,)]
    finally:
        reader.close()


def test_a_held_connection_sees_each_new_publication_at_its_next_query(store):
    db, con = store
    publish(con, db)
    reader = connect_read_copy(db)
    try:
        assert reader.execute("SELECT max(cycle_id) FROM cycles").fetchall() == [(2,)]
        cycle = start_cycle(con, "sim", T0 + timedelta(hours=5), datetime.now(UTC))
        publish(con, db)
        assert reader.execute("SELECT max(cycle_id) FROM cycles").fetchall() == [(cycle,)]
    finally:
        reader.close()


READER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    seen, errors = [], 0
    for _ in range(int(sys.argv[2])):
        try:
            seen.append(con.execute("SELECT count(*) FROM kv").fetchall()[0][0])
        except duckdb.Error as exc:
            errors += 1
            print(exc, file=sys.stderr)
    print(min(seen), max(seen), int(all(a <= b for a, b in zip(seen, seen[1:]))), errors)
    """
)


def test_a_reader_querying_during_publications_never_sees_a_half_written_one(store):
    db, con = store
    publish(con, db)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(read_copy_of(db).views_file), "400"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    written = 0
    while reader.poll() is None and written < 200:
        con.execute("INSERT INTO kv VALUES (?, 'v')", [f"key-{written}"])
        publish(con, db)
        written += 1
    out, err = reader.communicate(timeout=120)
    low, high, monotonic, errors = (int(v) for v in out.split())
    assert errors == 0, err
    assert monotonic == 1  # each query saw one whole publication, never an older one after
    assert high > low  # the reader really ran while publications happened
    assert written > 1


def test_the_pypi_duckdb_shell_opens_the_read_copy_and_runs_the_readme_sql(store):
    shell = shutil.which("duckdb", path=str(Path(sys.executable).parent))
    if shell is None:
        pytest.skip("no duckdb shell in the venv (the duckdb-cli package): make install")
    db, con = store
    publish(con, db)
    views = str(read_copy_of(db).views_file)
    for statement in readme_sql():
        result = subprocess.run(
            [shell, "-readonly", views, "-c", statement], capture_output=True, text=True
        )
        assert result.returncode == 0 and "Error" not in result.stderr, (statement, result.stderr)
    # the shell cannot open the 2.0 store itself: readers cannot take the writer's lock
    con.close()
    refused = subprocess.run([shell, "-readonly", str(db), "-c", "SELECT 1"],
                             capture_output=True, text=True)
    assert "newer version of DuckDB" in refused.stderr + refused.stdout
