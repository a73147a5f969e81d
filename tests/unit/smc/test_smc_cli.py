"""`trader features` and `trader signals` as a trader runs them, good files and bad."""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl
import pytest

from core.errors import DataError
from schemas.smc import Features, GateTrace, SmcSignals
from trader.smc_commands import register, trace_path


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="trader")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def data_dir(real_data_dir: Path, tmp_path: Path) -> Path:
    """Two real markets, trimmed, in a scratch folder (never in the repository)."""
    folder = tmp_path / "candles"
    folder.mkdir()
    for symbol in ("BTCUSDT", "SPACEUSDT"):
        for tf in ("1h", "1d"):
            frame = pl.read_parquet(real_data_dir / f"{symbol}_{tf}.parquet")
            frame.tail(3000 if tf == "1h" else 300).write_parquet(folder / f"{symbol}_{tf}.parquet")
    return folder


def test_features_writes_one_row_per_bar(real_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "btc_features.parquet"
    assert (
        run(
            "features",
            str(real_data_dir / "BTCUSDT_1d.parquet"),
            "--timeframe",
            "1d",
            "-o",
            str(out),
        )
        == 0
    )
    features = pl.read_parquet(out)
    Features.validate(features)
    assert features.height == pl.read_parquet(real_data_dir / "BTCUSDT_1d.parquet").height


def test_signals_writes_signals_and_the_gate_trace_beside_them(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scan.parquet"
    code = run(
        "signals",
        "--data-dir",
        str(data_dir),
        "--from",
        "2026-02-01",
        "--to",
        "2026-02-02T00:00",
        "-o",
        str(out),
    )
    assert code == 0
    assert trace_path(out) == tmp_path / "scan.gate_trace.parquet"
    trace = pl.read_parquet(trace_path(out))
    GateTrace.validate(trace)
    SmcSignals.validate(pl.read_parquet(out))
    assert trace.height == 2 * 25  # two markets x the 1h closes from 00:00 to 00:00 next day
    assert set(trace.filter(pl.col("symbol") == "SPACEUSDT")["reason"]) == {"INSUFFICIENT_HISTORY"}


def test_a_file_without_volume_is_refused_naming_the_file_and_the_column(tmp_path: Path) -> None:
    bad = tmp_path / "novolume.parquet"
    pl.DataFrame(
        {"ts": [1], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]}
    ).write_parquet(bad)
    with pytest.raises(DataError, match=r"novolume\.parquet: missing column\(s\) \['volume'\]"):
        run("features", str(bad), "--timeframe", "1h", "-o", str(tmp_path / "x.parquet"))


def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="not a readable parquet file"):
        run("features", str(bad), "--timeframe", "1h", "-o", str(tmp_path / "x.parquet"))


def test_an_hourly_file_without_its_daily_twin_is_refused(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "SPACEUSDT_1d.parquet").unlink()
    with pytest.raises(DataError, match=r"SPACEUSDT_1d\.parquet: missing"):
        run("signals", "--data-dir", str(data_dir), "-o", str(tmp_path / "s.parquet"))


def test_a_folder_without_candles_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no \*_1h.parquet files"):
        run("signals", "--data-dir", str(tmp_path), "-o", str(tmp_path / "s.parquet"))
