"""Score of an SMC setup, 0..1, the auction's ranking input (SPEC §4).

Three parts, weighted by the score_weight_* parameters:
- OTE depth: 1 at the 0.705 retracement, falling linearly to 0 at the edges of
  the (tolerance-widened) zone - the deeper-but-not-broken entry is the classic
  best fill;
- reward:risk to TP2, 3 or more scoring 1;
- confluence: the mean of three facts - the order block overlaps the OTE zone,
  an unfilled fair value gap of the trade's side overlaps it, and the impulse
  swept opposite liquidity before breaking.

Market tier is deliberately not part of it: the auction already multiplies
the score by risk.tier_weights, and counting tier twice would square it.
"""

from __future__ import annotations

import polars as pl

from schemas.strategy import StrategyConfig

SWEET_SPOT = 0.705


def _overlaps(lo: pl.Expr, hi: pl.Expr, zone_lo: pl.Expr, zone_hi: pl.Expr) -> pl.Expr:
    """1.0 when [lo, hi] and the zone overlap, else 0.0 (null zone: 0)."""
    return (
        (pl.max_horizontal(lo, zone_lo) <= pl.min_horizontal(hi, zone_hi))
        .fill_null(False)
        .cast(pl.Float64)
    )


def smc_score(config: StrategyConfig, pick: dict[str, pl.Expr]) -> pl.Expr:
    """Score expression over the SMC plan columns and the picked structure columns."""
    lo, hi = config.ote_min - config.ote_tolerance, config.ote_max + config.ote_tolerance
    half = max(SWEET_SPOT - lo, hi - SWEET_SPOT)
    depth = (1.0 - (pl.col("retracement") - SWEET_SPOT).abs() / half).clip(0.0, 1.0)
    rr = (pl.col("reward_risk_tp2") / 3.0).clip(0.0, 1.0)
    start, end = pick["leg_start"], pick["leg_end"]
    a, b = end - config.ote_min * (end - start), end - config.ote_max * (end - start)
    zone_lo, zone_hi = pl.min_horizontal(a, b), pl.max_horizontal(a, b)
    long = pl.col("d_bias") == 1
    fvg_lo = pl.when(long).then(pick["fvg_bull_bottom"]).otherwise(pick["fvg_bear_bottom"])
    fvg_hi = pl.when(long).then(pick["fvg_bull_top"]).otherwise(pick["fvg_bear_top"])
    confluence = (
        _overlaps(pick["ob_bottom"], pick["ob_top"], zone_lo, zone_hi)
        + _overlaps(fvg_lo, fvg_hi, zone_lo, zone_hi)
        + pick["leg_swept_liquidity"].fill_null(False).cast(pl.Float64)
    ) / 3.0
    w_ote, w_rr, w_conf = (
        config.score_weight_ote,
        config.score_weight_reward_risk,
        config.score_weight_confluence,
    )
    return (w_ote * depth + w_rr * rr + w_conf * confluence) / (w_ote + w_rr + w_conf)
