"""The SMC engine on every real market: causal, incremental-exact, one trace row per market."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from core.smc import compute_features, evaluate_markets, features_by_market, scan_signals
from core.smc.features import features_of_blocks
from core.smc.timeframes import TIMEFRAMES
from core.smc.windows import by_market
from schemas.signals import Signals
from schemas.smc import Features, GateTrace, SmcSignals
from schemas.strategy import StrategyConfig
from trader.smc_commands import decision_times, load_data_dir

pytestmark = pytest.mark.realdata
CONFIG = StrategyConfig()
# Every relaxation on, so the property covers the momentum and 1H code paths too.
RELAXED = StrategyConfig(
    ote_tolerance=0.05, allow_1h_structure=True, momentum=True, widen_tight_smc=True
)
FIRST = datetime(2025, 1, 2, tzinfo=UTC)
LAST = datetime(2026, 2, 19, 22, tzinfo=UTC)


@functools.cache
def candles(folder: Path) -> pl.DataFrame:
    return load_data_dir(folder)


def closed_by(frame: pl.DataFrame, when: datetime) -> pl.DataFrame:
    """Only candles whose close is at or before `when` - what a live system had."""
    close = pl.lit(None, pl.Datetime("us", "UTC"))
    for tf, length in TIMEFRAMES.items():
        close = pl.when(pl.col("timeframe") == tf).then(pl.col("ts") + length).otherwise(close)
    return frame.filter(close <= when)


@functools.cache
def full_features(folder: Path, timeframe: str) -> pl.DataFrame:
    data = candles(folder).filter(pl.col("timeframe") == timeframe)
    return features_by_market(data, timeframe, CONFIG)


@functools.cache
def full_scan(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    data = candles(folder)
    return scan_signals(data, decision_times(data, None, None), RELAXED)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hours=st.integers(min_value=0, max_value=int((LAST - FIRST).total_seconds() // 3600)))
def test_features_and_signals_up_to_t_do_not_change_when_later_candles_arrive(
    real_data_dir: Path, hours: int
) -> None:
    t = FIRST + timedelta(hours=hours)
    past = closed_by(candles(real_data_dir), t)
    for tf in TIMEFRAMES:
        known = full_features(real_data_dir, tf).filter(pl.col("known_at") <= t)
        assert_frame_equal(
            features_by_market(past.filter(pl.col("timeframe") == tf), tf, CONFIG), known
        )
    # The last two days of decisions up to t, from the past only vs from all candles.
    times = pl.Series([t - timedelta(hours=h) for h in range(48)], dtype=pl.Datetime("us", "UTC"))
    signals, trace = scan_signals(past, times, RELAXED)
    all_signals, all_trace = full_scan(real_data_dir)
    in_window = pl.col("ts").is_in(times.implode()) & pl.col("symbol").is_in(
        trace["symbol"].unique().implode()
    )
    assert_frame_equal(trace, all_trace.filter(in_window))
    assert_frame_equal(signals, all_signals.filter(in_window))
    # The cycle at t, on windows of recent candles, decides as the full scan did.
    cycle_signals, cycle_trace = evaluate_markets(candles(real_data_dir), t, RELAXED)
    assert_frame_equal(cycle_trace, all_trace.filter(pl.col("ts") == t))
    assert_frame_equal(cycle_signals, all_signals.filter(pl.col("ts") == t))


@pytest.mark.parametrize(("timeframe", "ema"), [("1h", True), ("4h", True), ("1h", False)])
def test_a_window_of_recent_bars_reproduces_a_full_recompute(
    real_data_dir: Path, timeframe: str, ema: bool
) -> None:
    """compute_features needs feature_memory_bars (the EMA's); without the EMA, as the
    cycle computes 4h and 1h, structure_memory_bars - the incremental window."""
    memory = CONFIG.feature_memory_bars if ema else CONFIG.structure_memory_bars
    window = memory + 300 if ema else CONFIG.incremental_window_bars
    checked = 0
    for symbol, frame in (
        candles(real_data_dir).filter(pl.col("timeframe") == timeframe).group_by("symbol")
    ):
        ohlcv = frame.sort("ts").drop("timeframe")
        full = features(ohlcv, timeframe, ema)
        for end in range(window, ohlcv.height + 1, 997):
            part = features(ohlcv.slice(end - window, window), timeframe, ema)
            # Every row with a full memory behind it is identical, bit for bit.
            keep = window - memory
            assert_frame_equal(part.tail(keep), full.slice(end - keep, keep), check_exact=True)
            checked += 1
        assert symbol
    assert checked > 0


def features(candles: pl.DataFrame, timeframe: str, ema: bool) -> pl.DataFrame:
    """compute_features (ema) or the engine's EMA-less features of one market."""
    if ema:
        return compute_features(candles.drop("symbol"), timeframe, CONFIG)
    return features_of_blocks(*by_market(candles), timeframe, CONFIG, ema=False)


DECISIONS = [
    datetime(2025, 8, 1, 0, tzinfo=UTC),
    datetime(2025, 11, 20, 13, tzinfo=UTC),
    datetime(2026, 1, 30, 7, tzinfo=UTC),
    datetime(2026, 2, 19, 18, tzinfo=UTC),
]


@pytest.mark.parametrize("when", DECISIONS, ids=lambda d: f"{d:%Y-%m-%dT%H}")
def test_a_cycle_over_all_real_markets_explains_every_market(
    real_data_dir: Path, when: datetime
) -> None:
    data = candles(real_data_dir)
    signals, trace = evaluate_markets(data, when, RELAXED)
    Signals.validate(signals)
    SmcSignals.validate(signals)
    GateTrace.validate(trace)
    assert sorted(trace["symbol"]) == sorted(data["symbol"].unique())
    assert (trace["ts"] == when).all()
    assert set(signals["symbol"]) == set(trace.filter(pl.col("signal"))["symbol"])
    space = trace.filter(pl.col("symbol") == "SPACEUSDT").row(0, named=True)
    assert space["reason"] == "INSUFFICIENT_HISTORY" and space["gate_data"] == "fail"
    # The windowed cycle decides exactly as the full-history scan did at that time.
    all_signals, all_trace = full_scan(real_data_dir)
    assert_frame_equal(trace, all_trace.filter(pl.col("ts") == when))
    assert_frame_equal(signals, all_signals.filter(pl.col("ts") == when))


def test_features_of_every_real_file_follow_the_schema(real_data_dir: Path) -> None:
    for tf in TIMEFRAMES:
        Features.validate(full_features(real_data_dir, tf))
