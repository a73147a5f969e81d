"""TP plan (SPEC §6): each level judged on its own; no plan only if every level is invalid."""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.orders import PositionSide
from core.precision import is_multiple
from core.tp_plan import TpSkip, min_tp_distance, plan_take_profits
from schemas.risk import RiskConfig


def test_tp1_already_passed_keeps_tp2_and_tp3_outage_5(caplog: pytest.LogCaptureFixture) -> None:
    # the seed dropped the whole plan when TP1 was behind the mark: TP2/TP3 were never placed
    with caplog.at_level(logging.WARNING, logger="smc_trader.tp_plan"):
        plan = plan_take_profits(PositionSide.LONG, 103.0, [102.0, 104.0, 106.0], 0.5, 0.1)
    assert not plan.is_empty
    assert [lv.index for lv in plan.levels] == [2, 3]
    assert (plan.price(1), plan.price(2), plan.price(3)) == (None, 104.0, 106.0)
    assert plan.skipped_codes == ("tp1:PASSED",)
    assert "TP level skipped tp1=102.0" in caplog.text


def test_short_passed_level_is_above_the_price() -> None:
    plan = plan_take_profits("short", 97.0, [98.0, 96.0, 94.0], 0.01, 0.0)
    assert plan.skipped_codes == ("tp1:PASSED",)
    assert [lv.price for lv in plan.levels] == [96.0, 94.0]


def test_too_close_level_is_skipped_and_the_rest_kept() -> None:
    plan = plan_take_profits("long", 100.0, [100.05, 101.0, 102.0], 0.01, 0.1)
    assert plan.skipped_codes == ("tp1:TOO_CLOSE",)
    assert plan.price(2) == 101.0


def test_level_rounded_onto_the_price_counts_as_too_close() -> None:
    # 100.2 is beyond 100.0 but rounds to it on a 0.5 grid
    plan = plan_take_profits("long", 100.0, [100.2, 101.0, None], 0.5, 0.0)
    assert plan.skipped_codes == ("tp1:TOO_CLOSE", "tp3:INVALID")


def test_levels_are_rounded_to_the_tick() -> None:
    plan = plan_take_profits("long", 100.0, [101.123, 102.377, 103.9], 0.05, 0.0)
    assert [lv.price for lv in plan.levels] == [101.1, 102.4, 103.9]
    assert all(is_multiple(lv.price, 0.05) for lv in plan.levels)


def test_invalid_and_duplicate_levels_are_skipped_individually() -> None:
    plan = plan_take_profits("long", 100.0, [float("nan"), 101.01, 101.02], 0.1, 0.0)
    assert plan.skipped_codes == ("tp1:INVALID", "tp3:DUPLICATE")
    assert plan.price(2) == 101.0


def test_no_plan_only_when_every_level_is_invalid(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="smc_trader.tp_plan"):
        plan = plan_take_profits("long", 110.0, [102.0, 104.0, float("inf")], 0.01, 0.0)
    assert plan.is_empty
    assert plan.skipped_codes == ("tp1:PASSED", "tp2:PASSED", "tp3:INVALID")
    assert "no TP plan" in caplog.text


def test_missing_mark_price_skips_every_level_without_raising() -> None:
    plan = plan_take_profits("long", None, [102.0, 104.0], 0.01, 0.0)
    assert plan.is_empty
    assert {s.reason for s in plan.skipped} == {TpSkip.NO_REFERENCE}


def test_min_distance_comes_from_risk_config_bps() -> None:
    risk = RiskConfig(tp_min_distance_bps=25)
    assert min_tp_distance(200.0, risk) == pytest.approx(0.5)


prices = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False)
levels = st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=4)


@settings(max_examples=150, deadline=None)
@given(
    side=st.sampled_from(list(PositionSide)),
    reference=prices,
    given_levels=levels,
    tick=st.sampled_from([1e-5, 0.001, 0.01, 0.5, 1.0]),
    min_distance=st.floats(min_value=0, max_value=10),
)
def test_every_kept_tp_is_on_grid_beyond_price_by_min_distance_and_every_level_accounted(
    side: PositionSide,
    reference: float,
    given_levels: list[float | None],
    tick: float,
    min_distance: float,
) -> None:
    plan = plan_take_profits(side, reference, given_levels, tick, min_distance)
    direction = 1.0 if side is PositionSide.LONG else -1.0
    for lv in plan.levels:
        assert is_multiple(lv.price, tick)
        assert (lv.price - reference) * direction >= min_distance
        assert math.isfinite(lv.price)
    indices = sorted([lv.index for lv in plan.levels] + [s.index for s in plan.skipped])
    assert indices == list(range(1, len(given_levels) + 1))
