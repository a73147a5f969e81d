"""Reconciliation: PHANTOM imported and protected, ORPHAN closed on a second check, the
unknown deferred, and nothing destroyed."""

from __future__ import annotations

from collections.abc import Sequence, Set

from position_builders import GRID, SYMBOL, T0, filled, pending, protected, protection, stop_order

from core.actions import Cancel, CloseRecord, ImportPosition, PlaceStop
from core.orders import Order, OrderSide, OrderType, PositionReport, PositionSide
from core.positions import Position, PositionState, StopFilled, StopMissing, StopPlaced, apply
from core.reconcile import ImportProtection, MarketGrid, ReconcileResult, reconcile

LONG_REPORT = PositionReport(SYMBOL, PositionSide.LONG, 10.0, 100.0, mark_price=102.0)


def run(
    known: Sequence[Position],
    reports: Sequence[PositionReport],
    orders: Sequence[Order] = (),
    *,
    startup: bool = False,
    missing: Set[str] = frozenset(),
    rule: ImportProtection | None = None,
) -> ReconcileResult:
    return reconcile(
        list(known),
        list(reports),
        list(orders),
        startup=startup,
        previously_missing=set(missing),
        protection=rule or protection(),
        now=T0,
    )


def assert_never_destructive(result: ReconcileResult) -> None:
    kinds = {a.action_type.value for a in result.actions}
    assert not kinds & {"flatten", "cancel"}


def logs_with(result: ReconcileResult, word: str) -> list[str]:
    return [line for line in result.log_lines if word in line]


# --- PHANTOM ----------------------------------------------------------------------------


def test_phantom_is_logged_imported_and_protected_with_a_stop() -> None:
    result = run([], [LONG_REPORT])
    assert_never_destructive(result)
    assert len(logs_with(result, "PHANTOM")) == 1
    imp, stop = result.actions
    assert isinstance(imp, ImportPosition) and imp.size == 10.0 and imp.stop_order_id is None
    assert isinstance(stop, PlaceStop)
    # 2 % below the mark, on the tick grid, rounded away from the price.
    assert stop.side is OrderSide.SELL and stop.trigger_price == 99.5 and stop.size == 10.0
    (position,) = result.positions
    assert position.imported and position.state is PositionState.OPEN_UNPROTECTED
    assert stop.client_id == position.stop_client_id


def test_phantom_stop_distance_comes_from_atr_when_known() -> None:
    rule = ImportProtection(0.02, 3.0, {SYMBOL: GRID}, atr={SYMBOL: 1.2})
    short = PositionReport(SYMBOL, PositionSide.SHORT, 4.0, 100.0)  # no mark: the entry
    result = run([], [short], rule=rule)
    stop = result.actions[1]
    assert stop.side is OrderSide.BUY and stop.trigger_price == 104.0  # 100 + 3 x 1.2, up to 0.5


def test_phantom_with_a_venue_stop_adopts_it_instead_of_placing_a_duplicate() -> None:
    venue_stop = stop_order("vs-1", trigger=95.0, client_id=None)
    result = run([], [LONG_REPORT], [venue_stop])
    assert_never_destructive(result)
    assert not any(isinstance(a, PlaceStop) for a in result.actions)
    (imp,) = result.actions
    assert isinstance(imp, ImportPosition) and imp.stop_order_id == "vs-1"
    (position,) = result.positions
    assert position.state is PositionState.PROTECTED and position.stop_order_id == "vs-1"
    assert "adopted" in logs_with(result, "PHANTOM")[0]
    assert not logs_with(result, "UNKNOWN order")  # the adopted stop is understood now


def test_phantom_does_not_adopt_stops_that_do_not_protect_it() -> None:
    not_reduce_only = stop_order("a", reduce_only=False)
    wrong_side = stop_order("b", side=OrderSide.BUY)
    too_small = stop_order("c", size=4.0)
    above_mark = stop_order("d", trigger=105.0)
    a_tp = stop_order("e", order_type=OrderType.TAKE_PROFIT, trigger=120.0)
    orders = [not_reduce_only, wrong_side, too_small, above_mark, a_tp]
    result = run([], [LONG_REPORT], orders)
    assert [a.action_type.value for a in result.actions] == ["import_position", "place_stop"]
    assert len(logs_with(result, "UNKNOWN order")) == 5  # all left alone, all logged


def test_phantom_import_is_deterministic_so_a_retry_reuses_its_client_ids() -> None:
    assert run([], [LONG_REPORT]).actions == run([], [LONG_REPORT]).actions


def test_phantom_on_a_market_without_a_grid_is_deferred_not_guessed() -> None:
    report = PositionReport("PF_UNKNOWN", PositionSide.LONG, 1.0, 5.0)
    result = run([], [report])
    assert result.actions == () and result.positions == ()
    assert "deferred" in logs_with(result, "PHANTOM")[0]


# --- ORPHAN -----------------------------------------------------------------------------


def test_orphan_needs_two_consecutive_sightings_never_flattens_and_cancels_its_exits() -> None:
    p = protected()
    first = run([p], [])
    assert first.actions == () and first.events == ()
    assert first.suspected_missing == {"p1"}
    assert "ORPHAN suspected" in logs_with(first, "ORPHAN")[0]
    second = run([p], [], missing=first.suspected_missing)
    record, *cancels = second.actions
    assert record == CloseRecord("p1", SYMBOL, "ORPHAN: absent at the venue twice")
    # its own stop and TPs would stay working on a flat market: cancelled, nothing else
    assert all(isinstance(a, Cancel) for a in cancels)
    assert {a.venue_order_id for a in cancels} == {"s-p1", "t1-p1", "t2-p1", "t3-p1"}
    assert second.positions[0].state is PositionState.CLOSED
    assert second.suspected_missing == frozenset()


def test_an_orphan_seen_again_at_the_venue_is_no_longer_suspected() -> None:
    p = protected()
    first = run([p], [])
    back = run([p], [LONG_REPORT], [stop_order("s-p1")], missing=first.suspected_missing)
    assert back.suspected_missing == frozenset() and back.actions == ()
    # and a later absence starts counting from one again
    again = run([p], [], missing=back.suspected_missing)
    assert again.actions == ()


def test_at_startup_the_previous_sighting_does_not_count() -> None:
    p = protected()
    result = run([p], [], startup=True, missing={"p1"})
    assert result.actions == () and result.suspected_missing == {"p1"}


# --- known positions --------------------------------------------------------------------


def test_a_known_position_without_a_working_stop_gets_place_stop() -> None:
    p = protected()
    result = run([p], [LONG_REPORT], [])
    assert result.events == (StopMissing("p1", "no working stop at the venue"),)
    assert result.actions == (PlaceStop("p1", SYMBOL, OrderSide.SELL, 10.0, 90.0, "p1-sl-1"),)


def test_our_own_stop_whose_acknowledgement_was_lost_is_adopted_by_client_id() -> None:
    p = filled()  # PLACE_STOP p1-sl-0 was sent; its acknowledgement never arrived
    own = stop_order("v-77", client_id="p1-sl-0")
    result = run([p], [LONG_REPORT], [own])
    assert result.events == (StopPlaced("p1", "v-77", 90.0, 10.0),)
    assert result.actions == ()
    assert result.positions[0].state is PositionState.PROTECTED


def test_an_unprotected_position_is_asked_its_current_stop_again_not_a_new_one() -> None:
    p = filled()
    result = run([p], [LONG_REPORT], [])
    assert [a.client_id for a in result.actions] == ["p1-sl-0"]  # recognisable if in flight


def test_a_protected_position_that_matches_the_venue_needs_nothing() -> None:
    result = run([protected()], [LONG_REPORT], [stop_order("s-p1")])
    assert result.actions == () and result.events == ()
    assert not logs_with(result, "UNKNOWN")


def test_the_other_side_at_the_venue_is_suspected_then_closes_the_record_and_is_imported() -> None:
    # closed by hand and reopened the other way: the record's sell stop could never
    # protect a short, so waiting forever would leave the short bare
    short = PositionReport(SYMBOL, PositionSide.SHORT, 10.0, 100.0, mark_price=100.0)
    first = run([protected()], [short], [])
    assert first.actions == () and first.events == ()
    assert "record kept until a second check" in logs_with(first, "UNKNOWN")[0]
    second = run([protected()], [short], [], missing=first.suspected_missing)
    kinds = [a.action_type.value for a in second.actions]
    assert kinds[0] == "close_record" and "import_position" in kinds
    (stop,) = [a for a in second.actions if isinstance(a, PlaceStop)]
    assert stop.side is OrderSide.BUY and stop.size == 10.0 and stop.trigger_price > 100.0
    assert any("ORPHAN" in line for line in second.log_lines)
    assert any("PHANTOM" in line for line in second.log_lines)


def test_a_size_mismatch_is_resolved_from_the_venue_and_the_stop_covers_the_venue_size() -> None:
    # Deferring it forever (the seed's "size mismatch ... deferred" every cycle) left a
    # stop and TPs sized for a position the venue did not hold.
    bigger = PositionReport(SYMBOL, PositionSide.LONG, 12.0, 100.0)
    result = run([protected()], [bigger], [])
    (line,) = logs_with(result, "SIZE_MISMATCH")
    assert "record 10.0, venue 12.0; resolved from the venue" in line
    (record,) = result.positions
    assert record.size == 12.0 and record.size_basis_ts == T0
    stops = [a for a in result.actions if a.action_type.value == "place_stop"]
    assert [s.size for s in stops] == [12.0]
    # the TP ladder (0.5/0.3/0.2 of 12 on a lot of 1) is re-sized: TP1 5 -> 6, TP3 2 -> 3
    placed = {a.level: a.size for a in result.actions if a.action_type.value == "place_tp"}
    assert placed == {1: 6.0, 3: 3.0}
    cancelled = {a.venue_order_id for a in result.actions if isinstance(a, Cancel)}
    assert cancelled == {"t1-p1", "t3-p1"}
    assert sum(t.size for t in record.tps) == 12.0


def test_a_smaller_venue_size_shrinks_the_record_and_its_ladder_never_beyond_what_is_held() -> None:
    smaller = PositionReport(SYMBOL, PositionSide.LONG, 4.0, 100.0)
    orders = [stop_order("s-p1")]
    result = run([protected()], [smaller], orders)
    (record,) = result.positions
    assert record.size == 4.0 and record.stop_order_id == "s-p1"  # a bigger stop still covers
    assert sum(t.size for t in record.tps if not t.filled) == 4.0
    assert not any(a.action_type.value in ("place_stop", "move_stop") for a in result.actions)


def test_several_reports_or_records_for_one_market_are_deferred() -> None:
    two = [LONG_REPORT, PositionReport(SYMBOL, PositionSide.SHORT, 1.0, 100.0)]
    assert run([], two).actions == ()
    result = run([protected("a"), protected("b")], [LONG_REPORT])
    assert result.actions == () and "several open records" in logs_with(result, "UNKNOWN")[0]


def test_a_foreign_stop_for_a_market_we_hold_nothing_in_is_left_alone() -> None:
    foreign = stop_order("x-1", symbol="PF_ETHUSD", client_id="manual")
    result = run([], [], [foreign])
    assert result.actions == ()
    assert "left alone" in logs_with(result, "UNKNOWN order")[0]


def test_a_pending_entry_that_filled_unseen_is_replayed_and_protected() -> None:
    p = pending()
    result = run([p], [LONG_REPORT], [])
    kinds = [a.action_type.value for a in result.actions]
    assert kinds == ["place_stop", "place_tp", "place_tp", "place_tp"]
    assert result.positions[0].state is PositionState.OPEN_UNPROTECTED


def test_a_pending_entry_still_working_is_replayed_as_a_partial_fill() -> None:
    p = pending()
    working = stop_order("e-1", order_type=OrderType.LIMIT, client_id=p.entry_client_id)
    partial = PositionReport(SYMBOL, PositionSide.LONG, 4.0, 100.0)
    result = run([p], [partial], [working])
    assert [a.action_type.value for a in result.actions] == ["place_stop"]
    assert result.positions[0].size == 4.0 and not result.positions[0].entry_complete


def test_a_pending_entry_facing_an_opposite_venue_position_is_deferred() -> None:
    short = PositionReport(SYMBOL, PositionSide.SHORT, 10.0, 100.0)
    result = run([pending()], [short])
    assert result.actions == () and logs_with(result, "deferred")


def test_closed_records_are_passed_through_untouched() -> None:
    closed, _ = apply(protected(), StopFilled("p1", 10.0, 90.0))
    result = run([closed], [])
    assert result.positions == (closed,) and result.actions == () and result.log_lines == ()


def test_grid_is_used_for_the_lot_tolerance() -> None:
    rule = protection(PF_ETHUSD=MarketGrid(0.05, 0.01))
    report = PositionReport("PF_ETHUSD", PositionSide.LONG, 0.37, 2000.0, mark_price=2000.0)
    result = run([], [report], rule=rule)
    assert result.actions[1].trigger_price == 1960.0
