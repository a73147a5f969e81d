"""The invariant monitor against SafetyConfig: exact boundaries, the seed's outage 1."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.invariants import (
    AccountSnapshot,
    InvariantName,
    PositionExposure,
    Verdict,
    check_invariants,
    update_high_water,
)
from schemas.config import SafetyConfig

TS = datetime(2025, 1, 1, tzinfo=UTC)
SAFETY = SafetyConfig()
EQUITY = 1000.0


def account(
    *,
    equity: float = EQUITY,
    margin_used: float = 0.0,
    high_water: float = 0.0,
    notionals: tuple[float, ...] = (),
) -> AccountSnapshot:
    return AccountSnapshot(
        equity=equity,
        margin_used=margin_used,
        equity_high_water=high_water,
        positions=tuple(PositionExposure(f"C{i}", n) for i, n in enumerate(notionals)),
        ts=TS,
    )


def share(fraction: float | str, of: float = EQUITY) -> float:
    """`fraction` of `of` as the decimal an exchange would send (no binary drift)."""
    return float(Decimal(str(fraction)) * Decimal(repr(of)))


def verdict_of(snapshot: AccountSnapshot, name: InvariantName) -> Verdict:
    report = check_invariants(snapshot, SAFETY)
    return next(c.verdict for c in report.checks if c.name is name)


MARGIN = InvariantName.MARGIN_UTILIZATION
DRAWDOWN = InvariantName.DRAWDOWN


def test_a_full_auction_is_degraded_not_halted_the_seeds_outage_1() -> None:
    full = account(margin_used=share(SAFETY.auction_max_margin_util))
    report = check_invariants(full, SAFETY)
    assert report.verdict is Verdict.DEGRADED
    assert verdict_of(full, MARGIN) is Verdict.DEGRADED


def test_margin_just_below_the_degraded_level_is_normal() -> None:
    assert check_invariants(account(margin_used=share("0.849")), SAFETY).verdict is Verdict.OK


@pytest.mark.parametrize(
    ("level", "delta", "expected"),
    [
        ("degraded_margin_utilization_pct", "-0.0001", Verdict.OK),
        ("degraded_margin_utilization_pct", "0", Verdict.DEGRADED),
        ("max_margin_utilization_pct", "-0.0001", Verdict.DEGRADED),
        ("max_margin_utilization_pct", "0", Verdict.HALT),
        ("max_margin_utilization_pct", "0.0001", Verdict.HALT),
    ],
)
def test_margin_levels_are_reached_at_or_above(level: str, delta: str, expected: Verdict) -> None:
    utilisation = Decimal(repr(getattr(SAFETY, level))) + Decimal(delta)
    assert verdict_of(account(margin_used=share(utilisation)), MARGIN) is expected


@pytest.mark.parametrize(
    ("level", "delta", "expected"),
    [
        ("degraded_equity_drawdown_pct", "-0.0001", Verdict.OK),
        ("degraded_equity_drawdown_pct", "0", Verdict.DEGRADED),
        ("max_equity_drawdown_pct", "-0.0001", Verdict.DEGRADED),
        ("max_equity_drawdown_pct", "0", Verdict.HALT),
    ],
)
def test_drawdown_levels_are_reached_at_or_above(level: str, delta: str, expected: Verdict) -> None:
    drawdown = Decimal(repr(getattr(SAFETY, level))) + Decimal(delta)
    equity = share(1 - drawdown)
    assert verdict_of(account(equity=equity, high_water=EQUITY), DRAWDOWN) is expected


def test_concurrent_positions_halt_only_above_the_maximum() -> None:
    at_max = account(notionals=(1.0,) * SAFETY.max_concurrent_positions)
    above = account(notionals=(1.0,) * (SAFETY.max_concurrent_positions + 1))
    assert check_invariants(at_max, SAFETY).verdict is Verdict.OK
    assert verdict_of(above, InvariantName.CONCURRENT_POSITIONS) is Verdict.HALT


def test_a_position_clamped_to_its_share_is_ok_and_above_it_only_warns() -> None:
    cap = SAFETY.max_single_position_pct_equity
    clamped = account(notionals=(share(cap),))
    above = account(notionals=(-share(Decimal(repr(cap)) + Decimal("0.0001")),))  # a short
    assert check_invariants(clamped, SAFETY).verdict is Verdict.OK
    report = check_invariants(above, SAFETY)
    assert report.verdict is Verdict.WARN
    assert "max_single_position_pct_equity" in report.cause(Verdict.WARN)


@pytest.mark.parametrize("equity", [0.0, -12.5])
def test_no_equity_halts_with_a_clear_cause(equity: float) -> None:
    report = check_invariants(account(equity=equity, margin_used=5.0), SAFETY)
    assert report.verdict is Verdict.HALT
    assert report.cause(Verdict.HALT).startswith("equity")
    assert {c.name for c in report.checks} == {
        InvariantName.EQUITY,
        InvariantName.CONCURRENT_POSITIONS,
        InvariantName.UNPROTECTED,  # counts, not ratios: still checked without equity
    }


def test_each_check_names_its_parameters_and_report_values_are_recorded() -> None:
    report = check_invariants(account(margin_used=share("0.9")), SAFETY)
    margin = next(c for c in report.checks if c.name is MARGIN)
    assert [t.parameter for t in margin.thresholds] == [
        "max_margin_utilization_pct",
        "degraded_margin_utilization_pct",
    ]
    assert [t.level for t in margin.thresholds] == [
        SAFETY.max_margin_utilization_pct,
        SAFETY.degraded_margin_utilization_pct,
    ]
    assert report.values[MARGIN.value] == pytest.approx(0.9)


def test_report_carries_the_updated_high_water_mark() -> None:
    report = check_invariants(account(equity=1200.0, high_water=EQUITY), SAFETY)
    assert report.equity_high_water == 1200.0
    assert verdict_of(account(equity=1200.0, high_water=EQUITY), DRAWDOWN) is Verdict.OK


@pytest.mark.parametrize(
    "bad",
    [
        {"equity": float("nan")},
        {"margin_used": float("inf")},
        {"margin_used": -1.0},
        {"high_water": -1.0},
    ],
)
def test_snapshot_refuses_unmeasurable_amounts(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="account snapshot"):
        account(**bad)


def test_snapshot_refuses_a_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        AccountSnapshot(1.0, 0.0, 0.0, (), datetime(2025, 1, 1))  # noqa: DTZ001


@given(
    start=st.one_of(st.none(), st.floats(0, 1e9)),
    equities=st.lists(st.floats(-1e9, 1e9), max_size=30),
)
def test_high_water_mark_is_monotone_and_at_least_every_equity_seen(
    start: float | None, equities: list[float]
) -> None:
    mark = start
    for equity in equities:
        new = update_high_water(mark, equity)
        assert new >= (mark or 0.0)
        assert new >= equity
        mark = new


def test_high_water_refuses_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        update_high_water(100.0, float("nan"))
