"""Bad input to a backtest: a clear error naming the input, the other markets proceed, and a
run that fails is marked failed, never left looking complete."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from flows.backtest import run_pipeline
from schemas.config import AppConfig
from tasks import backtest as bt
from tasks.backtest import BacktestRequest
from trader.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.realdata]

FROM = datetime(2025, 10, 14, tzinfo=UTC)
TO = datetime(2025, 10, 17, tzinfo=UTC)


@pytest.fixture(scope="module")
def folder(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BTC and ETH as they are; SOL with a NaN close; XRP without its daily file; DOGE with
    a candle given twice; BNB with a 6-hour hole."""
    to = tmp_path_factory.mktemp("bad-data")
    for base in ("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB"):
        for kind in ("1h", "1d", "funding"):
            shutil.copy(real_data_dir / f"{base}USDT_{kind}.parquet", to)
    sol = pl.read_parquet(to / "SOLUSDT_1h.parquet")
    sol.with_columns(
        pl.when(pl.int_range(pl.len()) == 100).then(float("nan")).otherwise("close").alias("close")
    ).write_parquet(to / "SOLUSDT_1h.parquet")
    (to / "XRPUSDT_1d.parquet").unlink()
    doge = pl.read_parquet(to / "DOGEUSDT_1h.parquet")
    pl.concat([doge, doge.slice(50, 1)]).write_parquet(to / "DOGEUSDT_1h.parquet")
    bnb = pl.read_parquet(to / "BNBUSDT_1h.parquet")
    bnb.filter(~pl.int_range(pl.len()).is_between(200, 205)).write_parquet(
        to / "BNBUSDT_1h.parquet"
    )
    return to


def _runs(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        sql = "SELECT run_id, status, error, market_errors FROM backtest_runs"
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_bad_markets_are_named_and_left_out_and_the_others_run(folder, tmp_path, capsys):
    db = tmp_path / "bt.duckdb"
    code = main(["backtest", "--data-dir", str(folder), "--from", "2025-10-14", "--to",
                 "2025-10-17", "--db", str(db)])
    assert code == 0
    ((_, status, error, problems),) = _runs(db)
    assert status == "complete" and error is None
    assert "SOLUSDT_1h.parquet" in problems and "NaN" in problems
    assert "DOGEUSDT_1h.parquet" in problems and "given twice" in problems
    assert "XRPUSDT_1d.parquet: daily candles resampled" in problems  # a note, XRP runs
    assert "BNB/USD:USD" in problems and "gap" in problems
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT DISTINCT symbol FROM backtest_gate_trace").fetchall()
    traded = {r[0] for r in rows}
    con.close()
    assert traded == {"BTC/USD:USD", "ETH/USD:USD", "XRP/USD:USD", "BNB/USD:USD"}


def test_an_unknown_market_name_is_refused_naming_it_and_the_known_ones(folder, tmp_path):
    with pytest.raises(ConfigError, match="--markets NOPE: not in the data folder; it has BNB"):
        bt.prepare(BacktestRequest(folder, AppConfig(), FROM, TO, ("BTC", "NOPE")))
    code = main(["backtest", "--data-dir", str(folder), "--markets", "BTC,NOPE",
                 "--db", str(tmp_path / "x.duckdb")])
    assert code == 2


def test_only_unusable_markets_asked_for_is_a_data_error_naming_the_file(folder):
    with pytest.raises(DataError, match=r"SOLUSDT_1h\.parquet"):
        bt.prepare(BacktestRequest(folder, AppConfig(), FROM, TO, ("SOL",)))


def test_from_after_the_data_ends_is_refused_naming_both_dates(folder, tmp_path):
    with pytest.raises(DataError, match="is after the data ends"):
        bt.prepare(BacktestRequest(folder, AppConfig(), datetime(2030, 1, 1, tzinfo=UTC)))
    assert not (tmp_path / "never.duckdb").exists()


def test_a_run_that_fails_is_marked_failed_with_the_error(folder, tmp_path, monkeypatch):
    db = tmp_path / "bt.duckdb"

    def breaks(*_args, **_kw):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr("flows.backtest.run_backtest", breaks)
    request = BacktestRequest(folder, AppConfig(), FROM, TO, ("BTC",))
    with pytest.raises(RuntimeError):
        run_pipeline(request, db)
    ((_, status, error, _),) = _runs(db)
    assert status == "failed" and "the disk went away" in error
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM backtest_trades").fetchall() == [(0,)]
    con.close()


def test_a_backtest_logs_beside_the_service_log_and_its_results_read_without_its_file(
    folder, tmp_path, monkeypatch, capsys
):
    """A backtest's DEGRADED or refusal lines must never appear in logs/trader.log (they
    would read as the live system's), and its store is queried through its read copy."""
    monkeypatch.setenv("SMC_TRADER_LOG_FILE", str(tmp_path / "logs" / "trader.log"))
    db = tmp_path / "results.duckdb"
    assert main(["backtest", "--data-dir", str(folder), "--from", "2025-10-14", "--to",
                 "2025-10-16", "--markets", "BTC,ETH", "--db", str(db)]) == 0
    captured = capsys.readouterr()
    assert "=== GATE FUNNEL" in captured.out
    assert "INFO" not in captured.err  # INFO lines go to the file only
    backtest_log = (tmp_path / "logs" / "backtest.log").read_text()
    assert "store migrated to version 7" in backtest_log
    service_log = tmp_path / "logs" / "trader.log"
    assert not service_log.exists() or "store migrated" not in service_log.read_text()
    lock = duckdb.connect(str(db))  # the writer's file is held: the read copy still answers
    try:
        assert main(["sql", "--db", str(db), "--csv", "-c",
                     "SELECT status, markets FROM backtest_runs"]) == 0
    finally:
        lock.close()
    out = capsys.readouterr().out
    assert "complete" in out and "BTC" in out
