"""The equity curve and its drawdown as plotted series (the HTML and PNG charts share them)."""

from __future__ import annotations

import numpy as np
import polars as pl

CURVE_COLUMNS = ("ts", "equity")


def drawdown_curve(equity: pl.DataFrame) -> pl.DataFrame:
    """ts, equity, peak (running from the first mark), drawdown_usd (<= 0), drawdown_pct (<= 0,
    a fraction of the peak), sorted by ts; the deepest point is BacktestMetrics.max_drawdown_*.

    Refuses (ValueError) a frame without ts and equity columns or with a null/NaN equity.
    """
    missing = [c for c in CURVE_COLUMNS if c not in equity.columns]
    if missing:
        raise ValueError(
            f"equity frame lacks column(s) {missing}: give ts and equity (core/backtest_result.py)"
        )
    frame = equity.select(CURVE_COLUMNS).sort("ts").with_columns(pl.col("equity").cast(pl.Float64))
    values = frame["equity"].to_numpy()
    if not np.isfinite(values).all():
        raise ValueError("equity frame holds a null or non-finite equity: fix the run's marks")
    peak = np.maximum.accumulate(values) if len(values) else values
    drop = values - peak
    share = np.divide(drop, peak, out=np.zeros_like(drop), where=peak > 0)
    return frame.with_columns(
        peak=pl.Series(peak), drawdown_usd=pl.Series(drop), drawdown_pct=pl.Series(share)
    )
