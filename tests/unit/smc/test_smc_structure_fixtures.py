"""Hand-built candles, one per structure a trader would recognise on a chart."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from smc_builders import bars, index_of, mirror, small_config, zigzag

from core.smc import compute_features
from schemas.smc import Features

WICK = 0.2
# Up, pull back, break (first break: BOS), pull back, break again (BOS in an uptrend).
UPTREND = [100, 110, 104, 116, 110, 122, 118]


def features(rows: list[tuple[float, float, float, float]], **config: object) -> pl.DataFrame:
    out = compute_features(bars(rows), "1h", small_config(**config))
    Features.validate(out)
    return out


def test_swing_is_reported_only_after_its_confirming_bars_close() -> None:
    f = features(zigzag(UPTREND))
    first_high = index_of(f, "swing_high_confirmed", True)[0]
    pivot_ts = f["swing_high_ts"][first_high]
    # The pivot (close 110) is bar 4; swing_length = 2 more bars must close first.
    assert pivot_ts == f["ts"][4]
    assert first_high == 6
    assert f["known_at"][first_high] == f["ts"][6] + timedelta(hours=1)
    assert f["swing_high"][first_high] == pytest.approx(110 + WICK)
    assert f["swing_high"][:first_high].is_null().all()


def test_clean_bos_up_is_a_close_above_the_last_confirmed_swing_high() -> None:
    f = features(zigzag(UPTREND))
    breaks = index_of(f, "bos", 1)
    assert breaks == [11, 19]
    assert f["break_level"][11] == pytest.approx(110 + WICK)
    assert f["break_level"][19] == pytest.approx(116 + WICK)
    assert f["close"][19] > f["break_level"][19] >= f["close"][18]
    assert (f["choch"] == 0).all()
    # The structure and its impulse leg: from the pull-back low to the new high.
    assert f["trend"][19:].to_list() == [1] * (f.height - 19)
    assert f["leg_start"][19] == pytest.approx(110 - WICK)
    assert f["leg_end"][-1] == pytest.approx(122 + WICK)
    assert f["structure_kind"][-1] == "BOS"


def test_clean_bos_down_mirrors_the_bos_up() -> None:
    up = features(zigzag(UPTREND))
    down = features(mirror(zigzag(UPTREND)))
    assert index_of(down, "bos", -1) == index_of(up, "bos", 1)
    assert (down["trend"] == -up["trend"]).all()
    assert down["leg_start"][-1] == pytest.approx(200 - up["leg_start"][-1])


def test_choch_is_a_break_against_the_previous_break() -> None:
    # Uptrend with two BOS, a higher low at 112, then a fall through it.
    f = features(zigzag([*UPTREND[:-1], 112, 116, 100]))
    chochs = index_of(f, "choch", -1)
    assert len(chochs) == 1
    at = chochs[0]
    assert f["break_level"][at] == pytest.approx(112 - WICK)
    assert f["close"][at] < 112 - WICK <= f["close"][at - 1]
    assert f["trend"][at] == -1
    assert f["structure_kind"][at] == "CHOCH"
    assert (f["bos"][:at] >= 0).all()


def test_a_wick_through_the_swing_high_is_not_a_break() -> None:
    rows = zigzag([100, 110, 104, 108])
    o, _, lo, c = rows[-1]
    rows[-1] = (o, 112.0, lo, c)  # wick to 112 above the 110.2 swing, close 108 below it
    rows += zigzag([108, 106, 113])[1:]  # a later close above it is the break
    f = features(rows)
    wick_bar = len(zigzag([100, 110, 104, 108])) - 1
    assert f["bos"][wick_bar] == 0
    breaks = index_of(f, "bos", 1)
    assert len(breaks) == 1 and breaks[0] > wick_bar
    assert f["close"][breaks[0]] > 110 + WICK


def test_equal_highs_make_a_buy_side_pool_that_a_higher_high_sweeps() -> None:
    # Two tops at the same price with a dip between: equal highs.
    f = features(zigzag([100, 110, 104, 110, 104, 115]))
    pooled = f.filter(pl.col("bsl_level").is_not_null())
    assert pooled.height > 0
    assert pooled["bsl_level"].unique().to_list() == [pytest.approx(110 + WICK)]
    swept = index_of(f, "bsl_swept", True)
    assert len(swept) == 1
    assert f["high"][swept[0]] > 110 + WICK
    assert f["bsl_level"][swept[0] :].is_null().all()


def test_fair_value_gap_is_reported_on_the_candle_that_completes_it() -> None:
    rows = [
        (100.0, 101.0, 99.0, 100.5),
        (100.5, 101.0, 100.0, 100.8),  # t-2: high 101
        (100.8, 106.0, 100.7, 105.8),  # t-1: the displacement candle, up
        (105.8, 107.0, 103.0, 106.5),  # t: low 103 > 101, a bullish gap [101, 103]
        (106.5, 107.5, 104.0, 107.0),  # trades into the gap, does not fill it
        (107.0, 107.2, 100.5, 101.0),  # low 100.5 <= 101: filled
    ]
    f = features(rows)
    assert f["fvg"].to_list() == [0, 0, 0, 1, 0, 0]
    assert f["fvg_bull_bottom"][3] == 101.0 and f["fvg_bull_top"][3] == 103.0
    assert f["fvg_bull_bottom"][4] == 101.0
    assert f["fvg_bull_bottom"][5] is None


def test_missing_hours_do_not_break_the_features() -> None:
    candles = bars(zigzag(UPTREND))
    holed = candles.filter(~pl.int_range(pl.len()).is_in([7, 8, 15]))
    f = compute_features(holed, "1h", small_config())
    Features.validate(f)
    assert f.height == holed.height
    assert (f["known_at"] - f["ts"] == timedelta(hours=1)).all()
    assert f["ts"].to_list() == holed["ts"].to_list()


def test_fib_levels_and_ote_of_the_impulse_leg() -> None:
    f = features(zigzag(UPTREND)).tail(1)
    start, end = f["leg_start"][0], f["leg_end"][0]
    for r, col in (
        (0.5, "fib_0_5"),
        (0.618, "fib_0_618"),
        (0.705, "fib_0_705"),
        (0.786, "fib_0_786"),
    ):
        assert f[col][0] == pytest.approx(end - r * (end - start))
    assert f["ote_top"][0] == pytest.approx(f["fib_0_618"][0])
    assert f["ote_bottom"][0] == pytest.approx(f["fib_0_786"][0])
    assert f["retracement"][0] == pytest.approx((end - f["close"][0]) / (end - start))


def test_no_structure_before_any_break_and_after_it_expires() -> None:
    f = features(zigzag([100, 110, 104, 116] + [115, 116] * 12, legs=2), structure_max_age_bars=5)
    first = index_of(f, "bos", 1)[0]
    assert (f["regime"][:first] == "no_structure").all()
    assert f["trend"][first + 5] == 1 and f["trend"][first + 6] == 0
    assert f["regime"][first + 6] == "no_structure"
