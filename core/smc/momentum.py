"""Momentum breakout strategy (relaxation 3, `momentum`, off by default).

Beside SMC, not instead of it: it is evaluated only for a market whose daily
bias passed but whose SMC setup failed a later gate (structure, regime, OTE or
risk). It trades a FRESH 1H break of structure in the bias direction without
waiting for a retracement:

- MOMENTUM_NO_BREAKOUT: the last valid 1H break is not in the bias direction,
  or is older than `momentum_max_age_bars` 1H bars;
- MOMENTUM_OVEREXTENDED: the entry is more than `momentum_max_extension_atr`
  1H ATRs beyond the broken level (chasing);
- then the same risk checks as SMC.

Plan: entry = last 1H close; stop = the 1H impulse leg's start minus
atr_stop_buffer ATR (where the breakout is proven wrong); TP1/2/3 at 1, 2, 3
times the risk, scaled up to min_reward_risk if that is above 1.
"""

from __future__ import annotations

import polars as pl

from core.smc.reasons import Reason
from schemas.strategy import StrategyConfig


def momentum_plan(config: StrategyConfig) -> list[pl.Expr]:
    """m_* columns: the momentum trade plan and its extension in ATR."""
    side = pl.col("d_bias").cast(pl.Float64)
    entry = pl.col("h1_close")
    stop = pl.col("h1_leg_start") - side * config.atr_stop_buffer * pl.col("h1_atr")
    risk = side * (entry - stop)
    unit = max(1.0, config.min_reward_risk)
    return [
        stop.alias("m_stop"),
        *((entry + side * k * unit * risk).alias(f"m_tp{k}") for k in (1, 2, 3)),
        (side * (entry - pl.col("h1_structure_level")) / pl.col("h1_atr")).alias("m_extension"),
        pl.lit(unit).alias("m_reward_risk"),
    ]


def momentum_reason(config: StrategyConfig) -> pl.Expr:
    """The first failing momentum gate (null: passed)."""
    side = pl.col("d_bias")
    fresh = (pl.col("h1_trend") == side) & (
        pl.col("h1_bars_since_break") <= config.momentum_max_age_bars
    )
    distance = side * (pl.col("h1_close") - pl.col("m_stop"))
    return (
        pl.when(~fresh.fill_null(False))
        .then(pl.lit(Reason.MOMENTUM_NO_BREAKOUT.value))
        .when(~(pl.col("m_extension") <= config.momentum_max_extension_atr).fill_null(False))
        .then(pl.lit(Reason.MOMENTUM_OVEREXTENDED.value))
        .when(~((pl.col("m_stop") > 0) & (distance > 0)).fill_null(False))
        .then(pl.lit(Reason.RISK_STOP_WRONG_SIDE.value))
        .when(~(distance / pl.col("h1_close") <= config.max_stop_pct).fill_null(False))
        .then(pl.lit(Reason.RISK_STOP_TOO_WIDE.value))
    )


def momentum_score() -> pl.Expr:
    """0..1: the closer to the broken level the better (ATR distance), half weight on R:R 3."""
    closeness = (1.0 - pl.col("m_extension").clip(0.0, None) / 3.0).clip(0.0, 1.0)
    return 0.5 * closeness + 0.5 * (pl.col("m_reward_risk") * 3.0 / 9.0).clip(0.0, 1.0)
