"""Regime of a bar's structure; only `tight_smc` is tradeable.

The OTE entry is a bet that a clean, proportionate impulse will continue after
a measured pull-back. Each regime names one way that bet goes wrong; they are
tested in this order and the first that matches wins:

- no_structure: no valid break (trend 0) or no ATR yet. Nothing to retrace.
- volatile: ATR above `max_atr_pct` of price. Stops beyond the leg plus an ATR
  buffer become too wide for the position size to mean anything.
- choppy: more than `tight_max_choch` CHoCH flips in the last
  `regime_window_bars` bars. The direction keeps changing; a BOS there is noise.
- weak_impulse: the leg spans fewer than `tight_min_leg_atr` ATRs. Its OTE zone
  sits inside ordinary bar noise, so "retracing into it" means nothing.
- extended: the leg spans more than `tight_max_leg_atr` ATRs. The stop beyond
  the leg start is far from an OTE entry; the move is likely exhausted.
- tight_smc: everything else - a recent, one-directional break with an impulse
  of a few ATRs in a normal-volatility market.

`widen_tight_smc` (relaxation 4) divides the minimum and multiplies the maximum
leg size by `widen_leg_factor` and allows `widen_extra_choch` more flips.
"""

from __future__ import annotations

import polars as pl

from core.smc.reasons import Regime
from schemas.strategy import StrategyConfig


def regime_expr(config: StrategyConfig) -> pl.Expr:
    """String expression naming the regime, from trend, leg, atr, close and choch_count."""
    widen = config.widen_tight_smc
    factor = config.widen_leg_factor if widen else 1.0
    min_leg = config.tight_min_leg_atr / factor
    max_leg = config.tight_max_leg_atr * factor
    max_choch = config.tight_max_choch + (config.widen_extra_choch if widen else 0)
    leg_atr = (pl.col("leg_end") - pl.col("leg_start")).abs() / pl.col("atr")
    return (
        pl.when((pl.col("trend") == 0) | pl.col("atr").is_null() | pl.col("leg_start").is_null())
        .then(pl.lit(Regime.NO_STRUCTURE.value))
        .when(pl.col("atr") / pl.col("close") > config.max_atr_pct)
        .then(pl.lit(Regime.VOLATILE.value))
        .when(pl.col("choch_count") > max_choch)
        .then(pl.lit(Regime.CHOPPY.value))
        .when(leg_atr < min_leg)
        .then(pl.lit(Regime.WEAK_IMPULSE.value))
        .when(leg_atr > max_leg)
        .then(pl.lit(Regime.EXTENDED.value))
        .otherwise(pl.lit(Regime.TIGHT_SMC.value))
    )
