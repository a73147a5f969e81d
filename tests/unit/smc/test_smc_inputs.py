"""Bad input: refused with a message naming it, or - in a cycle - one market rejected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from smc_builders import START, bars, small_config, zigzag

from core.errors import DataError
from core.smc import compute_features, evaluate_markets
from schemas.smc import GateTrace

CANDLES = bars(zigzag([100, 110, 104, 116, 110, 122, 118]))


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (CANDLES.drop("volume"), "missing column(s) ['volume']"),
        (CANDLES.with_columns(pl.col("ts").dt.replace_time_zone(None)), "time-zone-aware"),
        (CANDLES.with_columns(close=pl.lit(float("nan"))), "NaN"),
        (CANDLES.with_columns(low=pl.col("high") + 1), "high below open/close or low above"),
        (pl.concat([CANDLES, CANDLES.tail(1)]), "duplicate ts"),
        (CANDLES.with_columns(open=pl.lit("x")), "not numeric"),
    ],
    ids=["missing", "naive", "nan", "inverted", "duplicate", "text"],
)
def test_compute_features_refuses_unusable_candles_naming_the_problem(
    broken: pl.DataFrame, message: str
) -> None:
    with pytest.raises(DataError, match="1h candles") as error:
        compute_features(broken, "1h", small_config())
    assert message in str(error.value)


def test_compute_features_refuses_an_unknown_timeframe() -> None:
    with pytest.raises(DataError, match=r"unknown timeframe '15m'"):
        compute_features(CANDLES, "15m", small_config())


def test_unsorted_candles_give_the_same_features_as_sorted_ones() -> None:
    shuffled = CANDLES.sample(fraction=1.0, shuffle=True, seed=3)
    assert compute_features(shuffled, "1h", small_config()).equals(
        compute_features(CANDLES, "1h", small_config())
    )


def market(symbol: str, frame: pl.DataFrame, timeframe: str = "1h") -> pl.DataFrame:
    return frame.with_columns(symbol=pl.lit(symbol), timeframe=pl.lit(timeframe))


DECISION = START + timedelta(hours=CANDLES.height)


def test_one_market_with_a_nan_is_rejected_and_the_others_are_untouched() -> None:
    good = market("GOOD", CANDLES)
    bad = market(
        "BAD",
        CANDLES.with_columns(
            close=pl.when(pl.col("ts") == START).then(float("nan")).otherwise(pl.col("close"))
        ),
    )
    _, alone = evaluate_markets(good, DECISION, small_config())
    _, both = evaluate_markets(pl.concat([good, bad]), DECISION, small_config())
    GateTrace.validate(both)
    row = both.filter(pl.col("symbol") == "BAD").row(0, named=True)
    assert row["reason"] == "BAD_DATA" and "NaN" in row["problem"]
    assert row["gate_data"] == "fail" and row["gate_daily_bias"] == "skipped"
    assert both.filter(pl.col("symbol") == "GOOD").equals(alone)


def test_a_market_without_daily_candles_lacks_history() -> None:
    _, trace = evaluate_markets(market("NEW", CANDLES), DECISION, small_config())
    assert trace["reason"].to_list() == ["INSUFFICIENT_HISTORY"]


def test_markets_not_in_the_registry_or_rejected_are_not_tradeable() -> None:
    candles = pl.concat([market(s, CANDLES) for s in ("A", "B", "C")])
    registry = pl.DataFrame({"symbol": ["A", "B"], "tier": ["A", "REJECT"]})
    _, trace = evaluate_markets(candles, DECISION, small_config(), registry)
    reasons = dict(trace.select("symbol", "reason").iter_rows())
    assert reasons["B"] == reasons["C"] == "MARKET_NOT_TRADEABLE"
    assert reasons["A"] != "MARKET_NOT_TRADEABLE"
    assert trace.filter(pl.col("symbol") == "A")["tier"].to_list() == ["A"]


def test_a_naive_decision_time_is_refused() -> None:
    with pytest.raises(DataError, match="no time zone"):
        evaluate_markets(market("A", CANDLES), datetime(2025, 1, 2), small_config())  # noqa: DTZ001


def test_candles_without_symbol_or_with_an_unknown_timeframe_are_refused() -> None:
    with pytest.raises(DataError, match="symbol"):
        evaluate_markets(CANDLES, DECISION, small_config())
    with pytest.raises(DataError, match="15m"):
        evaluate_markets(market("A", CANDLES, "15m"), DECISION, small_config())


def test_no_candles_give_no_signals_and_no_trace_rows() -> None:
    signals, trace = evaluate_markets(market("A", CANDLES).clear(), DECISION, small_config())
    assert signals.is_empty() and trace.is_empty()
    GateTrace.validate(trace)


def test_candles_after_the_decision_time_are_ignored() -> None:
    before = DECISION - timedelta(hours=5)
    cut = market("A", CANDLES.filter(pl.col("ts") + timedelta(hours=1) <= before))
    assert evaluate_markets(market("A", CANDLES), before, small_config())[1].equals(
        evaluate_markets(cut, before, small_config())[1]
    )
    assert before.tzinfo is UTC
