"""Bar-local indicators: true range, ATR, EMA and the bias it gives.

Every value is a pure function of a bounded number of bars before it, so a
window of recent bars reproduces it bit for bit (the incremental cycle relies on
it). That is why:

- ATR is the simple mean of the last `atr_period` true ranges, each window
  summed afresh in a fixed order. A sliding sum (polars rolling_mean) carries
  rounding from wherever the series happens to start, and Wilder's recursive
  average carries all history, so neither is reproduced by a window. The fresh
  sum is a small numba loop (n x period additions), not a sequential rule;
- the EMA is re-seeded on a calendar grid: each value is the adjusted EMA
  (weights (1-a)^k, a = 2/(period+1), normalised) of the closes since the start
  of the previous grid block of `ema_period * ema_warmup_periods` bars. Every
  value therefore sees between one and two blocks of history (with the default
  3 periods the weight left out is below 0.25 %), and the block edges are fixed
  by the bar's own timestamp, not by where the data starts. A market listed
  after a value's seed is seeded at its listing (its first candle); a frame
  that starts later than a seed without starting at the listing gives no
  value there rather than one seeded wherever the loaded rows begin. The
  EMA counts from `warmup` bars after the listing (StrategyConfig.bias_warmup_bars).

Multi-market frames are handled with `pos` (the bar's index inside its market)
instead of `.over()`: a shifted value is used only where `pos` says it belongs
to the same market.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl


def true_range(pos: pl.Expr) -> pl.Expr:
    """max(high-low, |high-prev close|, |low-prev close|); null on a market's first bar."""
    prev_close = pl.col("close").shift(1)
    tr = pl.max_horizontal(
        pl.col("high") - pl.col("low"),
        (pl.col("high") - prev_close).abs(),
        (pl.col("low") - prev_close).abs(),
    )
    return pl.when(pos >= 1).then(tr)


@numba.njit(cache=True)
def window_mean(values: np.ndarray, pos: np.ndarray, period: int) -> np.ndarray:
    """Mean of values[t-period+1..t], summed oldest first; NaN where pos < period.

    pos >= period, not period - 1: the first bar of a market has no true range.
    """
    n = values.shape[0]
    out = np.full(n, np.nan)
    for t in range(n):
        if pos[t] >= period:
            total = 0.0
            for k in range(t - period + 1, t + 1):
                total += values[k]
            out[t] = total / period
    return out


@numba.njit(cache=True)
def anchored_ema(
    values: np.ndarray,
    bar_no: np.ndarray,
    starts: np.ndarray,
    listed: np.ndarray,
    period: int,
    block: int,
    warmup: int,
) -> np.ndarray:
    """Adjusted EMA re-seeded at the start of the block before each bar's block.

    `bar_no` is the bar's absolute index (epoch time // bar length), `starts` the
    first row of each market plus the end, `listed[g]` True when market g's rows
    begin at its first candle (its listing). A value is seeded at its calendar
    seed, or at the listing when the market listed after it; it is NaN
    - while the market is warming up: fewer than `warmup` bars since its listing
      (counted on the calendar, so a hole does not move the end of the warm-up);
    - when the seed lies before the market's first row and those rows are not the
      listing: the history the value needs is not here, and seeding at whatever
      row comes first would make it depend on how much history was loaded.
    """
    n = values.shape[0]
    out = np.full(n, np.nan)
    w = 1.0 - 2.0 / (period + 1.0)
    for g in range(starts.shape[0] - 1):
        s, e = starts[g], starts[g + 1]
        i = s
        while i < e:
            blk = bar_no[i] // block
            j = i
            while j < e and bar_no[j] // block == blk:
                j += 1
            seed = (blk - 1) * block
            if seed < bar_no[s] and not listed[g]:
                i = j  # the seed's candles were not loaded: unknown, not guessed
                continue
            # Seed at the first bar of the previous block (or the market's listing).
            r = i
            while r > s and bar_no[r - 1] >= seed:
                r -= 1
            num = 0.0
            den = 0.0
            for k in range(r, j):
                num = values[k] + w * num
                den = 1.0 + w * den
                # Unlisted rows: bar k is >= block bars past a listing before s.
                if k >= i and (not listed[g] or bar_no[k] - bar_no[s] + 1 >= warmup):
                    out[k] = num / den
            i = j
    return out


def bias(close: pl.Expr, ema: pl.Expr) -> pl.Expr:
    """+1 close above the EMA (long bias), -1 below (short), 0 on it, null without an EMA."""
    return pl.when(ema.is_null()).then(None).otherwise((close - ema).sign()).cast(pl.Int8)
