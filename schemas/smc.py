"""Frames of the SMC engine (core/smc): features, the gate trace, and signals.

`SmcSignals` is `schemas.signals.Signals` (the auction's contract, unchanged)
plus the optional columns the engine adds.
"""

from __future__ import annotations

from typing import Any, Optional

import pandera.polars as pa
import polars as pl

from schemas.frames import UtcTs
from schemas.signals import Signals

DIRECTION = [-1, 0, 1]
REGIMES = ["tight_smc", "no_structure", "volatile", "choppy", "weak_impulse", "extended"]
OUTCOMES = ["pass", "fail", "skipped", "off"]


def _nullable() -> Any:
    """A fresh nullable field (pandera binds each Field object to one column)."""
    return pa.Field(nullable=True)


class Features(pa.DataFrameModel):
    """One row per bar: the market as known at the bar's close (`known_at`)."""

    symbol: Optional[str] = pa.Field(description="present in multi-market frames")  # noqa: UP045
    ts: UtcTs = pa.Field(description="candle open, UTC")  # type: ignore[valid-type]
    open: float = pa.Field(gt=0)
    high: float = pa.Field(gt=0)
    low: float = pa.Field(gt=0)
    close: float = pa.Field(gt=0)
    volume: float = pa.Field(ge=0)
    known_at: UtcTs = pa.Field(description="ts + timeframe: when every column is known")  # type: ignore[valid-type]
    atr: float = pa.Field(nullable=True, ge=0, description="mean true range, atr_period bars")
    ema: float = pa.Field(nullable=True, gt=0, description="ema_period EMA of close")
    bias: pl.Int8 = pa.Field(nullable=True, isin=DIRECTION, description="sign(close - ema)")
    swing_high_confirmed: bool = pa.Field(description="a swing high got confirmed on this bar")
    swing_low_confirmed: bool
    swing_high: float = pa.Field(nullable=True, description="latest confirmed swing high level")
    swing_high_ts: UtcTs = pa.Field(nullable=True, description="its pivot bar")  # type: ignore[valid-type]
    swing_low: float = _nullable()
    swing_low_ts: UtcTs = pa.Field(nullable=True)  # type: ignore[valid-type]
    bos: pl.Int8 = pa.Field(isin=DIRECTION, description="break of structure on this bar")
    choch: pl.Int8 = pa.Field(isin=DIRECTION, description="change of character on this bar")
    break_level: float = pa.Field(nullable=True, description="level broken on this bar")
    trend: pl.Int8 = pa.Field(isin=DIRECTION, description="direction of the valid structure")
    structure_kind: str = pa.Field(nullable=True, isin=["BOS", "CHOCH"])
    structure_level: float = pa.Field(nullable=True, description="level the valid break broke")
    bars_since_break: pl.Int32 = pa.Field(nullable=True, ge=0)
    choch_count: pl.Int32 = pa.Field(ge=0, description="CHoCH in the last regime_window_bars")
    leg_start: float = pa.Field(nullable=True, description="impulse leg start (invalidation)")
    leg_start_ts: UtcTs = pa.Field(nullable=True)  # type: ignore[valid-type]
    leg_end: float = pa.Field(nullable=True, description="impulse leg extreme so far")
    leg_swept_liquidity: bool = pa.Field(nullable=True)
    fib_0_5: float = _nullable()
    fib_0_618: float = _nullable()
    fib_0_705: float = _nullable()
    fib_0_786: float = _nullable()
    ote_top: float = _nullable()
    ote_bottom: float = _nullable()
    retracement: float = pa.Field(nullable=True, description="close's retracement of the leg")
    ob_top: float = _nullable()
    ob_bottom: float = _nullable()
    fvg: pl.Int8 = pa.Field(isin=DIRECTION, description="FVG completed on this bar")
    fvg_bull_top: float = _nullable()
    fvg_bull_bottom: float = _nullable()
    fvg_bear_top: float = _nullable()
    fvg_bear_bottom: float = _nullable()
    bsl_level: float = pa.Field(nullable=True, description="active buy-side pool (equal highs)")
    ssl_level: float = pa.Field(nullable=True, description="active sell-side pool (equal lows)")
    bsl_swept: bool
    ssl_swept: bool
    regime: str = pa.Field(isin=REGIMES)

    class Config:
        strict = True
        coerce = False


class GateTrace(pa.DataFrameModel):
    """One row per market per decision: every gate's outcome and the first reason."""

    symbol: str
    ts: UtcTs = pa.Field(description="decision time")  # type: ignore[valid-type]
    signal: bool
    strategy: str = pa.Field(nullable=True, isin=["smc", "momentum"])
    reason: str = pa.Field(nullable=True, description="first failing gate; null = signal")
    momentum_reason: str = pa.Field(nullable=True)
    gate_data: str = pa.Field(isin=OUTCOMES)
    gate_daily_bias: str = pa.Field(isin=OUTCOMES)
    gate_structure: str = pa.Field(isin=OUTCOMES)
    gate_regime: str = pa.Field(isin=OUTCOMES)
    gate_ote: str = pa.Field(isin=OUTCOMES)
    gate_risk: str = pa.Field(isin=OUTCOMES)
    gate_momentum: str = pa.Field(isin=OUTCOMES)
    bias: str = pa.Field(nullable=True, isin=["long", "short"])
    daily_close: float = _nullable()
    daily_ema: float = _nullable()
    structure_tf: str = pa.Field(nullable=True, isin=["4h", "1h"])
    structure_kind: str = pa.Field(nullable=True, isin=["BOS", "CHOCH"])
    bars_since_break: pl.Int32 = pa.Field(nullable=True)
    regime: str = pa.Field(nullable=True, isin=REGIMES)
    entry: float = _nullable()
    retracement: float = _nullable()
    stop: float = _nullable()
    reward_risk: float = _nullable()
    score: float = pa.Field(nullable=True, ge=0, le=1)
    tier: str = pa.Field(nullable=True)
    problem: str = pa.Field(
        nullable=True,
        description="BAD_DATA: why the candles were unusable; INSUFFICIENT_HISTORY: what "
        "history the market lacks (daily EMA warm-up, EMA seed not loaded, no 4H/1H ATR)",
    )
    daily_known_at: UtcTs = pa.Field(nullable=True)  # type: ignore[valid-type]
    h4_known_at: UtcTs = pa.Field(nullable=True)  # type: ignore[valid-type]
    h1_known_at: UtcTs = pa.Field(nullable=True)  # type: ignore[valid-type]

    class Config:
        strict = True
        coerce = False
        unique = ("symbol", "ts")


class SmcSignals(Signals):
    """Signals plus the engine's explanation columns (all optional for other producers)."""

    structure_tf: Optional[str] = pa.Field(nullable=True)  # noqa: UP045
    structure_kind: Optional[str] = pa.Field(nullable=True)  # noqa: UP045
    retracement: Optional[float] = pa.Field(nullable=True)  # noqa: UP045
    reward_risk: Optional[float] = pa.Field(nullable=True)  # noqa: UP045
    tier: Optional[str] = pa.Field(nullable=True)  # noqa: UP045
    gate_trace: Optional[str] = pa.Field(nullable=True, description="gate outcomes, in order")  # noqa: UP045
