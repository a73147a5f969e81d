"""Confirmed swing highs and lows, reported on the bar that confirms them.

Definition (ours): bar p is a swing high when its high is strictly above the
highs of the `swing_length` bars before it and at least the highs of the
`swing_length` bars after it (a tie goes to the earlier bar, so a flat top
yields one swing). Swing lows mirror it. A swing needs its right-hand bars to
close before it exists, so it is reported on bar p + swing_length, whose close
is its `known_at`; the pivot's own time is carried separately (`swing_*_ts`).
A bar can be both a swing high and a swing low (an outside bar).

Differences from smartmoneyconcepts 0.0.27 `swing_highs_lows(n)`:
- the peer compares a bar with the n-1 bars before it and the n bars after it
  (a centred rolling window placed on the pivot itself), uses `==` so ties make
  several pivots, and reports the pivot on its own row - a fact that row could
  not have known for another n bars;
- the peer then rewrites history: of two consecutive highs (lows) it deletes
  the lower (higher) one and adds artificial swings on the first and last rows.
  A later bar can therefore remove an earlier swing. We never revise a swing:
  every swing stays exactly as it was confirmed.
"""

from __future__ import annotations

import polars as pl


def swing_confirmations(length: int, pos: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(swing high confirmed on this bar, swing low confirmed on this bar), both bool.

    Only bars up to the current one are read: the pivot is `length` bars back,
    its left side `length + 1 .. 2 * length` bars back. `pos` (the bar's index in
    its market) keeps a window from reaching into the previous market.
    """
    full = pos >= 2 * length
    # The right side ends on this bar; the left side is the same window length + 1 bars ago.
    right_high = pl.col("high").rolling_max(length)
    right_low = pl.col("low").rolling_min(length)
    left_high, left_low = right_high.shift(length + 1), right_low.shift(length + 1)
    pivot_high, pivot_low = pl.col("high").shift(length), pl.col("low").shift(length)
    high = (full & (pivot_high > left_high) & (pivot_high >= right_high)).fill_null(False)
    low = (full & (pivot_low < left_low) & (pivot_low <= right_low)).fill_null(False)
    return high, low
