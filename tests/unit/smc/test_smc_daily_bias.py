"""The daily EMA: seeded on its calendar grid or at the market's listing, never at wherever
the loaded history happens to begin; an explicit warm-up the gate trace explains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from smc_builders import bars, small_config

from core.smc import compute_features, evaluate_markets, scan_signals
from core.smc.features import features_of_blocks
from core.smc.windows import by_market
from schemas.strategy import StrategyConfig
from tests.support.histories import hourly_history, wave

DAY = timedelta(days=1)
# small_config: ema_period 3, ema_warmup_periods 2 -> blocks of 6 days (day numbers
# since 1970 divisible by 6); warm-up 3 days.
CONFIG = small_config()
LISTED = datetime(2025, 1, 1, tzinfo=UTC)  # day 20089: its block began on day 20088


def daily(closes: list[float], start: datetime = LISTED) -> pl.DataFrame:
    return bars([(c, c + 1, c - 1, c) for c in closes], start=start, step=DAY)


def test_a_market_listed_after_its_seed_is_seeded_at_its_listing_after_a_warm_up() -> None:
    ema = compute_features(daily([10.0, 20.0, 40.0, 30.0]), "1d", CONFIG)["ema"].to_list()
    # Warm-up: 3 days since the listing; then the adjusted EMA (w = 1 - 2/4) from the listing.
    assert ema[:2] == [None, None]
    assert ema[2] == pytest.approx((40 + 0.5 * 20 + 0.25 * 10) / 1.75)
    assert ema[3] == pytest.approx((30 + 0.5 * 40 + 0.25 * 20 + 0.125 * 10) / 1.875)


def test_a_hole_in_the_first_days_does_not_move_the_end_of_the_warm_up() -> None:
    holed = daily([10.0, 20.0, 40.0, 30.0]).filter(pl.col("ts") != LISTED + DAY)
    ema = compute_features(holed, "1d", CONFIG)["ema"].to_list()
    # Day 3 of the market is its second candle: the warm-up is counted in days, not rows.
    assert ema[0] is None and ema[1] == pytest.approx((40 + 0.5 * 10) / 1.5)


def test_a_history_cut_from_a_longer_one_never_seeds_the_ema_at_its_first_row() -> None:
    closes = [100.0 + 10 * np.sin(i / 3) for i in range(60)]
    full = compute_features(daily(closes), "1d", CONFIG)
    window = daily(closes).tail(20).with_columns(symbol=pl.lit("A"))
    cut = features_of_blocks(*by_market(window), "1d", CONFIG, listed=np.array([False]))
    seeded_at_cut = features_of_blocks(*by_market(window), "1d", CONFIG, listed=np.array([True]))
    full_tail = full.tail(20)
    known = cut["ema"].is_not_null()
    # A value is known exactly where its seed (the start of the block before its own)
    # is inside the window, and then it is the full history's, bit for bit; before, it
    # is unknown - while seeding at the cut gives a different number there.
    day = window["ts"].dt.epoch("d")
    seed = (day // 6 - 1) * 6
    assert known.to_list() == (seed >= day[0]).to_list() and 0 < known.sum() < 20
    assert cut.filter(known)["ema"].to_list() == full_tail.filter(known)["ema"].to_list()
    differs = seeded_at_cut.filter(~known)["ema"] != full_tail.filter(~known)["ema"]
    assert differs.any()


def long_candles(days: int, last: datetime, symbol: str = "OLD") -> pl.DataFrame:
    """`days` daily candles ending the day before `last`, hourly and 4h for the last 60 days."""
    first = last - days * DAY
    hourly = hourly_history(last - 60 * DAY, wave(60), seed=1)
    daily_frame = (
        hourly_history(first, wave(days), seed=2)
        .group_by_dynamic("ts", every="1d")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
    )
    four = hourly.group_by_dynamic("ts", every="4h").agg(
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        pl.col("volume").sum(),
    )
    return pl.concat(
        f.with_columns(symbol=pl.lit(symbol), timeframe=pl.lit(tf)).select(
            "symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"
        )
        for tf, f in (("1h", hourly), ("4h", four), ("1d", daily_frame))
    )


def test_a_cycle_that_cuts_a_long_daily_history_decides_as_the_full_scan() -> None:
    config = StrategyConfig()
    last = datetime(2026, 3, 1, tzinfo=UTC)
    candles = long_candles(1800, last)  # 1800 > bias_window_bars: the cycle cuts it
    times = [last - timedelta(hours=h) for h in (0, 7, 24 * 9 + 5, 24 * 30)]
    _, scanned = scan_signals(candles, pl.Series(times, dtype=pl.Datetime("us", "UTC")), config)
    for when in times:
        _, trace = evaluate_markets(candles, when, config)
        assert trace["daily_ema"][0] is not None
        assert_frame_equal(trace, scanned.filter(pl.col("ts") == when))


def test_the_gate_trace_says_why_a_market_lacks_history() -> None:
    config = StrategyConfig()
    when = datetime(2026, 3, 1, tzinfo=UTC)
    young = long_candles(50, when, "YOUNG")
    no_4h = long_candles(300, when, "NO4H").filter(pl.col("timeframe") != "4h")
    _, trace = evaluate_markets(pl.concat([young, no_4h]), when, config)
    problems = dict(trace.select("symbol", "problem").iter_rows())
    assert (trace["reason"] == "INSUFFICIENT_HISTORY").all()
    assert problems["YOUNG"] == (
        "1d: daily EMA warming up, 50 of 200 days since the first daily candle (2026-01-10); "
        "the bias counts from 2026-07-29"
    )
    assert problems["NO4H"] == "4h: no closed candle yet"
