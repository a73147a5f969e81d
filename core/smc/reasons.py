"""Closed vocabularies of the SMC engine: rejection reasons, gate outcomes, regimes.

Operators grep the two most common reasons verbatim (SPEC §10), so their values
are fixed strings, not derived names.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a market produced no signal, first failing gate wins."""

    MARKET_NOT_TRADEABLE = "MARKET_NOT_TRADEABLE"  # absent from the registry, or tier REJECT
    BAD_DATA = "BAD_DATA"  # NaN, non-positive price, high < low, duplicate or unordered ts
    # Daily EMA warming up (bias_warmup_bars since the first daily candle) or its seed not
    # loaded, or no 4H/1H ATR yet: the trace's `problem` says which.
    INSUFFICIENT_HISTORY = "INSUFFICIENT_HISTORY"
    STALE_DATA = "STALE_DATA"  # the last closed bar is older than stale_after_bars
    NO_DAILY_BIAS = "NO_DAILY_BIAS"  # daily close exactly on its EMA
    STRUCTURE_4H_REQUIRED = "4H_STRUCTURE_REQUIRED"
    REGIME_NOT_TRADEABLE = "REGIME_NOT_TRADEABLE"
    ENTRY_NOT_IN_OTE = "entry not in OTE/Key Fib"
    RISK_STOP_WRONG_SIDE = "RISK_STOP_WRONG_SIDE"  # stop not beyond entry, or not positive
    RISK_STOP_TOO_WIDE = "RISK_STOP_TOO_WIDE"  # stop farther than max_stop_pct of entry
    RISK_REWARD_TOO_LOW = "RISK_REWARD_TOO_LOW"  # reward:risk to TP1 below min_reward_risk
    MOMENTUM_NO_BREAKOUT = "MOMENTUM_NO_BREAKOUT"  # no fresh 1H break in the bias direction
    MOMENTUM_OVEREXTENDED = "MOMENTUM_OVEREXTENDED"  # entry too far beyond the broken level


class GateOutcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"  # an earlier gate failed, this one was not evaluated
    OFF = "off"  # the gate belongs to a relaxation that is switched off


class Regime(StrEnum):
    """Structure regimes; only TIGHT_SMC is tradeable. Definitions: core/smc/regime.py."""

    TIGHT_SMC = "tight_smc"
    NO_STRUCTURE = "no_structure"
    VOLATILE = "volatile"
    CHOPPY = "choppy"
    WEAK_IMPULSE = "weak_impulse"
    EXTENDED = "extended"


class BreakKind(StrEnum):
    BOS = "BOS"
    CHOCH = "CHOCH"
