"""The gates on real candles: what a trader reading the signals and the trace would check."""

from __future__ import annotations

import functools
from pathlib import Path

import polars as pl
import pytest

from core.smc import scan_signals
from schemas.signals import Signals
from schemas.smc import GateTrace, SmcSignals
from schemas.strategy import StrategyConfig
from trader.smc_commands import decision_times, load_data_dir

SMC_GATES = [
    "gate_data",
    "gate_daily_bias",
    "gate_structure",
    "gate_regime",
    "gate_ote",
    "gate_risk",
]
RELAXATIONS = {
    "ote_tolerance": {"ote_tolerance": 0.05},
    "allow_1h_structure": {"allow_1h_structure": True},
    "momentum": {"momentum": True},
    "widen_tight_smc": {"widen_tight_smc": True},
}


@functools.cache
def candles(folder: Path) -> pl.DataFrame:
    return load_data_dir(folder)


@functools.cache
def scan(folder: Path, relaxation: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hourly decisions over the last 150 days of the data (history before it warms up)."""
    data = candles(folder)
    times = decision_times(data, None, None).tail(150 * 24)
    config = StrategyConfig(**RELAXATIONS[relaxation]) if relaxation else StrategyConfig()
    return scan_signals(data, times, config)


def test_scan_outputs_follow_their_schemas(real_data_dir: Path) -> None:
    signals, trace = scan(real_data_dir)
    Signals.validate(signals)
    SmcSignals.validate(signals)
    GateTrace.validate(trace)
    assert signals.height > 0


def test_every_signal_has_a_coherent_trade_plan(real_data_dir: Path) -> None:
    signals, _ = scan(real_data_dir)
    side = pl.when(pl.col("side") == "long").then(1.0).otherwise(-1.0)
    incoherent = signals.filter(
        ~(
            (side * (pl.col("entry") - pl.col("stop")) > 0)
            & (side * (pl.col("tp1") - pl.col("entry")) > 0)
            & (side * (pl.col("tp2") - pl.col("tp1")) > 0)
            & (side * (pl.col("tp3") - pl.col("tp2")) > 0)
            & pl.col("retracement").is_between(0.618, 0.786)
            & (pl.col("regime") == "tight_smc")
            & pl.col("score").is_between(0.0, 1.0)
            & (pl.col("strategy") == "smc")
        )
    )
    assert incoherent.is_empty(), incoherent.head()


def test_gates_pass_until_the_first_failure_and_are_skipped_after_it(real_data_dir: Path) -> None:
    _, trace = scan(real_data_dir)
    outcomes = trace.select(pl.concat_str(SMC_GATES, separator=" ").alias("o"))["o"]
    assert outcomes.str.contains(r"^(pass )*(pass|fail( skipped)*)$").all()
    assert (trace["signal"] == trace["reason"].is_null()).all()
    failed_gate = {
        "4H_STRUCTURE_REQUIRED": "gate_structure",
        "entry not in OTE/Key Fib": "gate_ote",
        "REGIME_NOT_TRADEABLE": "gate_regime",
        "INSUFFICIENT_HISTORY": "gate_data",
    }
    for reason, gate in failed_gate.items():
        rows = trace.filter(pl.col("reason") == reason)
        assert (rows[gate] == "fail").all(), reason


def test_structure_then_ote_are_the_most_common_strategy_rejections(real_data_dir: Path) -> None:
    _, trace = scan(real_data_dir)
    strategy_reasons = trace.filter(pl.col("gate_data") == "pass", pl.col("reason").is_not_null())
    top = strategy_reasons.group_by("reason").len().sort("len", descending=True)["reason"]
    assert top.head(2).to_list() == ["4H_STRUCTURE_REQUIRED", "entry not in OTE/Key Fib"]


def test_a_decision_sees_only_candles_closed_by_it(real_data_dir: Path) -> None:
    _, trace = scan(real_data_dir)
    for column in ("daily_known_at", "h4_known_at", "h1_known_at"):
        assert (trace[column].is_null() | (trace[column] <= trace["ts"])).all()


def test_space_without_200_daily_bars_is_rejected_for_history(real_data_dir: Path) -> None:
    _, trace = scan(real_data_dir)
    space = trace.filter(pl.col("symbol") == "SPACEUSDT")
    assert space.height > 0
    assert (space["reason"] == "INSUFFICIENT_HISTORY").all()


@pytest.mark.parametrize("relaxation", list(RELAXATIONS))
def test_each_relaxation_only_adds_signals(real_data_dir: Path, relaxation: str) -> None:
    strict, _ = scan(real_data_dir)
    relaxed, trace = scan(real_data_dir, relaxation)
    keys = ["symbol", "ts"]
    lost = strict.select(keys).join(relaxed.select(keys), on=keys, how="anti")
    assert lost.is_empty()
    assert relaxed.height > strict.height
    if relaxation == "momentum":
        momentum = relaxed.filter(pl.col("strategy") == "momentum")
        assert momentum.height > 0
        side = pl.when(pl.col("side") == "long").then(1.0).otherwise(-1.0)
        risk = side * (pl.col("entry") - pl.col("stop"))
        plan_ok = (
            (risk > 0)
            & ((pl.col("tp1") - pl.col("entry")) * side - risk).abs().le(1e-9 * pl.col("entry"))
            & (side * (pl.col("tp3") - pl.col("tp2")) > 0)
        )
        assert momentum.filter(~plan_ok).is_empty()
        assert trace["momentum_reason"].drop_nulls().str.starts_with("MOMENTUM_").any()
        assert (trace.filter(pl.col("strategy") == "smc")["gate_momentum"] == "skipped").all()
    else:
        assert (trace["gate_momentum"] == "off").all()
