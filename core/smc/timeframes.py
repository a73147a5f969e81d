"""Timeframes, candle closing times and the 1h -> 4h resampling.

A candle's `ts` is its open; it is closed, and may be used, from ts + timeframe.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from core.errors import DataError

TIMEFRAMES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
}
TS_DTYPE = pl.Datetime("us", "UTC")


def duration(timeframe: str) -> timedelta:
    """The length of one bar; refuses an unknown timeframe with the list of known ones."""
    try:
        return TIMEFRAMES[timeframe]
    except KeyError:
        raise DataError(
            timeframe, f"unknown timeframe {timeframe!r}: use one of {sorted(TIMEFRAMES)}"
        ) from None


def resample_1h_to_4h(hourly: pl.DataFrame) -> pl.DataFrame:
    """4h candles from 1h ones (per symbol if a `symbol` column exists).

    ts is the 4-hour bucket's open (buckets aligned to 00:00 UTC); open first,
    high max, low min, close last, volume sum. A bucket with fewer than 4 hourly
    candles is dropped: it is either not closed yet or has a hole, and a 4h
    candle built from part of its hours would be a different candle.
    """
    by = ["symbol"] if "symbol" in hourly.columns else None
    out = (
        hourly.sort([*(by or []), "ts"])
        .group_by_dynamic("ts", every="4h", group_by=by, closed="left", label="left")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.len().alias("_n"),
        )
        .filter(pl.col("_n") == 4)
        .drop("_n")
    )
    return out.sort([*(by or []), "ts"])
