"""The kill-switch plan: positions stay protected, entries go, TPs and flatten as configured."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.kill_switch import (
    CancelOrder,
    Flatten,
    KillSwitchPlan,
    OrderRole,
    PlaceStop,
    StepKind,
    UnprotectedReason,
    UnsafeKillSwitchPlanError,
    classify_order,
    plan_kill_switch,
    verify_plan,
)
from core.orders import Order, OrderSide, OrderStatus, OrderType, PositionReport, PositionSide
from schemas.config import SafetyConfig

DEFAULT = SafetyConfig()
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def order(
    oid: str,
    symbol: str,
    side: OrderSide,
    type_: OrderType,
    *,
    size: float = 1.0,
    filled: float = 0.0,
    reduce_only: bool = False,
    status: OrderStatus = OrderStatus.OPEN,
) -> Order:
    price = 100.0 if type_ is OrderType.LIMIT else None
    trigger = 100.0 if type_ in (OrderType.STOP, OrderType.TAKE_PROFIT) else None
    return Order(oid, oid, symbol, side, type_, size, filled, status, price, trigger, reduce_only)


def position(symbol: str, side: PositionSide, size: float = 1.0, mark: float = 100.0):
    return PositionReport(symbol, side, size, entry_price=mark, mark_price=mark)


BTC = position("PF_XBTUSD", PositionSide.LONG)
ETH = position("PF_ETHUSD", PositionSide.SHORT)
SOL = position("PF_SOLUSD", PositionSide.LONG)  # its stop is missing
BOOK = [
    order("btc-sl", "PF_XBTUSD", SELL, OrderType.STOP, reduce_only=True),
    order("btc-tp1", "PF_XBTUSD", SELL, OrderType.TAKE_PROFIT, reduce_only=True),
    order("btc-tp2", "PF_XBTUSD", SELL, OrderType.LIMIT, reduce_only=True),
    order("eth-sl", "PF_ETHUSD", BUY, OrderType.STOP, reduce_only=True),
    order("eth-tp1", "PF_ETHUSD", BUY, OrderType.TAKE_PROFIT, reduce_only=True),
    order("sol-tp1", "PF_SOLUSD", SELL, OrderType.TAKE_PROFIT, reduce_only=True),
    order("doge-entry", "PF_DOGEUSD", BUY, OrderType.LIMIT),
    order("ada-stop-entry", "PF_ADAUSD", SELL, OrderType.STOP),
]
STOPS = {"PF_SOLUSD": 90.0}


def ids(plan: KillSwitchPlan, kind: StepKind) -> list[str]:
    return [s.venue_order_id for s in plan.steps if isinstance(s, CancelOrder) and s.kind is kind]


def test_default_plan_places_the_missing_stop_first_cancels_entries_keeps_stops_and_tps() -> None:
    plan = plan_kill_switch([BTC, ETH, SOL], BOOK, DEFAULT, STOPS)
    assert plan.steps[0] == PlaceStop("PF_SOLUSD", SELL, 1.0, 90.0)
    assert ids(plan, StepKind.CANCEL_ORDER) == ["doge-entry", "ada-stop-entry"]
    kept = {o.venue_order_id: role for o, role in plan.kept}
    assert kept == {
        "btc-sl": OrderRole.PROTECTIVE_STOP,
        "eth-sl": OrderRole.PROTECTIVE_STOP,
        "btc-tp1": OrderRole.TAKE_PROFIT,
        "btc-tp2": OrderRole.TAKE_PROFIT,
        "eth-tp1": OrderRole.TAKE_PROFIT,
        "sol-tp1": OrderRole.TAKE_PROFIT,
    }
    assert not any(isinstance(s, Flatten) for s in plan.steps)
    assert plan.unprotected == ()


def test_take_profits_are_cancelled_only_when_configured_after_entries() -> None:
    safety = SafetyConfig(kill_switch_cancel_take_profits=True)
    plan = plan_kill_switch([BTC, ETH, SOL], BOOK, safety, STOPS)
    assert ids(plan, StepKind.CANCEL_ORDER) == [
        "doge-entry",
        "ada-stop-entry",
        "btc-tp1",
        "btc-tp2",
        "eth-tp1",
        "sol-tp1",
    ]
    assert {o.venue_order_id for o, _ in plan.kept} == {"btc-sl", "eth-sl"}


def test_flatten_is_last_and_only_when_configured() -> None:
    safety = SafetyConfig(kill_switch_flatten=True)
    plan = plan_kill_switch([BTC, ETH, SOL], BOOK, safety, lambda symbol: STOPS.get(symbol))
    flattens = [s for s in plan.steps if isinstance(s, Flatten)]
    assert flattens == [
        Flatten("PF_XBTUSD", SELL, 1.0),
        Flatten("PF_ETHUSD", BUY, 1.0),
        Flatten("PF_SOLUSD", SELL, 1.0),
    ]
    assert plan.steps[-3:] == tuple(flattens)
    assert isinstance(plan.steps[0], PlaceStop)


def test_a_partly_covered_position_gets_a_stop_for_the_exact_remainder() -> None:
    pos = position("PF_XBTUSD", PositionSide.LONG, size=0.3)
    partial = order("sl", "PF_XBTUSD", SELL, OrderType.STOP, size=0.1, reduce_only=True)
    plan = plan_kill_switch([pos], [partial], DEFAULT, {"PF_XBTUSD": 95.0})
    assert plan.steps == (PlaceStop("PF_XBTUSD", SELL, 0.2, 95.0),)


def test_an_unflagged_exit_side_stop_is_kept_as_protection() -> None:
    unflagged = order("sl", "PF_XBTUSD", SELL, OrderType.STOP)
    plan = plan_kill_switch([BTC], [unflagged], DEFAULT, {})
    assert plan.steps == ()
    assert plan.kept == ((unflagged, OrderRole.PROTECTIVE_STOP),)


def test_orders_not_working_are_ignored() -> None:
    done = order("old", "PF_DOGEUSD", BUY, OrderType.LIMIT, status=OrderStatus.CANCELLED)
    filled = order("full", "PF_DOGEUSD", BUY, OrderType.LIMIT, filled=1.0)
    plan = plan_kill_switch([], [done, filled], DEFAULT, {})
    assert plan == KillSwitchPlan((), (), ())


@pytest.mark.parametrize(
    ("stops", "mark", "reason"),
    [
        ({}, 100.0, UnprotectedReason.NO_STOP_PRICE),
        ({"PF_XBTUSD": float("nan")}, 100.0, UnprotectedReason.INVALID_STOP_PRICE),
        ({"PF_XBTUSD": 0.0}, 100.0, UnprotectedReason.INVALID_STOP_PRICE),
        ({"PF_XBTUSD": 101.0}, 100.0, UnprotectedReason.STOP_CROSSED),
    ],
)
def test_a_position_that_cannot_get_a_stop_is_reported_not_skipped(
    stops: dict[str, float], mark: float, reason: UnprotectedReason
) -> None:
    plan = plan_kill_switch(
        [position("PF_XBTUSD", PositionSide.LONG, mark=mark)], [], DEFAULT, stops
    )
    assert plan.steps == ()
    assert [(u.symbol, u.reason) for u in plan.unprotected] == [("PF_XBTUSD", reason)]
    assert any(line.startswith("UNPROTECTED PF_XBTUSD") for line in plan.lines())


def test_one_unprotectable_position_does_not_stop_the_others_being_protected() -> None:
    plan = plan_kill_switch([BTC, SOL], [], DEFAULT, STOPS)
    assert plan.steps == (PlaceStop("PF_SOLUSD", SELL, 1.0, 90.0),)
    assert [u.symbol for u in plan.unprotected] == ["PF_XBTUSD"]


def test_verify_refuses_a_stop_cancel_before_its_replacement() -> None:
    cancel = CancelOrder("sl", "PF_XBTUSD", SELL, OrderType.STOP, OrderRole.PROTECTIVE_STOP)
    replace = PlaceStop("PF_XBTUSD", SELL, 1.0, 95.0)
    with pytest.raises(UnsafeKillSwitchPlanError, match="before placing its replacement"):
        verify_plan(KillSwitchPlan((cancel, replace), (), ()), [BTC])
    verify_plan(KillSwitchPlan((replace, cancel), (), ()), [BTC])


# --- the property ----------------------------------------------------------------------

SYMBOLS = ("A", "B", "C", "D")


@st.composite
def books(draw: st.DrawFn) -> tuple[list[PositionReport], list[Order], SafetyConfig, dict]:
    held = draw(st.lists(st.sampled_from(SYMBOLS), unique=True, max_size=4))
    positions = [
        position(
            s,
            draw(st.sampled_from(list(PositionSide))),
            size=draw(st.sampled_from((0.1, 0.3, 1.0, 2.5))),
        )
        for s in held
    ]
    orders = [
        order(
            f"o{i}",
            draw(st.sampled_from(SYMBOLS)),
            draw(st.sampled_from(list(OrderSide))),
            draw(st.sampled_from(list(OrderType))),
            size=draw(st.sampled_from((0.1, 0.2, 1.0))),
            filled=draw(st.sampled_from((0.0, 0.0, 0.1))),
            reduce_only=draw(st.booleans()),
            status=draw(st.sampled_from(list(OrderStatus))),
        )
        for i in range(draw(st.integers(0, 12)))
    ]
    safety = SafetyConfig(
        kill_switch_flatten=draw(st.booleans()),
        kill_switch_cancel_take_profits=draw(st.booleans()),
    )
    stops = draw(st.dictionaries(st.sampled_from(SYMBOLS), st.sampled_from((50.0, 150.0))))
    return positions, orders, safety, stops


@settings(max_examples=300, deadline=None)
@given(book=books())
def test_no_plan_ever_cancels_a_stop_of_an_open_position_and_every_position_is_accounted(
    book: tuple[list[PositionReport], list[Order], SafetyConfig, dict],
) -> None:
    positions, orders, safety, stops = book
    plan = plan_kill_switch(positions, orders, safety, stops)
    exits = {(p.symbol, p.side.exit_order_side) for p in positions}
    by_id = {o.venue_order_id: o for o in orders}
    cancelled = [by_id[s.venue_order_id] for s in plan.steps if isinstance(s, CancelOrder)]
    for o in cancelled:
        assert o.type is not OrderType.STOP or (o.symbol, o.side) not in exits
        assert not o.reduce_only or classify_order(o, positions) is OrderRole.TAKE_PROFIT
    kinds = [s.kind for s in plan.steps]
    assert kinds == sorted(
        kinds, key=[StepKind.PLACE_STOP, StepKind.CANCEL_ORDER, StepKind.FLATTEN].index
    )
    assert (StepKind.FLATTEN in kinds) == (safety.kill_switch_flatten and bool(positions))
    working_entries = {
        o.venue_order_id
        for o in orders
        if o.status is OrderStatus.OPEN
        and o.size > o.filled
        and classify_order(o, positions) is OrderRole.ENTRY
    }
    assert working_entries <= {o.venue_order_id for o in cancelled}
    bare = {u.symbol for u in plan.unprotected}
    for p in positions:
        added = sum(
            (
                Decimal(repr(s.size))
                for s in plan.steps
                if isinstance(s, PlaceStop) and s.symbol == p.symbol
            ),
            Decimal(0),
        )
        # Protected in full after the plan, or reported to the operator: never silently bare.
        assert p.symbol in bare or _stop_cover(p, orders) + added >= Decimal(repr(p.size))


def _stop_cover(p: PositionReport, orders: list[Order]) -> Decimal:
    """Contracts still to fill on working stops on the exit side of `p`."""
    return sum(
        (
            Decimal(repr(o.size)) - Decimal(repr(o.filled))
            for o in orders
            if o.status is OrderStatus.OPEN
            and o.type is OrderType.STOP
            and (o.symbol, o.side) == (p.symbol, p.side.exit_order_side)
        ),
        Decimal(0),
    )
