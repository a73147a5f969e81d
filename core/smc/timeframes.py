"""Timeframes, candle closing times and the one resampling rule (venues and strategy).

A candle's `ts` is its open; it is closed, and may be used, from ts + timeframe.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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


def resample(hourly: pl.DataFrame, timeframe: str, closed_by: datetime) -> pl.DataFrame:
    """`timeframe` candles (1h, 4h or 1d) from hourly ones, per symbol if a `symbol` column exists.

    The rule, the same for every venue and for the strategy: a bucket (4 hours,
    or a UTC day; aligned to 00:00 UTC, ts = the bucket's open) gives a candle
    once it has CLOSED by `closed_by` and holds at least one hourly candle,
    built from the hours it holds: open of the first, high max, low min, close
    of the last, volume sum. So a market listing at 10:00 has an 08:00 candle
    from 10:00 to 12:00, and a bucket with a missing hour still has its candle,
    as an exchange's own 4h and daily candles do (Binance's daily files start
    with the partial listing day). A bucket that has not closed by `closed_by`
    is never returned, however many of its hours are in: it is in progress.
    Returns columns [symbol,] ts, open, high, low, close, volume, sorted. Refuses
    an unknown timeframe (DataError).
    """
    length = duration(timeframe)
    by = ["symbol"] if "symbol" in hourly.columns else []
    ordered = hourly.sort([*by, "ts"])
    if timeframe == "1h":
        out = ordered.select(*by, "ts", "open", "high", "low", "close", "volume")
    else:
        out = ordered.group_by_dynamic(
            "ts", every=timeframe, group_by=by or None, closed="left", label="left"
        ).agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
    # The in-progress bucket: its last hours may still come, so it is not a candle yet.
    return out.filter(pl.col("ts") + length <= closed_by).sort([*by, "ts"])


def data_end(hourly: pl.DataFrame) -> datetime:
    """The close of the last hourly candle: the time a finished history is complete to."""
    return hourly["ts"].max() + TIMEFRAMES["1h"]  # type: ignore[operator]
