"""pandera.polars schemas for every frame that crosses a task boundary.

Validate collected DataFrames (on a LazyFrame pandera checks only dtypes).
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.engines.polars_engine import DateTime

UTC_TS = pl.Datetime("us", "UTC")
UtcTs = DateTime(time_zone="UTC", time_unit="us")


class Candles(pa.DataFrameModel):
    """Closed OHLCV candles of one or more markets and timeframes."""

    symbol: str
    timeframe: str = pa.Field(isin=["1h", "4h", "1d"])
    ts: UtcTs = pa.Field(description="candle open time, UTC")  # type: ignore[valid-type]
    open: float = pa.Field(gt=0)
    high: float = pa.Field(gt=0)
    low: float = pa.Field(gt=0)
    close: float = pa.Field(gt=0)
    volume: float = pa.Field(ge=0)

    class Config:
        strict = "filter"
        coerce = True
        unique = ("symbol", "timeframe", "ts")

    @pa.dataframe_check(error="high must be >= max(open, close)")
    def high_is_highest(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("high") >= pl.max_horizontal("open", "close"))

    @pa.dataframe_check(error="low must be <= min(open, close)")
    def low_is_lowest(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("low") <= pl.min_horizontal("open", "close"))

    @pa.dataframe_check(error="ts must increase within each symbol and timeframe")
    def ts_increasing(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("ts").diff().over("symbol", "timeframe") > pl.duration(microseconds=0))
            .fill_null(True)
            .alias("ts")
        )


class Markets(pa.DataFrameModel):
    """The market registry's view of the venue: one row per perpetual, tiered."""

    symbol: str = pa.Field(unique=True, description="unified ccxt symbol, e.g. BTC/USD:USD")
    venue_symbol: str = pa.Field(description="the venue's own id, e.g. PF_XBTUSD")
    base: str
    settle: str
    contract_size: float = pa.Field(gt=0)
    tick_size: float = pa.Field(gt=0)
    lot_size: float = pa.Field(gt=0)
    min_size: float = pa.Field(ge=0)
    max_leverage: float = pa.Field(ge=1)
    last: float = pa.Field(nullable=True)
    bid: float = pa.Field(nullable=True)
    ask: float = pa.Field(nullable=True)
    volume_24h_usd: float = pa.Field(nullable=True, ge=0)
    spread_bps: float = pa.Field(nullable=True, ge=0)
    tier: str = pa.Field(isin=["A", "B", "C", "REJECT"])
    pinned: bool
    tradeable: bool
    reason: str = pa.Field(description="why this tier: thresholds met, pinned, or the miss")

    class Config:
        strict = True
        coerce = True


def polars_schema(model: type[pa.DataFrameModel]) -> dict[str, pl.DataType]:
    """The polars dtypes a schema declares, to build frames (also empty ones) of that shape."""
    return {name: col.dtype.type for name, col in model.to_schema().columns.items()}
