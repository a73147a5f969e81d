"""Invariant monitor (SPEC §8): the account after a cycle, checked against SafetyConfig.

Pure: an `AccountSnapshot` in, an `InvariantReport` out. Every threshold is read
from `SafetyConfig` by its field name (the rules table below), never restated.

Boundaries, decided once and tested:
- margin utilisation and drawdown: a level is reached AT OR ABOVE it (0.92 HALTs,
  0.85 DEGRADEs). The config proves the auction budget sits strictly below the
  halt level, so a full auction is DEGRADED, never HALTED (the seed's outage 1).
- concurrent positions: HALT only ABOVE the maximum (10 open is allowed; the
  risk manager refuses the 11th pre-trade, so 11 open means a gate was bypassed).
- largest position: WARN only ABOVE its share of equity (the risk manager clamps
  a notional to exactly that share, so "at" is the intended state).
- equity at or below zero: HALT; the ratio checks are then not computed.

Comparisons are exact: amounts and levels are taken as the decimals they print as
(what the exchange sent, what the operator wrote), so 92 / 100 is 0.92, not a
binary neighbour of it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

from schemas.config import SafetyConfig


class Verdict(StrEnum):
    OK = "OK"
    WARN = "WARN"
    DEGRADED = "DEGRADED"
    HALT = "HALT"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Verdict.OK: 0, Verdict.WARN: 1, Verdict.DEGRADED: 2, Verdict.HALT: 3}


class InvariantName(StrEnum):
    EQUITY = "equity"
    MARGIN_UTILIZATION = "margin_utilization"
    LARGEST_POSITION = "largest_position_pct_equity"
    DRAWDOWN = "equity_drawdown"
    CONCURRENT_POSITIONS = "concurrent_positions"
    UNPROTECTED = "unprotected_cycles"  # most cycle ends in a row a position had no stop


class Bound(StrEnum):
    """How a value meets a level."""

    AT_OR_ABOVE = ">="
    ABOVE = ">"
    AT_OR_BELOW = "<="

    def reached(self, value: Fraction, level: Fraction) -> bool:
        if self is Bound.AT_OR_ABOVE:
            return value >= level
        if self is Bound.ABOVE:
            return value > level
        return value <= level


@dataclass(frozen=True, slots=True)
class Rule:
    """One level of one invariant: reaching `parameter`'s value by `bound` yields `verdict`."""

    verdict: Verdict
    parameter: str | None  # SafetyConfig field; None for the fixed equity floor
    bound: Bound


# The rules as data, most severe first; the first level reached decides the verdict.
RULES: dict[InvariantName, tuple[Rule, ...]] = {
    InvariantName.EQUITY: (Rule(Verdict.HALT, None, Bound.AT_OR_BELOW),),
    InvariantName.MARGIN_UTILIZATION: (
        Rule(Verdict.HALT, "max_margin_utilization_pct", Bound.AT_OR_ABOVE),
        Rule(Verdict.DEGRADED, "degraded_margin_utilization_pct", Bound.AT_OR_ABOVE),
    ),
    InvariantName.DRAWDOWN: (
        Rule(Verdict.HALT, "max_equity_drawdown_pct", Bound.AT_OR_ABOVE),
        Rule(Verdict.DEGRADED, "degraded_equity_drawdown_pct", Bound.AT_OR_ABOVE),
    ),
    InvariantName.CONCURRENT_POSITIONS: (
        Rule(Verdict.HALT, "max_concurrent_positions", Bound.ABOVE),
    ),
    InvariantName.LARGEST_POSITION: (
        Rule(Verdict.WARN, "max_single_position_pct_equity", Bound.ABOVE),
    ),
    InvariantName.UNPROTECTED: (
        Rule(Verdict.HALT, "max_unprotected_cycles", Bound.AT_OR_ABOVE),
        Rule(Verdict.DEGRADED, "degraded_unprotected_cycles", Bound.AT_OR_ABOVE),
    ),
}

_EQUITY_FLOOR = 0.0  # not a tunable: no ratio means anything once equity is gone


@dataclass(frozen=True, slots=True)
class PositionExposure:
    symbol: str
    notional: float  # settlement currency; the sign is ignored (shorts may be negative)


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The account as the venue reports it after reconciliation.

    Refuses (ValueError) non-finite amounts, negative margin, a negative high-water
    mark and a naive timestamp: those are adapter bugs, not account states.
    """

    equity: float
    margin_used: float
    equity_high_water: float  # persisted by the caller; 0.0 before the first cycle
    positions: tuple[PositionExposure, ...]
    ts: datetime
    unprotected_cycles: int = 0  # the longest run of cycle ends an open position had no stop

    @property
    def margin_utilization(self) -> float | None:
        """Margin in use as a share of equity; None without equity."""
        return self.margin_used / self.equity if self.equity > 0 else None

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", tuple(self.positions))
        amounts = {
            "equity": self.equity,
            "margin_used": self.margin_used,
            "equity_high_water": self.equity_high_water,
            **{f"notional of {p.symbol}": p.notional for p in self.positions},
        }
        for name, value in amounts.items():
            if not math.isfinite(value):
                raise ValueError(f"account snapshot: {name} must be a finite number, got {value}")
        if self.margin_used < 0 or self.equity_high_water < 0:
            raise ValueError(
                f"account snapshot: margin_used ({self.margin_used}) and equity_high_water "
                f"({self.equity_high_water}) must not be negative"
            )
        if self.ts.tzinfo is None:
            raise ValueError(f"account snapshot: ts {self.ts} must be timezone-aware (UTC)")


@dataclass(frozen=True, slots=True)
class Threshold:
    verdict: Verdict
    parameter: str | None
    bound: Bound
    level: float


@dataclass(frozen=True, slots=True)
class InvariantCheck:
    """One invariant: its value, the levels it was compared with, and the verdict."""

    name: InvariantName
    value: float
    thresholds: tuple[Threshold, ...]
    verdict: Verdict

    @property
    def breached(self) -> Threshold | None:
        """The level that produced a non-OK verdict, if any."""
        return next((t for t in self.thresholds if t.verdict is self.verdict), None)

    def describe(self) -> str:
        """'margin_utilization 0.9300 >= 0.92 (max_margin_utilization_pct): HALT'."""
        t = self.breached
        if t is None:
            return f"{self.name} {format_value(self.name, self.value)}: OK"
        param = f" ({t.parameter})" if t.parameter else ""
        return (
            f"{self.name} {format_value(self.name, self.value)} {t.bound} "
            f"{format_value(self.name, t.level)}{param}: {self.verdict}"
        )


@dataclass(frozen=True, slots=True)
class InvariantReport:
    """Every check of one snapshot; `equity_high_water` is the updated mark to persist."""

    ts: datetime
    checks: tuple[InvariantCheck, ...]
    equity_high_water: float
    values: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        """The most severe verdict of all checks."""
        return max((c.verdict for c in self.checks), key=_SEVERITY.__getitem__, default=Verdict.OK)

    def with_verdict(self, verdict: Verdict) -> tuple[InvariantCheck, ...]:
        return tuple(c for c in self.checks if c.verdict is verdict)

    def cause(self, verdict: Verdict) -> str:
        """The checks with this verdict, described; '' when none."""
        return "; ".join(c.describe() for c in self.with_verdict(verdict))


def update_high_water(previous: float | None, equity: float) -> float:
    """The equity high-water mark after seeing `equity`: never lower than `previous`.

    Refuses (ValueError) a non-finite equity: a NaN must never reset the mark.
    """
    if not math.isfinite(equity):
        raise ValueError(f"high-water mark: equity must be finite, got {equity}")
    base = 0.0 if previous is None else previous
    return max(base, equity)


def check_invariants(account: AccountSnapshot, safety: SafetyConfig) -> InvariantReport:
    """Check the account against the SPEC §8 thresholds of `safety`.

    Returns every check with its value, levels and verdict. Equity at or below zero
    is a HALT and the ratio checks are skipped (they would divide by it).
    """
    high_water = update_high_water(account.equity_high_water, account.equity)
    checks = [_check(InvariantName.EQUITY, _exact(account.equity), safety)]
    if account.equity > _EQUITY_FLOOR:
        checks += _ratio_checks(account, high_water, safety)
    checks.append(
        _check(InvariantName.CONCURRENT_POSITIONS, Fraction(len(account.positions)), safety)
    )
    checks.append(_check(InvariantName.UNPROTECTED, Fraction(account.unprotected_cycles), safety))
    return InvariantReport(
        ts=account.ts,
        checks=tuple(checks),
        equity_high_water=high_water,
        values={c.name.value: c.value for c in checks},
    )


def _ratio_checks(
    account: AccountSnapshot, high_water: float, safety: SafetyConfig
) -> Iterable[InvariantCheck]:
    equity = _exact(account.equity)
    largest = max((abs(_exact(p.notional)) for p in account.positions), default=Fraction(0))
    # high_water >= equity > 0 here, so the drawdown is in [0, 1).
    peak = _exact(high_water)
    return (
        _check(InvariantName.MARGIN_UTILIZATION, _exact(account.margin_used) / equity, safety),
        _check(InvariantName.DRAWDOWN, (peak - equity) / peak, safety),
        _check(InvariantName.LARGEST_POSITION, largest / equity, safety),
    )


def _check(name: InvariantName, value: Fraction, safety: SafetyConfig) -> InvariantCheck:
    thresholds = tuple(
        Threshold(rule.verdict, rule.parameter, rule.bound, _level(rule, safety))
        for rule in RULES[name]
    )
    verdict = next(
        (t.verdict for t in thresholds if t.bound.reached(value, _exact(t.level))), Verdict.OK
    )
    return InvariantCheck(name=name, value=float(value), thresholds=thresholds, verdict=verdict)


def _level(rule: Rule, safety: SafetyConfig) -> float:
    if rule.parameter is None:
        return _EQUITY_FLOOR
    return float(getattr(safety, rule.parameter))


@functools.lru_cache(maxsize=4096)  # levels and an unchanged equity recur every cycle
def _exact(x: float) -> Fraction:
    # The decimal a float prints as: what the exchange sent or the operator wrote.
    return Fraction(repr(float(x)))


def format_value(name: InvariantName, value: float) -> str:
    """Counts as integers, equity in currency units, ratios with four decimals."""
    if name in (InvariantName.CONCURRENT_POSITIONS, InvariantName.UNPROTECTED):
        return str(int(value))
    if name is InvariantName.EQUITY:
        return f"{value:.2f}"
    return f"{value:.4f}"
