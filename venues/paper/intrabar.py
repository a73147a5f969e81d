"""Lower-timeframe candles that decide the order of an ambiguous hourly bar.

An hourly bar says how high and how low the price went, not in which order. When a stop
and a take-profit of one market both lie inside it, the paper engine assumes the stop
filled first (venues/paper/engine.py). If the data folder holds finer candles of that
market ({BASE}USDT_15m / _5m / _1m.parquet, the columns of the _1h files), the driver
walks the finest of them through that hour instead (venues/paper/driver.py), so the
level the price reached first fills first. Without them, the stop still fills first.

A lower-timeframe file that cannot be read, lacks a column, holds NaN, nulls, prices that
are not positive or times out of order is refused with the file's name and the fix; that
market is left out of the run (like a bad _1h file, see venues/replay.read_folder), the
others proceed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

log = logging.getLogger("smc_trader.paper")

LOWER_TIMEFRAMES = {  # finest first: the finest file present is the one used
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
}
COLUMNS = ("ts", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


class LowerTimeframeError(ValueError):
    """A lower-timeframe file that cannot order an hour: the message names the file."""


@dataclass(frozen=True)
class SubBars:
    """One market's lower-timeframe candles, as arrays (the driver asks for a few rows)."""

    timeframe: str
    path: Path
    step: timedelta
    ts_us: np.ndarray  # open times, epoch microseconds, strictly increasing
    ohlcv: np.ndarray  # shape (n, 5): open, high, low, close, volume

    def within(
        self, start: datetime, end: datetime
    ) -> list[tuple[datetime, float, float, float, float, float]]:
        """(close time, open, high, low, close, volume) of the candles inside [start, end)."""
        lo = int(np.searchsorted(self.ts_us, (start - EPOCH) // US, side="left"))
        hi = int(np.searchsorted(self.ts_us, (end - self.step - EPOCH) // US, side="right"))
        return [
            (EPOCH + int(self.ts_us[i]) * US + self.step, *map(float, self.ohlcv[i]))
            for i in range(lo, hi)
        ]


@dataclass(frozen=True)
class LowerTimeframes:
    """The finest lower-timeframe candles of each market that has them (feed symbol keys)."""

    markets: Mapping[str, SubBars]

    def used(self) -> dict[str, str]:
        """Per market, the file that orders its ambiguous bars (for the run's notes)."""
        return {s: b.path.name for s, b in self.markets.items()}


def read_sub_bars(path: Path, timeframe: str) -> SubBars:
    """One lower-timeframe file, checked. Raises LowerTimeframeError naming the file."""
    fix = f"write {', '.join(COLUMNS)} like the _1h files (ts ascending, no gaps in values)"
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:  # unreadable: the same refusal
        raise LowerTimeframeError(f"{path}: cannot be read ({exc}); {fix}") from exc
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise LowerTimeframeError(f"{path}: missing column(s) {', '.join(missing)}; {fix}")
    if not isinstance(frame.schema["ts"], pl.Datetime):
        raise LowerTimeframeError(f"{path}: ts is {frame.schema['ts']}, not a datetime; {fix}")
    try:
        values = frame.select(pl.col(c).cast(pl.Float64) for c in COLUMNS[1:])
    except pl.exceptions.PolarsError as exc:
        raise LowerTimeframeError(f"{path}: non-numeric prices or volume ({exc}); {fix}") from exc
    bad = values.select(
        (pl.col(c).is_null() | pl.col(c).is_nan()).sum().alias(c) for c in COLUMNS[1:]
    ).row(0, named=True)
    bad = {c: n for c, n in bad.items() if n}
    if bad or frame["ts"].null_count():
        said = ", ".join(f"{n} in {c}" for c, n in bad.items()) or "null times"
        raise LowerTimeframeError(f"{path}: NaN or null values ({said}); {fix}")
    if values.select(pl.min_horizontal(*PRICES).min()).item() <= 0:
        raise LowerTimeframeError(f"{path}: prices must be positive; {fix}")
    inverted = values.filter(
        (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("high") < pl.max_horizontal("open", "close"))
    ).height
    if inverted:
        raise LowerTimeframeError(
            f"{path}: {inverted} candle(s) whose low/high do not enclose open and close; {fix}"
        )
    ts_us = frame["ts"].dt.epoch("us").to_numpy()  # a naive ts is read as UTC
    if len(ts_us) > 1 and not bool(np.all(np.diff(ts_us) > 0)):
        raise LowerTimeframeError(f"{path}: times are not strictly ascending (duplicates or "
                                  f"out of order); {fix}")
    return SubBars(timeframe, path, LOWER_TIMEFRAMES[timeframe], ts_us, values.to_numpy())


def read_lower_timeframes(
    data_dir: Path, bases: Mapping[str, str]
) -> tuple[LowerTimeframes, dict[str, str]]:
    """The finest {BASE}USDT_{1m,5m,15m}.parquet of each market (bases: feed symbol -> base).

    Returns the candles found and, per market whose finest file is unusable, the problem
    (that market is to be left out; a coarser file is not silently used instead)."""
    found: dict[str, SubBars] = {}
    problems: dict[str, str] = {}
    for symbol, base in bases.items():
        for timeframe in LOWER_TIMEFRAMES:
            path = data_dir / f"{base}USDT_{timeframe}.parquet"
            if not path.exists():
                continue
            try:
                found[symbol] = read_sub_bars(path, timeframe)
            except LowerTimeframeError as exc:
                problems[symbol] = str(exc)
                log.warning("LOWER_TIMEFRAME_PROBLEM %s: %s; market left out", base, exc)
            break
    return LowerTimeframes(found), problems
