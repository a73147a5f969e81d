"""`trader features` and `trader signals`: the SMC engine on parquet files.

    trader features FILE.parquet --timeframe 1h -o OUT.parquet
        every SMC feature of one market's OHLCV file (columns ts, open, high,
        low, close, volume), one row per bar (schemas.smc.Features).

    trader signals --data-dir DIR [--from ISO] [--to ISO] -o OUT.parquet
        a bar-by-bar historical scan of every market in DIR ({SYMBOL}USDT_1h
        and _1d parquet files; 4h resampled from 1h as the replay venue does):
        one decision per market
        at every 1h close. Writes the signals to OUT.parquet and the gate trace
        (one row per market per decision) to OUT.gate_trace.parquet.

Bad inputs stop with a message naming the file, the problem and the fix, and
a non-zero exit status (DataError -> `trader: ...`, exit 1).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

import polars as pl

from core.errors import DataError
from core.smc import compute_features, scan_signals
from core.smc.inputs import checked_ohlcv
from core.smc.timeframes import TIMEFRAMES, TS_DTYPE, data_end, resample
from schemas.strategy import StrategyConfig
from tasks.settings import load_config
from trader.terminal import iso_time

HOURLY_SUFFIX = "_1h.parquet"
DAILY_SUFFIX = "_1d.parquet"


def read_ohlcv_parquet(path: Path) -> pl.DataFrame:
    """One market's checked candles from a parquet file; refuses (DataError naming the
    file) a missing or unreadable file and unusable candles."""
    if not path.is_file():
        raise DataError(str(path), "no such file: give the path of an OHLCV parquet file")
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        message = f"not a readable parquet file ({exc}): rewrite it as parquet"
        raise DataError(str(path), message) from exc
    return checked_ohlcv(frame, str(path))


def load_data_dir(folder: Path) -> pl.DataFrame:
    """Candles (symbol, timeframe, ts, OHLCV) of every {SYMBOL}_1h/_1d pair in `folder`.

    The symbol is the file name before `_1h`. Refuses a missing folder, a folder
    without hourly files, and an hourly file without its daily twin.
    """
    if not folder.is_dir():
        raise DataError(str(folder), "no such folder: pass --data-dir with the candle files")
    hourly = sorted(folder.glob("*" + HOURLY_SUFFIX))
    if not hourly:
        raise DataError(
            str(folder),
            f"no *{HOURLY_SUFFIX} files: the folder needs {{SYMBOL}}USDT_1h.parquet "
            "and {SYMBOL}USDT_1d.parquet per market",
        )
    pairs = []
    for path in hourly:
        symbol = path.name.removesuffix(HOURLY_SUFFIX)
        daily = path.with_name(symbol + DAILY_SUFFIX)
        if not daily.is_file():
            raise DataError(str(daily), f"missing: {path.name} needs its daily twin {daily.name}")
        pairs.append((symbol, read_ohlcv_parquet(path), read_ohlcv_parquet(daily)))
    # One horizon for every market, as the replay venue's clock: a 4h bucket counts once closed.
    end = max(data_end(h1) for _, h1, _ in pairs)
    parts = []
    for symbol, h1, d1 in pairs:
        frames = {"1h": h1, "4h": resample(h1, "4h", end), "1d": d1}
        parts += [
            f.select("ts", "open", "high", "low", "close", "volume").with_columns(
                symbol=pl.lit(symbol), timeframe=pl.lit(tf)
            )
            for tf, f in frames.items()
        ]
    return pl.concat(parts).select(
        "symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"
    )


def decision_times(
    candles: pl.DataFrame, start: datetime | None, end: datetime | None
) -> pl.Series:
    """Every 1h close in the data, within [start, end] when given."""
    closes = candles.filter(pl.col("timeframe") == "1h").select(
        (pl.col("ts") + TIMEFRAMES["1h"]).unique().sort().alias("ts")
    )
    if start is not None:
        closes = closes.filter(pl.col("ts") >= start)
    if end is not None:
        closes = closes.filter(pl.col("ts") <= end)
    return closes["ts"].cast(TS_DTYPE)


def trace_path(output: Path) -> Path:
    """OUT.parquet -> OUT.gate_trace.parquet (beside the signals)."""
    stem = output.name.removesuffix(".parquet")
    return output.with_name(stem + ".gate_trace.parquet")


def _strategy(args: argparse.Namespace) -> StrategyConfig:
    return load_config(args.config).strategy


def cmd_features(args: argparse.Namespace) -> int:
    frame = read_ohlcv_parquet(args.file)
    features = compute_features(frame, args.timeframe, _strategy(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    features.write_parquet(args.output)
    print(f"{args.output}: {features.height} bars x {features.width} columns ({args.timeframe})")
    return 0


def cmd_signals(args: argparse.Namespace) -> int:
    candles = load_data_dir(args.data_dir)
    times = decision_times(candles, args.start, args.end)
    if times.is_empty():
        raise DataError(str(args.data_dir), "no 1h close inside --from/--to: widen the range")
    signals, trace = scan_signals(candles, times, _strategy(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    signals.write_parquet(args.output)
    trace.write_parquet(trace_path(args.output))
    print(
        f"{args.output}: {signals.height} signals; {trace_path(args.output)}: {trace.height} "
        f"gate-trace rows ({trace['symbol'].n_unique()} markets x {len(times)} decisions, "
        f"{times.min():%Y-%m-%d %H:%M} .. {times.max():%Y-%m-%d %H:%M} UTC)"
    )
    reasons = trace.group_by("reason").len().sort("len", descending=True)
    for reason, count in reasons.iter_rows():
        print(f"  {reason or 'SIGNAL'}: {count}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `features` and `signals` to the trader CLI."""
    p = sub.add_parser("features", help="SMC features of one OHLCV parquet file")
    p.add_argument("file", type=Path, help="parquet with ts, open, high, low, close, volume")
    p.add_argument("--timeframe", required=True, choices=sorted(TIMEFRAMES))
    p.add_argument("-o", "--output", type=Path, required=True, help="features parquet to write")
    p.add_argument("--config", type=Path, default=None, help="config folder (default: configs)")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("signals", help="historical SMC scan of a folder of candle files")
    p.add_argument("--data-dir", type=Path, required=True, help="folder of {SYMBOL}_1h/_1d.parquet")
    p.add_argument("--from", dest="start", type=iso_time, default=None, help="first decision (UTC)")
    p.add_argument("--to", dest="end", type=iso_time, default=None, help="last decision (UTC)")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="signals parquet; the gate trace goes to OUT.gate_trace.parquet",
    )
    p.add_argument("--config", type=Path, default=None, help="config folder (default: configs)")
    p.set_defaults(func=cmd_signals)
