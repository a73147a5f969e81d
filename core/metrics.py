"""Backtest report metrics from closed trades and an equity curve (docs/METRICS.md).

Pure arithmetic over a finished run: no I/O, no clock. Every figure that is not
defined for the input (no trades, a flat curve, a zero deviation) is None, never
NaN or an exception, so a report prints "n/a" and a store writes NULL.

Conventions: money in USD; `_pct` fields are fractions (0.125 = 12.5 %), as in
the config models; a year is 365 days and a month 365/12 days (crypto trades
every day); the Sharpe and Sortino ratios use daily returns of the curve
resampled to UTC days, annualised by sqrt(365), risk-free rate 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import TypeVar

import numpy as np
import polars as pl

from core.orders import PositionSide

E = TypeVar("E", bound=StrEnum)
DAYS_PER_YEAR = 365.0
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0
SECONDS_PER_DAY = 86_400


class ExitReason(StrEnum):
    """What closed a position (its final exit)."""

    STOP = "stop"
    TP1 = "tp1"
    TP2 = "tp2"
    TP3 = "tp3"
    KILL_SWITCH = "kill_switch"
    END_OF_DATA = "end_of_data"
    FLATTEN = "flatten"
    UNKNOWN = "unknown"


def _require_utc(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError(f"{name} {value!r} must be a timezone-aware UTC datetime")


def _enum(kind: type[E], value: object, name: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} unknown: use one of {[str(k) for k in kind]}") from None


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One position from entry to flat. Money in USD; fees and funding positive = paid."""

    position_id: str
    symbol: str
    side: PositionSide
    entry_ts: datetime
    exit_ts: datetime
    entry_price: float
    exit_price: float  # volume-weighted over all exits
    size: float  # base units
    pnl: float  # net of fees and funding
    fees: float
    funding: float
    risk: float  # |entry - initial stop| x size at entry; 0 = unknown (imported position)
    exit_reason: ExitReason

    def __post_init__(self) -> None:
        where = f"trade {self.position_id} ({self.symbol})"
        # rows read back from a store carry plain strings: coerce once, refuse unknown ones
        object.__setattr__(self, "side", _enum(PositionSide, self.side, f"{where}: side"))
        object.__setattr__(
            self, "exit_reason", _enum(ExitReason, self.exit_reason, f"{where}: exit_reason")
        )
        _require_utc(f"{where}: entry_ts", self.entry_ts)
        _require_utc(f"{where}: exit_ts", self.exit_ts)
        if self.exit_ts < self.entry_ts:
            raise ValueError(f"{where}: exit_ts {self.exit_ts} is before entry_ts {self.entry_ts}")
        money = {"pnl": self.pnl, "fees": self.fees, "funding": self.funding, "risk": self.risk}
        for name, value in money.items():
            if not math.isfinite(value):
                raise ValueError(f"{where}: {name} is {value}, must be a finite number")
        if self.risk < 0:
            raise ValueError(f"{where}: risk {self.risk} is negative; give |entry - stop| x size")
        if not (self.size > 0 and self.entry_price > 0 and self.exit_price > 0):
            raise ValueError(f"{where}: size and prices must be positive")

    @property
    def r_multiple(self) -> float | None:
        """pnl / risk; None when the risk at entry is unknown (0)."""
        return self.pnl / self.risk if self.risk > 0 else None

    @property
    def hold(self) -> timedelta:
        return self.exit_ts - self.entry_ts


@dataclass(frozen=True, slots=True)
class EquityCurve:
    """Account equity marks (hourly in a backtest), strictly increasing UTC times."""

    ts: tuple[datetime, ...]
    equity: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.ts:
            raise ValueError("equity curve is empty: give at least the starting equity mark")
        if len(self.ts) != len(self.equity):
            raise ValueError(
                f"equity curve has {len(self.ts)} timestamps but {len(self.equity)} values"
            )
        for t in self.ts:
            _require_utc("equity curve ts", t)
        if any(b <= a for a, b in pairwise(self.ts)):
            raise ValueError("equity curve timestamps must be strictly increasing")
        if not all(math.isfinite(v) for v in self.equity):
            raise ValueError("equity curve holds a non-finite value (NaN or inf)")

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> EquityCurve:
        """From a frame with columns ts (UTC datetime) and equity; sorted by ts here."""
        missing = {"ts", "equity"} - set(frame.columns)
        if missing:
            raise ValueError(f"equity frame lacks columns {sorted(missing)}")
        frame = frame.sort("ts")
        return cls(tuple(frame["ts"].to_list()), tuple(float(v) for v in frame["equity"]))

    @property
    def span(self) -> timedelta:
        return self.ts[-1] - self.ts[0]


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """One row of a per-market / per-exit-reason / per-month table."""

    key: str  # symbol, exit reason, or month "YYYY-MM" (of the exit)
    trades: int
    wins: int
    win_rate: float | None  # wins / trades; None without trades
    net_pnl: float  # sum of trade pnl, USD
    expectancy_r: float | None  # mean R over trades with a known risk


@dataclass(frozen=True, slots=True)
class BacktestMetrics:
    """The backtest report's figures; None = not defined for this input (printed n/a).

    start, end: first and last equity mark; initial_equity, final_equity: their values.
    net_profit_usd: final_equity - initial_equity (fees and funding included).
    net_profit_pct: net_profit_usd / initial_equity (fraction); None if initial <= 0.
    cagr: (final/initial)^(365 d / span) - 1; None for a zero span or initial <= 0; -1 if ruined.
    max_drawdown_usd: largest peak - equity over the marks, the peak running from the start.
    max_drawdown_pct: largest (peak - equity) / peak over the marks (may be another dip).
    sharpe: mean / sample std of daily returns x sqrt(365), risk-free 0; None: <2 days, std 0.
    sortino: mean daily return / sqrt(mean(min(r,0)^2)) x sqrt(365); None: <2 days, no loss.
    calmar: cagr / max_drawdown_pct; None when cagr is None or the drawdown is 0.
    trades: closed positions; r_trades: those with a known risk (risk > 0).
    gross_profit, gross_loss: sum of positive pnl, minus the sum of negative pnl (both >= 0).
    profit_factor: gross_profit / gross_loss; None (not inf) when there is no losing trade.
    expectancy_usd: mean pnl per trade; None without trades.
    expectancy_r: mean of pnl / risk over r_trades; None without them.
    win_rate: trades with pnl > 0 / trades (break-even is not a win); None without trades.
    sqn: sqrt(r_trades) x mean R / sample std R; None under 2 R trades or a zero std.
    trades_per_month: trades / (span in days / (365/12)); None for a zero span.
    average_hold: mean of exit_ts - entry_ts; None without trades.
    longest_flat: longest time within [start, end] with no position open in any market.
    fees_paid, funding_paid: sums over the trades, USD, positive = paid.
    by_market, by_exit_reason, by_month: BreakdownRow tables (month of the exit; all months).
    """

    start: datetime
    end: datetime
    initial_equity: float
    final_equity: float
    net_profit_usd: float
    net_profit_pct: float | None
    cagr: float | None
    max_drawdown_usd: float
    max_drawdown_pct: float
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    trades: int
    r_trades: int
    gross_profit: float
    gross_loss: float
    profit_factor: float | None
    expectancy_usd: float | None
    expectancy_r: float | None
    win_rate: float | None
    sqn: float | None
    trades_per_month: float | None
    average_hold: timedelta | None
    longest_flat: timedelta
    fees_paid: float
    funding_paid: float
    by_market: tuple[BreakdownRow, ...]
    by_exit_reason: tuple[BreakdownRow, ...]
    by_month: tuple[BreakdownRow, ...]


def compute_metrics(trades: Sequence[TradeRecord], curve: EquityCurve) -> BacktestMetrics:
    """All report metrics of one run. Refuses nothing valid: undefined figures are None."""
    pnl = np.array([t.pnl for t in trades], dtype=float)
    r = np.array([t.r_multiple for t in trades if t.r_multiple is not None], dtype=float)
    initial, final = curve.equity[0], curve.equity[-1]
    net = final - initial
    gross_profit = float(pnl[pnl > 0].sum())
    gross_loss = float(-pnl[pnl < 0].sum())
    cagr = compound_annual_growth(initial, final, curve.span)
    dd_usd, dd_pct = max_drawdown(curve.equity)
    daily = daily_returns(curve)
    return BacktestMetrics(
        start=curve.ts[0],
        end=curve.ts[-1],
        initial_equity=initial,
        final_equity=final,
        net_profit_usd=net,
        net_profit_pct=net / initial if initial > 0 else None,
        cagr=cagr,
        max_drawdown_usd=dd_usd,
        max_drawdown_pct=dd_pct,
        sharpe=sharpe_ratio(daily),
        sortino=sortino_ratio(daily),
        calmar=cagr / dd_pct if cagr is not None and dd_pct > 0 else None,
        trades=len(trades),
        r_trades=len(r),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=gross_profit / gross_loss if gross_loss > 0 else None,
        expectancy_usd=float(pnl.mean()) if len(pnl) else None,
        expectancy_r=float(r.mean()) if len(r) else None,
        win_rate=float((pnl > 0).mean()) if len(pnl) else None,
        sqn=system_quality_number(r),
        trades_per_month=_per_month(len(trades), curve.span),
        average_hold=_average_hold(trades),
        longest_flat=longest_flat_spell(trades, curve.ts[0], curve.ts[-1]),
        fees_paid=float(sum(t.fees for t in trades)),
        funding_paid=float(sum(t.funding for t in trades)),
        by_market=breakdown(trades, lambda t: t.symbol, sorted({t.symbol for t in trades})),
        by_exit_reason=breakdown(
            trades, lambda t: str(t.exit_reason), [x for x in ExitReason if _any(trades, x)]
        ),
        by_month=breakdown(trades, lambda t: _month(t.exit_ts), _months(trades, curve)),
    )


def compound_annual_growth(initial: float, final: float, span: timedelta) -> float | None:
    """(final/initial)^(365 d / span) - 1; None for a zero span or initial <= 0; -1 if ruined."""
    days = span.total_seconds() / SECONDS_PER_DAY
    if days <= 0 or initial <= 0:
        return None
    if final <= 0:
        return -1.0
    return float((final / initial) ** (DAYS_PER_YEAR / days) - 1.0)


def max_drawdown(equity: Sequence[float]) -> tuple[float, float]:
    """(largest peak - equity in USD, largest (peak - equity) / peak) over the marks; 0 if none."""
    values = np.asarray(equity, dtype=float)
    peak = np.maximum.accumulate(values)
    drop = peak - values
    share = np.divide(drop, peak, out=np.zeros_like(drop), where=peak > 0)
    return float(drop.max()), float(share.max())


def daily_returns(curve: EquityCurve) -> np.ndarray:
    """Returns of daily equity: the first mark, then the last mark of every UTC day of the span.

    A day without marks carries the previous day's close (a 0 return). Empty when the
    account is ruined (a daily equity <= 0), because a return after ruin means nothing.
    """
    secs = np.array([t.timestamp() for t in curve.ts], dtype=float)
    day = np.floor(secs / SECONDS_PER_DAY).astype(np.int64)
    calendar = np.arange(day[0], day[-1] + 1)
    last_mark_of_day = np.searchsorted(day, calendar, side="right") - 1
    values = np.asarray(curve.equity, dtype=float)
    series = np.concatenate(([values[0]], values[last_mark_of_day]))
    if (series <= 0).any():
        return np.array([], dtype=float)
    return series[1:] / series[:-1] - 1.0


def sharpe_ratio(daily: np.ndarray) -> float | None:
    """mean / sample std (ddof 1) x sqrt(365), risk-free 0; None under 2 returns or a zero std."""
    if len(daily) < 2:
        return None
    std = float(np.std(daily, ddof=1))
    if std == 0:
        return None
    return float(daily.mean()) / std * math.sqrt(DAYS_PER_YEAR)


def sortino_ratio(daily: np.ndarray) -> float | None:
    """mean / sqrt(mean(min(r, 0)^2)) x sqrt(365), target 0; None under 2 returns or no loss day."""
    if len(daily) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(daily, 0.0) ** 2)))
    if downside == 0:
        return None
    return float(daily.mean()) / downside * math.sqrt(DAYS_PER_YEAR)


def system_quality_number(r: np.ndarray) -> float | None:
    """sqrt(N) x mean R / sample std R (Van Tharp, uncapped N); None under 2 trades or zero std."""
    if len(r) < 2:
        return None
    std = float(np.std(r, ddof=1))
    if std == 0:
        return None
    return math.sqrt(len(r)) * float(r.mean()) / std


def longest_flat_spell(trades: Sequence[TradeRecord], start: datetime, end: datetime) -> timedelta:
    """Longest part of [start, end] outside every [entry_ts, exit_ts] of the trades (any market)."""
    longest = timedelta(0)
    flat_since = start
    for trade in sorted(trades, key=lambda t: t.entry_ts):
        entry, exit_ = max(trade.entry_ts, start), min(trade.exit_ts, end)
        if exit_ < start or entry > end:
            continue
        longest = max(longest, entry - flat_since)
        flat_since = max(flat_since, exit_)
    return max(longest, end - flat_since)


def breakdown(
    trades: Sequence[TradeRecord], key: Callable[[TradeRecord], str], keys: Iterable[str]
) -> tuple[BreakdownRow, ...]:
    """One row per key, in the order given (a key without trades gives a row of zeros)."""
    groups: dict[str, list[TradeRecord]] = {k: [] for k in keys}
    for trade in trades:
        groups.setdefault(key(trade), []).append(trade)
    return tuple(_row(k, group) for k, group in groups.items())


def _row(key: str, group: list[TradeRecord]) -> BreakdownRow:
    wins = sum(1 for t in group if t.pnl > 0)
    r = [t.r_multiple for t in group if t.r_multiple is not None]
    return BreakdownRow(
        key=key,
        trades=len(group),
        wins=wins,
        win_rate=wins / len(group) if group else None,
        net_pnl=float(sum(t.pnl for t in group)),
        expectancy_r=float(np.mean(r)) if r else None,
    )


def _any(trades: Sequence[TradeRecord], reason: ExitReason) -> bool:
    return any(t.exit_reason is reason for t in trades)


def _month(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m")


def _months(trades: Sequence[TradeRecord], curve: EquityCurve) -> list[str]:
    """Every calendar month from the curve's first to its last mark, plus any trade's exit month."""
    first, last = curve.ts[0].astimezone(UTC), curve.ts[-1].astimezone(UTC)
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    extra = {_month(t.exit_ts) for t in trades} - set(months)
    return sorted([*months, *extra])


def _per_month(count: int, span: timedelta) -> float | None:
    days = span.total_seconds() / SECONDS_PER_DAY
    return count / (days / DAYS_PER_MONTH) if days > 0 else None


def _average_hold(trades: Sequence[TradeRecord]) -> timedelta | None:
    if not trades:
        return None
    return sum((t.hold for t in trades), timedelta(0)) / len(trades)
