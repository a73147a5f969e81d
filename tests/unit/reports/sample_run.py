"""A small backtest built by hand: five trades in three markets, an hourly step curve,
a gate funnel, fills (one trade with a partial TP1 exit) and 4h candles for two markets."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from core.backtest_result import (
    BacktestResult,
    BacktestRun,
    FillModel,
    IntrabarOrder,
    RunStatus,
)
from core.metrics import EquityCurve, ExitReason, TradeRecord, compute_metrics
from core.orders import PositionSide

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 2, 10, tzinfo=UTC)
INITIAL = 10_000.0
TS = pl.Datetime("us", "UTC")
FILL_MODEL = FillModel(
    maker_fee=0.0002,
    taker_fee=0.0005,
    slippage_bps=2.0,
    intrabar=IntrabarOrder.STOP_FIRST,
    funding="data files, every 8 h",
)
GATES = ("data", "daily_bias", "structure", "regime", "ote", "risk")
REJECTIONS = (10, 40, 100, 30, 15, 5)
DECISIONS = 205  # 200 rejected, 5 became trades


def at(day: int, hour: int = 0, month: int = 1) -> datetime:
    return datetime(2025, month, day, hour, tzinfo=UTC)


def trade(pid, symbol, side, entry, exit_, prices, pnl, risk, reason, fees=0.0, funding=0.0):
    return TradeRecord(
        position_id=pid,
        symbol=symbol,
        side=PositionSide(side),
        entry_ts=entry,
        exit_ts=exit_,
        entry_price=prices[0],
        exit_price=prices[1],
        size=1.0,
        pnl=pnl,
        fees=fees,
        funding=funding,
        risk=risk,
        exit_reason=ExitReason(reason),
    )


TRADES = (
    trade("p1", "BTCUSDT", "long", at(2, 10), at(3, 14), (100, 103), 300.0, 150.0, "tp2", 6, 1),
    trade("p2", "ETHUSDT", "short", at(5, 0), at(6, 8), (50, 51), -150.0, 150.0, "stop", 4, -0.5),
    trade("p3", "BTCUSDT", "long", at(20, 4), at(22, 0), (101, 101), 0.0, 100.0, "tp1", 3),
    trade("p4", "SOLUSDT", "long", at(1, 8, 2), at(3, 0, 2), (20, 24), 458.0, 0.0, "tp1", 5, 2),
    trade("p5", "ETHUSDT", "long", at(5, 0, 2), at(6, 0, 2), (52, 51), -80.0, 100.0, "kill_switch"),
)


def step_equity(trades, start=START, end=END, initial=INITIAL) -> pl.DataFrame:
    """Hourly marks; equity steps by each trade's pnl at its exit."""
    hours = int((end - start).total_seconds() // 3600) + 1
    ts = [start + timedelta(hours=h) for h in range(hours)]
    equity = [initial + sum(t.pnl for t in trades if t.exit_ts <= moment) for moment in ts]
    return pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=TS),
            "equity": equity,
            "cash": equity,
            "margin_used": [0.0] * hours,
            "open_positions": [0] * hours,
            "system_state": ["NORMAL"] * hours,
        }
    )


def fills_of(trades) -> pl.DataFrame:
    """One entry fill per trade, one exit fill, and a partial TP1 exit for p1."""
    rows = []
    for t in trades:
        entry_side, exit_side = ("buy", "sell") if t.side is PositionSide.LONG else ("sell", "buy")
        rows.append(
            (f"{t.position_id}-in", t.entry_ts, t.symbol, entry_side, t.size, t.entry_price)
        )
        if t.position_id == "p1":
            rows.append(("p1-tp1", at(3, 2), t.symbol, exit_side, 0.5, 102.0))
            rows.append(("p1-tp2", t.exit_ts, t.symbol, exit_side, 0.5, 104.0))
        else:
            rows.append(
                (f"{t.position_id}-out", t.exit_ts, t.symbol, exit_side, t.size, t.exit_price)
            )
    schema = {
        "fill_id": pl.String,
        "ts": TS,
        "symbol": pl.String,
        "side": pl.String,
        "size": pl.Float64,
        "price": pl.Float64,
    }
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.with_columns(
        fee=pl.lit(0.01),
        position_id=pl.col("fill_id").str.split("-").list.first(),
    )


def build_result(
    trades=TRADES,
    *,
    markets=("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"),
    errors=None,
    status=RunStatus.COMPLETE,
    funnel=True,
    end=END,
) -> BacktestResult:
    equity = step_equity(trades, end=end)
    metrics = compute_metrics(trades, EquityCurve.from_frame(equity))
    run = BacktestRun(
        run_id="bt-test-0001",
        config_hash="0123456789abcdef",
        config={},
        data_dir="/data/binance-usdm",
        start=START,
        end=end,
        markets=tuple(markets),
        code_version="0.1.0+test",
        fill_model=FILL_MODEL,
        initial_equity=INITIAL,
        status=status,
        duration_s=4.25,
        market_errors=dict(errors or {}),
    )
    decisions = pl.DataFrame(
        {"symbol": ["BTCUSDT"] * DECISIONS, "reason": [None] * DECISIONS}
        if funnel
        else {"symbol": [], "reason": []},
        schema={"symbol": pl.String, "reason": pl.String},
    )
    funnel_frame = pl.DataFrame(
        {"gate": list(GATES), "rejections": list(REJECTIONS)}
        if funnel
        else {"gate": [], "rejections": []},
        schema={"gate": pl.String, "rejections": pl.Int64},
    )
    return BacktestResult(
        run=run,
        trades=tuple(trades),
        metrics=metrics,
        equity=equity,
        decisions=decisions,
        signals=pl.DataFrame(),
        intents=pl.DataFrame(),
        fills=fills_of(trades),
        funnel=funnel_frame,
    )


def synthetic_candles(base: float, start=START, bars=240, seed=1) -> pl.DataFrame:
    """4h candles: two overlapping waves and noise, so swings and breaks of structure occur."""
    rng = np.random.default_rng(seed)
    i = np.arange(bars)
    mid = base * (1 + 0.08 * np.sin(i / 9) + 0.03 * np.sin(i / 2.3) + 0.0004 * i)
    close = mid * (1 + rng.normal(0, 0.004, bars))
    open_ = np.concatenate(([mid[0]], close[:-1]))
    wick = np.abs(rng.normal(0, 0.006, bars)) * base
    high = np.maximum(open_, close) + wick
    low = np.minimum(open_, close) - wick
    ts = [start + timedelta(hours=4 * k) for k in range(bars)]
    assert all(math.isfinite(v) for v in close)
    return pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=TS),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
        }
    )
