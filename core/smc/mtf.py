"""Multi-timeframe alignment: each decision row gets, per timeframe, the latest
feature row KNOWN at the decision time (as-of join on `known_at`, backward).

A daily row is known at the daily candle's close, so a 4H or 1H decision sees
the last CLOSED daily candle, never the one in progress; likewise for 4H and 1H.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.smc.windows import market_starts

# Columns each timeframe contributes to a decision, and the prefix they get.
PREFIX = {"1d": "d_", "4h": "h4_", "1h": "h1_"}
DAILY_COLUMNS = ("known_at", "close", "ema", "bias")
STRUCTURE_COLUMNS = (
    "known_at",
    "close",
    "atr",
    "trend",
    "structure_kind",
    "structure_level",
    "bars_since_break",
    "leg_start",
    "leg_end",
    "leg_swept_liquidity",
    "ob_top",
    "ob_bottom",
    "fvg_bull_top",
    "fvg_bull_bottom",
    "fvg_bear_top",
    "fvg_bear_bottom",
    "regime",
)
COLUMNS = {"1d": DAILY_COLUMNS, "4h": STRUCTURE_COLUMNS, "1h": STRUCTURE_COLUMNS}


def align(decisions: pl.DataFrame, features: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """`decisions` (symbol, ts = decision time) with every timeframe's as-of columns.

    `features` maps a timeframe to its features_by_market frame (market
    blocks in ts order; may be empty). A timeframe with no row known by the decision
    time gives nulls, never an error.
    """
    # join_asof needs each side sorted on the key within each `by` group: known_at
    # grows with ts inside a market block, so no global sort is needed.
    out = decisions.sort("symbol", "ts")
    single = out["ts"].n_unique() == 1
    for tf, prefix in PREFIX.items():
        frame = _last_known(features[tf], out["ts"][0]) if single else features[tf]
        right = frame.select("symbol", *(pl.col(c).alias(prefix + c) for c in COLUMNS[tf]))
        out = out.join_asof(
            right,
            left_on="ts",
            right_on=prefix + "known_at",
            by="symbol",
            strategy="backward",
            coalesce=False,
            check_sortedness=False,  # it only checks a global sort, which is not required
        )
    return out


def _last_known(frame: pl.DataFrame, when: object) -> pl.DataFrame:
    """Per market, only the last row known by `when`: the only row a single-time
    as-of join can match (a cycle), so the join need not hash every bar."""
    if frame.is_empty():
        return frame
    starts = market_starts(frame["symbol"])
    known = (frame["known_at"] <= when).to_numpy()
    rows = np.where(known, np.arange(frame.height), -1)
    last = np.maximum.reduceat(rows, starts[:-1])
    return frame[last[last >= 0]]
