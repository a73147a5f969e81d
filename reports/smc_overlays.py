"""What the HTML report draws over a market's candles, computed by the project's own SMC code.

compute_features (core/smc/features.py) gives, per bar: the reference swings (swing_high /
swing_low and their pivot times), the break of that bar (bos / choch: +1 up, -1 down, at
break_level) and the OTE zone of the valid leg (ote_top / ote_bottom). Nothing here
re-implements a feature; it only selects the rows to draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from core.errors import DataError
from core.smc.features import compute_features
from core.smc.reasons import BreakKind
from core.smc.timeframes import TS_DTYPE
from schemas.strategy import StrategyConfig

CANDLE_COLUMNS = ("ts", "open", "high", "low", "close")


@dataclass(frozen=True, slots=True)
class MarketOverlays:
    """One market's candles and structure inside the drawn window (ts = UTC bar open).

    swings: ts (pivot bar), price, side ("high"/"low"), confirmed_at (when the engine knew it).
    breaks: ts (breaking bar), from_ts (the broken swing's pivot), level, kind (BOS/CHOCH),
    direction (+1 up, -1 down). ote: ts, top, bottom (null where no leg is valid).
    """

    symbol: str
    timeframe: str
    candles: pl.DataFrame
    swings: pl.DataFrame
    breaks: pl.DataFrame
    ote: pl.DataFrame


def _with_volume(candles: pl.DataFrame) -> pl.DataFrame:
    """compute_features wants a volume column; no overlay reads it, so a missing one is 0."""
    if "volume" in candles.columns:
        return candles
    return candles.with_columns(volume=pl.lit(0.0))


def _swings(features: pl.DataFrame) -> pl.DataFrame:
    parts = []
    for side in ("high", "low"):
        price, ts = f"swing_{side}", f"swing_{side}_ts"
        parts.append(
            features.filter(pl.col(ts).is_not_null())
            .group_by(ts, price, maintain_order=True)
            .agg(confirmed_at=pl.col("known_at").min())
            .select(
                pl.col(ts).alias("ts"),
                pl.col(price).alias("price"),
                pl.lit(side).alias("side"),
                "confirmed_at",
            )
        )
    return pl.concat(parts).sort("ts")


def _breaks(features: pl.DataFrame) -> pl.DataFrame:
    """Bars that broke structure; an up break crosses the swing high, a down break the low."""
    is_bos = pl.col("bos") != 0
    direction = pl.when(is_bos).then(pl.col("bos")).otherwise(pl.col("choch"))
    return features.filter(is_bos | (pl.col("choch") != 0)).select(
        "ts",
        pl.when(direction > 0)
        .then(pl.col("swing_high_ts"))
        .otherwise(pl.col("swing_low_ts"))
        .alias("from_ts"),
        pl.col("break_level").alias("level"),
        pl.when(is_bos)
        .then(pl.lit(BreakKind.BOS.value))
        .otherwise(pl.lit(BreakKind.CHOCH.value))
        .alias("kind"),
        direction.cast(pl.Int8).alias("direction"),
    )


def market_overlays(
    symbol: str,
    candles: pl.DataFrame,
    config: StrategyConfig,
    *,
    timeframe: str = "4h",
    start: datetime | None = None,
    end: datetime | None = None,
) -> MarketOverlays:
    """Swings, BOS/CHoCH and the OTE zone of `candles` (ts, open, high, low, close; volume
    optional), computed on all of them and kept where they fall inside [start, end].

    Refuses (DataError naming the symbol) missing columns, naive timestamps, NaN or
    inverted candles and duplicate ts, as the engine does.
    """
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
    if missing:
        raise DataError(symbol, f"candles lack column(s) {missing}: give {list(CANDLE_COLUMNS)}")
    try:
        features = compute_features(_with_volume(candles), timeframe, config)
    except DataError as error:
        raise DataError(symbol, str(error)) from error
    inside = _window(start, end)
    return MarketOverlays(
        symbol=symbol,
        timeframe=timeframe,
        candles=features.filter(inside).select(CANDLE_COLUMNS),
        swings=_swings(features).filter(inside),
        breaks=_breaks(features).filter(inside),
        ote=features.filter(inside).select(
            "ts", pl.col("ote_top").alias("top"), pl.col("ote_bottom").alias("bottom")
        ),
    )


def _window(start: datetime | None, end: datetime | None) -> pl.Expr:
    inside = pl.lit(True)
    if start is not None:
        inside &= pl.col("ts") >= pl.lit(start).cast(TS_DTYPE)
    if end is not None:
        inside &= pl.col("ts") <= pl.lit(end).cast(TS_DTYPE)
    return inside
