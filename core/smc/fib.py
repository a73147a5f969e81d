"""Fibonacci retracements of the impulse leg and the OTE zone.

A retracement r of a leg from `leg_start` to `leg_end` is the price
leg_end - r * (leg_end - leg_start): r = 0 is the leg's end (the extreme just
made), r = 1 its start. The same formula serves bullish and bearish legs. The
optimal trade entry (OTE) zone is r in [0.618, 0.786] (config ote_min/ote_max).

The peer's `retracements` reports the current and deepest retracement in
percent between the last two (revised) swings; ours measures from the impulse
leg of the latest valid break and is null when there is no valid structure.
"""

from __future__ import annotations

import polars as pl

KEY_LEVELS: tuple[float, ...] = (0.5, 0.618, 0.705, 0.786)


def level_name(r: float) -> str:
    """Column name of a retracement level, e.g. fib_0_618."""
    return "fib_" + f"{r:g}".replace(".", "_")


def retracement_price(r: float | pl.Expr) -> pl.Expr:
    """Price at retracement r of the current leg (null without a leg)."""
    return pl.col("leg_end") - r * (pl.col("leg_end") - pl.col("leg_start"))


def retracement_of(price: pl.Expr, leg_start: pl.Expr, leg_end: pl.Expr) -> pl.Expr:
    """How far `price` has retraced the leg: 0 at its end, 1 at its start."""
    return (leg_end - price) / (leg_end - leg_start)


def fib_columns(ote_min: float, ote_max: float) -> list[pl.Expr]:
    """Key levels, the OTE zone's top/bottom prices, and the close's retracement."""
    a, b = retracement_price(ote_min), retracement_price(ote_max)
    return [
        *(retracement_price(r).alias(level_name(r)) for r in KEY_LEVELS),
        pl.max_horizontal(a, b).alias("ote_top"),
        pl.min_horizontal(a, b).alias("ote_bottom"),
        retracement_of(pl.col("close"), pl.col("leg_start"), pl.col("leg_end")).alias(
            "retracement"
        ),
    ]
