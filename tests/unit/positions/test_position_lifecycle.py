"""The position lifecycle as the gateway sees it: which actions each event calls for."""

from __future__ import annotations

from dataclasses import replace

import pytest
from position_builders import SYMBOL, T0, filled, pending, protected

from core.actions import (
    Cancel,
    CloseRecord,
    Flatten,
    MoveStop,
    NoAction,
    PlaceEntry,
    PlaceStop,
    PlaceTp,
)
from core.orders import OrderSide, OrderType, PositionSide
from core.positions import (
    CloseRequested,
    EntryCancelled,
    EntryFilled,
    EntryPartiallyFilled,
    FlattenFilled,
    PositionError,
    PositionGone,
    PositionState,
    StopCancelled,
    StopFilled,
    StopMissing,
    StopMoved,
    StopPlaced,
    StopRejected,
    TpCancelled,
    TpFilled,
    TpPlaced,
    TpRejected,
    apply,
    open_position,
    plan_tp_backfill,
    tp_backfill,
)
from core.protection import ProtectionRules, plan_protection


def kinds(actions: list) -> list[str]:
    return [a.action_type.value for a in actions]


def test_open_position_returns_pending_entry_and_its_place_entry() -> None:
    p, entry = open_position(
        position_id="p9",
        symbol=SYMBOL,
        side=PositionSide.SHORT,
        size=3.0,
        stop_price=110.0,
        tp_prices=(90.0, None, 80.0),
        tp_fractions=(0.5, 0.3, 0.2),
        tick_size=0.5,
        lot_size=1.0,
        opened_at=T0,
        limit_price=100.0,
    )
    assert p.state is PositionState.PENDING_ENTRY and p.size == 0
    assert entry == PlaceEntry("p9", SYMBOL, OrderSide.SELL, OrderType.LIMIT, 3.0, "p9-en-0", 100.0)
    assert p.tp_order_ids == {1: None, 2: None, 3: None}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stop_price": 120.0}, "profit side"),
        ({"tp_prices": (110.0, 120.0)}, "3 tp_prices"),
        ({"tp_fractions": (0.5, 0.5, 0.0)}, "positive"),
        ({"opened_at": T0.replace(tzinfo=None)}, "timezone"),
    ],
)
def test_open_position_refuses_bad_plans(change: dict, message: str) -> None:
    args = {
        "position_id": "p1",
        "symbol": SYMBOL,
        "side": PositionSide.LONG,
        "size": 1.0,
        "stop_price": 90.0,
        "tp_prices": (110.0, 120.0, 130.0),
        "tp_fractions": (0.5, 0.3, 0.2),
        "tick_size": 0.5,
        "lot_size": 1.0,
        "opened_at": T0,
        "limit_price": 100.0,
    }
    with pytest.raises(ValueError, match=message):
        open_position(**{**args, **change})


def test_entry_fill_places_the_stop_and_every_tp_level() -> None:
    p, actions = apply(pending(), EntryFilled("p1", 10.0, 100.0))
    assert p.state is PositionState.OPEN_UNPROTECTED
    assert kinds(actions) == ["place_stop", "place_tp", "place_tp", "place_tp"]
    stop = actions[0]
    assert stop == PlaceStop("p1", SYMBOL, OrderSide.SELL, 10.0, 90.0, "p1-sl-0")
    tps = [a for a in actions if isinstance(a, PlaceTp)]
    assert [(t.level, t.size, t.trigger_price) for t in tps] == [
        (1, 5.0, 110.0),
        (2, 3.0, 120.0),
        (3, 2.0, 130.0),
    ]
    assert sum(t.size for t in tps) == p.size  # the ladder covers the position


def test_tp_ids_are_stored_on_the_position_and_the_stop_makes_it_protected() -> None:
    p = protected()
    assert p.state is PositionState.PROTECTED
    assert p.stop_order_id == "s-p1"
    assert p.tp_order_ids == {1: "t1-p1", 2: "t2-p1", 3: "t3-p1"}


def test_each_tp_level_is_validated_on_its_own_at_entry() -> None:
    p = pending()
    p = replace(p, tps=(replace(p.tps[0], price=100.0), *p.tps[1:]))  # TP1 at the fill price
    _, actions = apply(p, EntryFilled("p1", 10.0, 100.0))
    assert [a.level for a in actions if isinstance(a, PlaceTp)] == [2, 3]


def test_tp1_fill_cancels_nothing_and_moves_the_stop_to_break_even_only_when_asked() -> None:
    p = protected()
    kept, actions = apply(p, TpFilled("p1", 1, 5.0, 110.0))
    assert kept.state is PositionState.PROTECTED and kept.size == 5.0 and actions == []

    moved, actions = apply(p, TpFilled("p1", 1, 5.0, 110.0), break_even_after_tp1=True)
    assert actions == [MoveStop("p1", SYMBOL, OrderSide.SELL, 5.0, 100.0, "s-p1", "p1-mv-1")]
    done, _ = apply(moved, StopMoved("p1", "s2", 100.0, 5.0))
    assert done.stop_order_id == "s2" and done.stop_price == 100.0
    # The replaced stop's cancellation echoing back does not unprotect the position.
    still, actions = apply(done, StopCancelled("p1", "s-p1", "replaced"))
    assert still.state is PositionState.PROTECTED and actions == []


def test_stop_fill_closes_and_cancels_the_working_tps_but_not_the_filled_stop() -> None:
    p, actions = apply(protected(), StopFilled("p1", 10.0, 90.0))
    assert p.state is PositionState.CLOSED and p.size == 0
    assert {a.venue_order_id for a in actions if isinstance(a, Cancel)} == {
        "t1-p1",
        "t2-p1",
        "t3-p1",
    }


def test_last_tp_fill_closes_and_cancels_the_stop() -> None:
    p = protected()
    p, _ = apply(p, TpFilled("p1", 1, 5.0, 110.0))
    p, _ = apply(p, TpFilled("p1", 2, 3.0, 120.0))
    p, actions = apply(p, TpFilled("p1", 3, 2.0, 130.0))
    assert p.state is PositionState.CLOSED
    assert actions == [Cancel("p1", SYMBOL, "TP3 filled", venue_order_id="s-p1")]


def test_repeated_fill_reports_change_nothing() -> None:
    p = protected()
    again, actions = apply(p, EntryFilled("p1", 10.0, 100.0))
    assert again == p and actions == []
    once, _ = apply(p, TpFilled("p1", 1, 5.0, 110.0))
    twice, actions = apply(once, TpFilled("p1", 1, 5.0, 110.0))
    assert twice == once and actions == []


def test_partial_entry_fills_protect_the_first_contract_and_resize_the_stop() -> None:
    p, actions = apply(pending(), EntryPartiallyFilled("p1", 4.0, 100.0))
    assert p.state is PositionState.OPEN_UNPROTECTED
    assert actions == [PlaceStop("p1", SYMBOL, OrderSide.SELL, 4.0, 90.0, "p1-sl-0")]
    p, actions = apply(p, EntryPartiallyFilled("p1", 7.0, 100.0))
    assert actions == []  # the stop is still in flight; resized once acknowledged
    p, actions = apply(p, StopPlaced("p1", "s1", 90.0, 4.0))
    assert p.state is PositionState.PROTECTED
    assert actions == [MoveStop("p1", SYMBOL, OrderSide.SELL, 7.0, 90.0, "s1", "p1-mv-1")]
    p, actions = apply(p, EntryFilled("p1", 10.0, 100.0))
    assert kinds(actions) == ["move_stop", "place_tp", "place_tp", "place_tp"]
    assert actions[0].size == 10.0


def test_a_partly_filled_entry_cancelled_keeps_the_fill_and_places_tps_for_it() -> None:
    p, _ = apply(pending(), EntryPartiallyFilled("p1", 4.0, 100.0))
    p, actions = apply(p, EntryCancelled("p1", "expired"))
    assert p.state is PositionState.OPEN_UNPROTECTED and p.entry_complete
    assert sum(a.size for a in actions if isinstance(a, PlaceTp)) == 4.0


def test_a_rejected_stop_is_retried_under_a_new_client_id_by_the_planner_only() -> None:
    # The machine never resends a refused stop itself (the seed resent the same invalid
    # price four times a cycle): it moves to the next attempt and the protection planner
    # sends that one, checked against the mark and capped per cycle.
    p = filled()
    p, actions = apply(p, StopRejected("p1", "p1-sl-0", "would trigger"))
    assert actions == []
    assert (p.stop_attempt, p.stop_rejections, p.stop_problem) == (1, 1, "would trigger")
    rules = ProtectionRules(stop_attempts_per_cycle=2)
    _, retry = plan_protection(p, 100.0, rules, sent_this_cycle=1)
    assert retry == [PlaceStop("p1", SYMBOL, OrderSide.SELL, 10.0, 90.0, "p1-sl-1")]
    assert plan_protection(p, 100.0, rules, sent_this_cycle=2)[1] == []
    stale, actions = apply(p, StopRejected("p1", "p1-sl-0", "late duplicate"))
    assert stale == p and actions == []


def test_a_rejected_stop_replacement_keeps_the_working_stop() -> None:
    p = protected()
    same, actions = apply(p, StopRejected("p1", "p1-mv-1", "bad price"))
    assert same.state is PositionState.PROTECTED and same.stop_order_id == "s-p1"
    assert [type(a) for a in actions] == [NoAction]


def test_a_cancelled_or_missing_stop_is_placed_again() -> None:
    p, actions = apply(protected(), StopCancelled("p1", "s-p1", "by someone"))
    assert p.state is PositionState.OPEN_UNPROTECTED
    assert actions == [PlaceStop("p1", SYMBOL, OrderSide.SELL, 10.0, 90.0, "p1-sl-1")]
    p, actions = apply(protected(), StopMissing("p1", "reconcile"))
    assert p.state is PositionState.OPEN_UNPROTECTED and actions[0].client_id == "p1-sl-1"
    # Still unprotected: the same attempt is asked again, so the gateway can recognise it.
    _, again = apply(p, StopMissing("p1", "reconcile"))
    assert again == actions


def test_a_partial_stop_fill_re_protects_the_rest() -> None:
    p, actions = apply(protected(), StopFilled("p1", 4.0, 90.0))
    assert p.state is PositionState.OPEN_UNPROTECTED and p.size == 6.0
    assert actions == [PlaceStop("p1", SYMBOL, OrderSide.SELL, 6.0, 90.0, "p1-sl-1")]


def test_close_requested_flattens_without_a_side_and_stops_stay_until_flat() -> None:
    p, actions = apply(protected(), CloseRequested("p1", "operator"))
    assert p.state is PositionState.CLOSING
    assert actions == [Flatten(SYMBOL, "operator", "p1-fl-0", "p1")]
    rest, actions = apply(p, FlattenFilled("p1", 4.0, 100.0))
    # the rest goes out under the next attempt's id: one id, one order, never reused
    assert rest.state is PositionState.CLOSING
    assert actions == [Flatten(SYMBOL, "operator", "p1-fl-1", "p1")]
    done, actions = apply(rest, FlattenFilled("p1", 6.0, 100.0))
    assert done.state is PositionState.CLOSED
    assert {a.venue_order_id for a in actions} == {"s-p1", "t1-p1", "t2-p1", "t3-p1"}


def test_close_requested_while_the_entry_works_cancels_the_entry_too() -> None:
    p, _ = apply(pending(), EntryPartiallyFilled("p1", 4.0, 100.0))
    _, actions = apply(p, CloseRequested("p1", "kill switch"))
    assert actions == [
        Cancel("p1", SYMBOL, "kill switch", client_id="p1-en-0"),
        Flatten(SYMBOL, "kill switch", "p1-fl-0", "p1"),
    ]


def test_position_gone_closes_the_record_and_cancels_its_own_exits_but_never_flattens() -> None:
    # Its stop and TPs would otherwise stay working on a flat market and later close
    # part of a new position (issue 9, downtime).
    p, actions = apply(protected(), PositionGone("p1", "ORPHAN", realised_pnl=-3.5))
    assert p.state is PositionState.CLOSED and p.realised_pnl == -3.5
    assert actions[0] == CloseRecord("p1", SYMBOL, "ORPHAN")
    assert all(isinstance(a, Cancel) for a in actions[1:])
    assert {a.venue_order_id for a in actions[1:]} == {"s-p1", "t1-p1", "t2-p1", "t3-p1"}


def test_late_acknowledgements_after_close_are_cancelled() -> None:
    closed, _ = apply(protected(), StopFilled("p1", 10.0, 90.0))
    _, actions = apply(closed, TpPlaced("p1", 2, "t-late", 120.0, 3.0))
    assert actions == [Cancel("p1", SYMBOL, "take profit acknowledged after close", "t-late")]
    _, actions = apply(closed, StopPlaced("p1", "s-late", 90.0, 10.0))
    assert [a.venue_order_id for a in actions] == ["s-late"]


def test_a_rejected_or_cancelled_tp_moves_to_its_next_attempt() -> None:
    p = filled()
    p, _ = apply(p, TpRejected("p1", 2, "p1-tp2-0", "too close"))
    assert p.tps[1].attempt == 1 and p.tp_client_id(2) == "p1-tp2-1"
    q, _ = apply(protected(), TpCancelled("p1", 3, "t3-p1", "by venue"))
    assert q.tp_order_ids[3] is None and q.tps[2].attempt == 1


# --- TP backfill ---------------------------------------------------------------------


def test_backfill_places_only_missing_levels_that_are_still_valid() -> None:
    p, _ = apply(protected(), TpCancelled("p1", 2, "t2-p1", "x"))
    p, _ = apply(p, TpCancelled("p1", 3, "t3-p1", "x"))
    placed = tp_backfill(p, mark_price=100.0, tick_size=0.5, min_distance=1.0)
    assert [(a.level, a.size, a.client_id) for a in placed] == [
        (2, 3.0, "p1-tp2-1"),
        (3, 2.0, "p1-tp3-1"),
    ]


def test_backfill_skips_a_passed_or_too_close_level_and_keeps_the_others() -> None:
    p = filled()  # no TP acknowledged yet
    placed, skipped = plan_tp_backfill(p, mark_price=119.5, tick_size=0.5, min_distance=1.0)
    assert [a.level for a in placed] == [3]
    assert "TP1 skipped: already passed" in skipped[0]
    assert "TP2 skipped: too close" in skipped[1]


def test_backfill_does_nothing_for_a_closing_pending_or_fully_covered_position() -> None:
    assert tp_backfill(pending(), 100.0, 0.5, 1.0) == []
    closing, _ = apply(filled(), CloseRequested("p1", "x"))
    assert tp_backfill(closing, 100.0, 0.5, 1.0) == []
    assert tp_backfill(protected(), 100.0, 0.5, 1.0) == []


def test_backfill_never_covers_more_than_the_position() -> None:
    p = protected()
    p, _ = apply(p, TpFilled("p1", 1, 5.0, 110.0))
    p, _ = apply(p, StopFilled("p1", 4.0, 90.0))  # 1 contract left, TP2 (3) and TP3 (2) working
    p, _ = apply(p, TpCancelled("p1", 3, "t3-p1", "x"))
    assert tp_backfill(p, 100.0, 0.5, 1.0) == []


def test_backfill_for_a_short_uses_the_buy_side_and_prices_below() -> None:
    p = filled(side=PositionSide.SHORT)
    placed = tp_backfill(p, mark_price=100.0, tick_size=0.5, min_distance=1.0)
    assert {a.side for a in placed} == {OrderSide.BUY}
    assert [a.trigger_price for a in placed] == [90.0, 80.0, 70.0]


@pytest.mark.parametrize(
    "make",
    [
        lambda: EntryFilled("p1", 0.0, 100.0),
        lambda: StopFilled("p1", 1.0, -1.0),
        lambda: TpPlaced("p1", 1, "t", 110.0, 0.0),
    ],
)
def test_events_refuse_a_non_positive_size_or_price(make: object) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        make()  # type: ignore[operator]


def test_an_acknowledgement_giving_one_venue_id_to_two_orders_is_refused():
    """Found by the property test: a TP acknowledged under the stop's venue id, then a size
    correction that re-sizes the ladder, cancelled the working stop of an open position."""
    p = protected("p1")
    assert p.stop_order_id is not None
    with pytest.raises(PositionError, match="is already its stop"):
        apply(p, TpPlaced("p1", 1, p.stop_order_id, 110.0, 4.0))
    tp1 = apply(p, TpPlaced("p1", 1, "t-1", 110.0, 4.0))[0]
    with pytest.raises(PositionError, match="is already its tp1"):
        apply(tp1, StopMoved("p1", "t-1", 95.0, 10.0))
    with pytest.raises(PositionError, match="is already its tp1"):
        apply(tp1, TpPlaced("p1", 2, "t-1", 120.0, 3.0))
