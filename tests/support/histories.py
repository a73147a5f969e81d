"""Synthetic market histories long enough for the daily 200-EMA, written as replay folders.

A day's `level` sets where that day's hourly closes hover; the hours zig-zag
around it (a 37-hour wave and seeded noise), so swings, breaks and a daily
bias that flips all occur. Everything is deterministic in the seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from core.smc import resample

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def hourly_history(
    first: datetime, levels: np.ndarray, *, seed: int = 0, missing: Iterable[datetime] = ()
) -> pl.DataFrame:
    """Hourly candles from `first` (any hour: a listing mid-day) to the end of the last
    level's day; day d of the levels is the UTC day of `first` plus d. `missing` hours
    are left out (holes)."""
    day0 = first.replace(hour=0)
    hours = len(levels) * 24 - first.hour
    h = np.arange(hours) + first.hour
    rng = np.random.default_rng(seed)
    level = np.asarray(levels, dtype=float)[h // 24]
    close = level * (1 + 0.02 * np.sin(2 * np.pi * h / 37) + 0.004 * rng.standard_normal(hours))
    open_ = np.concatenate(([close[0]], close[:-1]))
    wick = np.abs(rng.standard_normal(hours)) * 0.002 * level
    frame = pl.DataFrame(
        {
            "ts": [day0 + int(k) * HOUR for k in h],
            "open": open_,
            "high": np.maximum(open_, close) + wick,
            "low": np.minimum(open_, close) - wick,
            "close": close,
            "volume": 1_000.0 + rng.uniform(0, 100, hours),
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    return frame.filter(~pl.col("ts").is_in(list(missing)))


def wave(days: int, period: float = 23.0, amplitude: float = 0.05) -> np.ndarray:
    """Daily levels around 100 that cross their own long average every few weeks."""
    return 100.0 * (1 + amplitude * np.sin(2 * np.pi * np.arange(days) / period))


def write_replay_folder(folder: Path, markets: dict[str, pl.DataFrame]) -> Path:
    """{BASE}USDT_1h.parquet and its _1d twin (resampled, as Binance's files are) per market."""
    folder.mkdir(parents=True, exist_ok=True)
    end = max(frame["ts"].max() for frame in markets.values()) + HOUR  # type: ignore[operator]
    for base, hourly in markets.items():
        hourly.write_parquet(folder / f"{base}USDT_1h.parquet")
        resample(hourly, "1d", end).write_parquet(folder / f"{base}USDT_1d.parquet")
    return folder
