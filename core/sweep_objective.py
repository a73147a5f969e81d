"""One backtest window's small result record, figures pooled over windows, and the objective.

A sweep runs each configuration on several windows (the walk-forward folds' in-sample and
out-of-sample ranges). Workers send back a WindowResult per backtest: a few numbers, the
trades' P&L and R, and the daily returns of the equity (a few hundred floats, never a
frame). The flow pools windows into one figure set per sample (`pool`) and scores it with
the chosen objective (`score`), None when the sample has fewer trades than asked for.

Pooling conventions (docs in README "Sweeps"): trades, wins and per-trade figures over
all trades of the windows; trades per month over the windows' total span; daily returns
concatenated in window order (Sharpe as core/metrics: mean / sample std x sqrt(365));
the compounded return is the product of (1 + daily return); max drawdown is the larger
of the worst window's hourly drawdown and the drawdown of the stitched daily index.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from core.backtest_result import BacktestResult
from core.metrics import (
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    SECONDS_PER_DAY,
    BacktestMetrics,
    EquityCurve,
    daily_returns,
    sharpe_ratio,
)


class Objective(StrEnum):
    """What `best` maximises in sample."""

    EXPECTANCY = "expectancy"  # mean net P&L per trade, USD
    SHARPE = "sharpe"  # daily, annualised
    CALMAR = "calmar"  # CAGR / max drawdown
    PROFIT_DRAWDOWN = "profit_drawdown"  # compounded return / max drawdown


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One backtest of one configuration on one window [start, end] of decisions."""

    config_hash: str
    start: datetime
    end: datetime
    trades: int
    pnl: tuple[float, ...]  # every closed trade's net P&L, USD, in exit order
    r: tuple[float, ...]  # R multiples of the trades with a known risk
    daily: tuple[float, ...]  # daily returns of the equity (core/metrics.daily_returns)
    span_days: float
    initial_equity: float
    final_equity: float
    max_drawdown_pct: float
    sharpe: float | None
    calmar: float | None
    trades_per_month: float | None
    expectancy_usd: float | None
    market_bars: int  # decision hours x markets
    duration_s: float
    digest: str  # sha256 of the trades and the equity marks: equal runs, equal digests

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        out["pnl"], out["r"], out["daily"] = list(self.pnl), list(self.r), list(self.daily)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> WindowResult:
        raw = dict(raw)
        raw["start"] = datetime.fromisoformat(raw["start"])
        raw["end"] = datetime.fromisoformat(raw["end"])
        for key in ("pnl", "r", "daily"):
            raw[key] = tuple(float(v) for v in raw[key])
        return cls(**raw)


def run_digest(result: BacktestResult) -> str:
    """A fingerprint of what a backtest did (its trades and hourly equity), for equality."""
    trades = [
        [t.symbol, str(t.side), t.entry_ts.isoformat(), t.exit_ts.isoformat(),
         round(t.entry_price, 10), round(t.exit_price, 10), round(t.size, 10), round(t.pnl, 8)]
        for t in result.trades
    ]
    marks = [round(float(v), 8) for v in result.equity["equity"]] if result.equity.height else []
    text = json.dumps({"trades": trades, "equity": marks}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def summarize(result: BacktestResult, config_hash: str, markets: int) -> WindowResult:
    """The small record a worker returns for one finished backtest."""
    m = result.metrics
    curve = EquityCurve.from_frame(result.equity)
    return WindowResult(
        config_hash=config_hash,
        start=result.run.start,
        end=result.run.end,
        trades=m.trades,
        pnl=tuple(t.pnl for t in result.trades),
        r=tuple(t.r_multiple for t in result.trades if t.r_multiple is not None),
        daily=tuple(float(x) for x in daily_returns(curve)),
        span_days=curve.span.total_seconds() / SECONDS_PER_DAY,
        initial_equity=m.initial_equity,
        final_equity=m.final_equity,
        max_drawdown_pct=m.max_drawdown_pct,
        sharpe=m.sharpe,
        calmar=m.calmar,
        trades_per_month=m.trades_per_month,
        expectancy_usd=m.expectancy_usd,
        market_bars=len(curve.ts) * markets,
        duration_s=result.run.duration_s or 0.0,
        digest=run_digest(result),
    )


@dataclass(frozen=True, slots=True)
class SampleFigures:
    """A variant's figures on one sample; money figures are net of fees and funding."""

    trades: int
    trades_per_month: float | None
    win_rate: float | None
    expectancy_usd: float | None
    expectancy_r: float | None
    max_drawdown_pct: float | None
    sharpe: float | None  # daily, annualised (core/metrics.py)

    @classmethod
    def from_metrics(cls, metrics: BacktestMetrics) -> SampleFigures:
        """The figures of one backtest (or of the folds' backtests merged by the sweep)."""
        return cls(
            trades=metrics.trades,
            trades_per_month=metrics.trades_per_month,
            win_rate=metrics.win_rate,
            expectancy_usd=metrics.expectancy_usd,
            expectancy_r=metrics.expectancy_r,
            max_drawdown_pct=metrics.max_drawdown_pct,
            sharpe=metrics.sharpe,
        )


@dataclass(frozen=True, slots=True)
class Pooled:
    """One sample's figures over its windows: the report's SampleFigures and more."""

    windows: int
    trades: int
    trades_per_month: float | None
    win_rate: float | None
    expectancy_usd: float | None
    expectancy_r: float | None
    max_drawdown_pct: float | None
    sharpe: float | None
    net_return: float  # compounded over the windows' daily returns
    cagr: float | None
    calmar: float | None
    profit_drawdown: float | None
    days: float
    daily: tuple[float, ...]

    def figures(self) -> SampleFigures:
        """The figures the sweep report prints."""
        return SampleFigures(**{f.name: getattr(self, f.name) for f in fields(SampleFigures)})


def pool(windows: Sequence[WindowResult]) -> Pooled:
    """The windows' figures pooled (module docstring); windows in time order."""
    pnl = np.array([p for w in windows for p in w.pnl], dtype=float)
    r = np.array([x for w in windows for x in w.r], dtype=float)
    daily = np.array([d for w in windows for d in w.daily], dtype=float)
    days = sum(w.span_days for w in windows)
    growth = float(np.prod(1 + daily)) if len(daily) else 1.0
    drawdown = max([w.max_drawdown_pct for w in windows] + [_index_drawdown(daily)], default=0.0)
    cagr = growth ** (DAYS_PER_YEAR / days) - 1 if days > 0 and growth > 0 else None
    trades = len(pnl)
    return Pooled(
        windows=len(windows),
        trades=trades,
        trades_per_month=trades / (days / DAYS_PER_MONTH) if days > 0 else None,
        win_rate=float((pnl > 0).sum()) / trades if trades else None,
        expectancy_usd=float(pnl.mean()) if trades else None,
        expectancy_r=float(r.mean()) if len(r) else None,
        max_drawdown_pct=drawdown if windows else None,
        sharpe=sharpe_ratio(daily),
        net_return=growth - 1,
        cagr=cagr,
        calmar=cagr / drawdown if cagr is not None and drawdown > 0 else None,
        profit_drawdown=(growth - 1) / drawdown if drawdown > 0 else None,
        days=days,
        daily=tuple(float(x) for x in daily),
    )


def _index_drawdown(daily: np.ndarray) -> float:
    if not len(daily):
        return 0.0
    index = np.concatenate([[1.0], np.cumprod(1 + daily)])
    peaks = np.maximum.accumulate(index)
    return float(((peaks - index) / peaks).max())


def score(sample: Pooled, objective: Objective, min_trades: int) -> float | None:
    """The objective's value; None (does not qualify) under min_trades or when undefined."""
    if sample.trades < min_trades:
        return None
    value = {
        Objective.EXPECTANCY: sample.expectancy_usd,
        Objective.SHARPE: sample.sharpe,
        Objective.CALMAR: sample.calmar,
        Objective.PROFIT_DRAWDOWN: sample.profit_drawdown,
    }[objective]
    return value if value is not None and math.isfinite(value) else None
