"""Scoring zones: fair value gaps and liquidity pools (equal highs / equal lows).

Fair value gap (ours): on bar t, a bullish FVG exists when low[t] > high[t-2]
and bar t-1 closed up; the gap is [high[t-2], low[t]]. Bearish mirrors it. It
is reported on bar t (the bar that completes it) and stays the active FVG of
its side until price fills it (a low at or below a bullish gap's bottom, a
high at or above a bearish gap's top), a newer gap of that side replaces it, or
`fvg_lookback_bars` pass. The peer (smartmoneyconcepts.fvg) places the gap on
the middle candle, i.e. one bar before the candle that proves it exists, and
computes its mitigation from the whole future.

Liquidity pool (ours): when a swing high is confirmed within
`liquidity_tolerance_atr` x ATR (ATR of the confirming bar) of the previous
confirmed swing high, with no higher high between them and both within
`structure_lookback_bars`, buy-side liquidity rests above them: the pool level
is the higher of the two. It is swept by the first later high above it.
Sell-side pools mirror it under equal lows. The peer (smartmoneyconcepts.
liquidity) uses 1 % of the WHOLE series' high-low range as tolerance - a
number that depends on future prices - and groups any number of swings.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

NAN = np.nan


def fvg_events(pos: pl.Expr) -> pl.Expr:
    """+1 a bullish FVG completes on this bar, -1 bearish, 0 none (Int8)."""
    mid_up = pl.col("close").shift(1) > pl.col("open").shift(1)
    mid_down = pl.col("close").shift(1) < pl.col("open").shift(1)
    bull = (pl.col("low") > pl.col("high").shift(2)) & mid_up
    bear = (pl.col("high") < pl.col("low").shift(2)) & mid_down
    return (
        pl.when((pos >= 2) & bull)
        .then(1)
        .when((pos >= 2) & bear)
        .then(-1)
        .otherwise(0)
        .cast(pl.Int8)
    )


@numba.njit(cache=True)
def track_fvg(
    starts: np.ndarray,
    fvg: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    side: int,
    lookback: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(top, bottom) of the active FVG of one side (+1 bullish, -1 bearish) per bar."""
    n = high.shape[0]
    top = np.full(n, NAN)
    bottom = np.full(n, NAN)
    for g in range(starts.shape[0] - 1):
        made, t_lv, b_lv = -1, NAN, NAN
        for t in range(starts[g], starts[g + 1]):
            filled = low[t] <= b_lv if side == 1 else high[t] >= t_lv
            if made >= 0 and (filled or t - made > lookback):
                made = -1
            if fvg[t] == side:
                made = t
                t_lv, b_lv = (low[t], high[t - 2]) if side == 1 else (low[t - 2], high[t])
            if made >= 0:
                top[t], bottom[t] = t_lv, b_lv
    return top, bottom


@numba.njit(cache=True)
def _beyond(a: float, b: float, up: bool) -> bool:
    """a is strictly above b (up) / below b (down)."""
    return a > b if up else a < b


@numba.njit(cache=True)
def _pool_formed(values: np.ndarray, p_old: int, p_new: int, level: float, up: bool) -> bool:
    """No bar strictly between the two pivots went beyond the pool level."""
    for k in range(p_old + 1, p_new):  # noqa: SIM110 - numba compiles no generators
        if _beyond(values[k], level, up):
            return False
    return True


@numba.njit(cache=True)
def track_pools(
    starts: np.ndarray,
    values: np.ndarray,
    confirmed: np.ndarray,
    atr: np.ndarray,
    length: int,
    lookback: int,
    tolerance_atr: float,
    up: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(level of the active pool, pool swept on this bar) for equal highs (up) or lows.

    `values` are the highs (up) or the lows; a pool is swept by the first bar
    beyond its level and expires when its older pivot leaves the lookback.
    """
    n = values.shape[0]
    level = np.full(n, NAN)
    swept = np.zeros(n, np.bool_)
    for g in range(starts.shape[0] - 1):
        prev, pool, pool_lv = -1, -1, NAN  # previous swing pivot; pool's older pivot
        for t in range(starts[g], starts[g + 1]):
            if pool >= 0 and _beyond(values[t], pool_lv, up):
                swept[t], pool = True, -1
            pool = -1 if t - pool > lookback else pool
            prev = -1 if t - prev > lookback else prev
            if confirmed[t]:
                p = t - length
                lv = max(values[p], values[prev]) if up else min(values[p], values[prev])
                near = abs(values[p] - values[prev]) <= tolerance_atr * atr[t]
                if prev >= 0 and near and _pool_formed(values, prev, p, lv, up):
                    pool, pool_lv = prev, lv
                prev = p
            if pool >= 0:
                level[t] = pool_lv
    return level, swept
