"""OHLCV refresh decisions: what to fetch, and whether what came back is usable.

Incremental: a market and timeframe with stored candles asks only for candles
after its last one; a new one asks for `history_bars`; known holes are asked
for again until the venue fills them or the attempts run out. Only closed
candles are ever kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pandera.errors as pa_errors
import polars as pl

from core.errors import DataError
from schemas.config import TIMEFRAME_SECONDS
from schemas.frames import UTC_TS, Candles


class FetchKind(StrEnum):
    INITIAL = "initial"
    INCREMENTAL = "incremental"
    GAP = "gap"


@dataclass(frozen=True, slots=True)
class FetchRequest:
    symbol: str
    timeframe: str
    since: datetime  # first candle open wanted
    until: datetime  # candles must have closed by this time
    kind: FetchKind


def step_of(timeframe: str) -> timedelta:
    return timedelta(seconds=TIMEFRAME_SECONDS[timeframe])


def floor_time(ts: datetime, timeframe: str) -> datetime:
    seconds = TIMEFRAME_SECONDS[timeframe]
    epoch = int(ts.timestamp())
    return ts - timedelta(seconds=epoch % seconds, microseconds=ts.microsecond)


def plan_fetches(
    symbols: Iterable[str],
    timeframes: Iterable[str],
    last_stored: Mapping[tuple[str, str], datetime],
    now: datetime,
    history_bars: Mapping[str, int],
    gaps: Iterable[tuple[str, str, datetime, datetime]] = (),
) -> list[FetchRequest]:
    """The requests that bring every (symbol, timeframe) up to `now`, plus open gaps.

    A new series asks for `history_bars[timeframe]` closed candles (OhlcvConfig has one
    for every timeframe, proven at config load to cover what a cycle reads). A series
    whose next candle has not closed yet gets no request at all.
    """
    wanted = set(symbols)
    plan: list[FetchRequest] = []
    for symbol in sorted(wanted):
        for tf in timeframes:
            step = step_of(tf)
            last = last_stored.get((symbol, tf))
            if last is None:
                since = floor_time(now, tf) - step * history_bars[tf]
                plan.append(FetchRequest(symbol, tf, since, now, FetchKind.INITIAL))
            elif last + 2 * step <= now:  # the candle after `last` has closed
                plan.append(FetchRequest(symbol, tf, last + step, now, FetchKind.INCREMENTAL))
    for symbol, tf, start, end in gaps:
        if symbol in wanted:
            plan.append(FetchRequest(symbol, tf, start, end, FetchKind.GAP))
    return plan


def validate_candles(
    symbol: str, timeframe: str, frame: pl.DataFrame, now: datetime
) -> pl.DataFrame:
    """One market's candles as a valid Candles frame, closed candles only.

    Raises DataError naming the market, the timeframe and the first failed rule
    (NaN or non-positive prices, high < low, duplicate or unordered times).
    """
    step = step_of(timeframe)
    prices = ["open", "high", "low", "close", "volume"]
    wrong = [c for c in prices if c in frame.columns and not frame.schema[c].is_numeric()]
    if wrong:
        raise DataError(symbol, f"{timeframe} candles: columns {wrong} are not numeric")
    try:
        tagged = frame.with_columns(
            pl.lit(symbol).alias("symbol"),
            pl.lit(timeframe).alias("timeframe"),
            pl.col("ts").cast(UTC_TS),
            pl.col(prices).cast(pl.Float64),
        ).filter(pl.col("ts") + step <= now)
    except pl.exceptions.PolarsError as exc:
        raise DataError(symbol, f"{timeframe} candles malformed: {exc}".splitlines()[0]) from None
    bad_rows = tagged.filter(~pl.all_horizontal(pl.col(prices).is_finite())).height
    if bad_rows:
        raise DataError(
            symbol, f"{timeframe} candles contain NaN or infinite values in {bad_rows} rows"
        )
    try:
        return Candles.validate(tagged, lazy=False)
    except (pa_errors.SchemaError, pa_errors.SchemaErrors) as exc:
        first_line = str(exc).splitlines()[0][:300]
        raise DataError(symbol, f"{timeframe} candles rejected: {first_line}") from None
