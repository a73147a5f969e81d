"""Invariants of the position machine and of reconciliation, over generated histories."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from position_builders import T0, in_state, pending, protection, stop_order

from core.actions import Cancel, CloseRecord, Flatten, ImportPosition, MoveStop, PlaceStop
from core.orders import OrderSide, PositionReport, PositionSide
from core.position_events import SizeCorrected
from core.positions import (
    OPEN_STATES,
    TERMINAL_STATES,
    CloseRequested,
    EntryCancelled,
    EntryFilled,
    EntryPartiallyFilled,
    EntryRejected,
    FlattenFilled,
    Position,
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
)
from core.protection import ProtectionRules, needs_stop, plan_protection
from core.reconcile import reconcile

SIZES = st.sampled_from([1.0, 2.0, 3.0, 5.0, 10.0])
PRICES = st.sampled_from([85.0, 90.0, 100.0, 110.0, 125.0])
LEVELS = st.sampled_from([1, 2, 3])


# One fixed strategy of event "recipes", turned into an event for the current position in
# plain Python: building a fresh strategy per step is what makes such tests slow.
RECIPES = st.tuples(
    st.integers(0, 17),  # event type
    st.integers(0, 6),  # 6 = an event for a stranger position
    st.integers(0, 9),  # which known id (or a fresh one)
    SIZES,
    PRICES,
    LEVELS,
    st.sampled_from([0.0, 1.0, 4.0]),  # cumulative entry fill growth
)


def event_from(recipe: tuple, p: Position) -> object:
    kind, who, pick, size, price, level, growth = recipe
    pid = p.position_id if who < 6 else "stranger"
    venue_ids = [x for x in (p.stop_order_id, *p.tp_order_ids.values()) if x] + ["v1", "v2"]
    vid = venue_ids[pick % len(venue_ids)]
    client_ids = [p.stop_client_id, p.tp_client_id(1), p.tp_client_id(2), "c-x"]
    cid = client_ids[pick % len(client_ids)]
    cumulative = max(p.entry_filled + growth, 1.0)
    makers = [
        lambda: EntryPartiallyFilled(pid, cumulative, price),
        lambda: EntryFilled(pid, cumulative, price),
        lambda: EntryRejected(pid, "r"),
        lambda: EntryCancelled(pid, "r"),
        lambda: StopPlaced(pid, vid, price, size),
        lambda: StopMoved(pid, vid, price, size),
        lambda: StopRejected(pid, cid, "r"),
        lambda: StopCancelled(pid, vid, "r"),
        lambda: StopMissing(pid, "r"),
        lambda: StopFilled(pid, size, price),
        lambda: TpPlaced(pid, level, vid, price, size),
        lambda: TpRejected(pid, level, cid, "r"),
        lambda: TpCancelled(pid, level, vid, "r"),
        lambda: TpFilled(pid, level, size, price),
        lambda: CloseRequested(pid, "r"),
        lambda: FlattenFilled(pid, size, price),
        lambda: PositionGone(pid, "r"),
        lambda: SizeCorrected(pid, size, T0, "r"),
    ]
    return makers[kind]()


def check_step(
    before: Position, event: object, after: Position, actions: list, stops_asked: set[str]
) -> None:
    assert event.position_id == before.position_id  # type: ignore[attr-defined]
    for action in actions:
        assert getattr(action, "position_id", before.position_id) == before.position_id
        assert getattr(action, "symbol", before.symbol) == before.symbol
        if isinstance(action, PlaceStop | MoveStop):
            assert action.side is before.side.exit_order_side  # a stop only ever reduces
            stops_asked.add(action.client_id)
        if isinstance(action, Flatten):
            # Only a deliberate close of a position we hold; never out of confusion.
            assert isinstance(event, CloseRequested | FlattenFilled)
            assert before.state in OPEN_STATES
        working_stop = before.stop_order_id
        if isinstance(action, Cancel) and working_stop and action.venue_order_id == working_stop:
            assert after.state is PositionState.CLOSED  # the working stop goes only when flat
    assert after.size >= 0
    if isinstance(event, SizeCorrected) and after.state in OPEN_STATES:
        assert after.size == event.venue_size  # the venue's truth, taken as it is
    if after.state in OPEN_STATES:
        assert after.size > 0
        if after.stop_order_id is None and after.stop_client_id not in stops_asked:
            # A refused stop is never resent by the machine; the protection planner asks
            # for the next attempt's id (never the refused one again).
            assert needs_stop(after)
            _, retry = plan_protection(after, None, ProtectionRules(), sent_this_cycle=0)
            assert [a.client_id for a in retry] == [after.stop_client_id]
            stops_asked.add(after.stop_client_id)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recipes=st.lists(RECIPES, min_size=1, max_size=40),
    side=st.sampled_from(list(PositionSide)),
    be=st.booleans(),
)
def test_no_open_position_is_left_without_a_stop_and_no_flatten_for_an_unknown_position(
    recipes: list[tuple], side: PositionSide, be: bool
) -> None:
    p = pending(side=side)
    stops_asked: set[str] = set()
    for recipe in recipes:
        event = event_from(recipe, p)
        try:
            after, actions = apply(p, event, break_even_after_tp1=be)  # type: ignore[arg-type]
        except PositionError:
            continue  # refused: the position is unchanged and nothing was issued
        check_step(p, event, after, actions, stops_asked)
        p = after


# --- reconciliation ---------------------------------------------------------------------

SYMBOLS = ["PF_XBTUSD", "PF_ETHUSD", "PF_SOLUSD"]  # PF_SOLUSD has no market grid
SIDES = st.sampled_from(list(PositionSide))

known_positions = st.lists(
    st.tuples(st.sampled_from(list(PositionState)), st.sampled_from(SYMBOLS), SIDES),
    max_size=4,
).map(lambda rows: [in_state(s, f"k{i}", symbol=sym, side=d) for i, (s, sym, d) in enumerate(rows)])
reports = st.lists(
    st.builds(
        PositionReport,
        st.sampled_from(SYMBOLS),
        SIDES,
        SIZES,
        st.just(100.0),
        st.sampled_from([None, 95.0, 105.0]),
    ),
    max_size=3,
)


@st.composite
def venue_orders(draw: st.DrawFn, known: list[Position]) -> list:
    client_ids = [None, "manual", *(p.stop_client_id for p in known)]
    return draw(
        st.lists(
            st.builds(
                lambda i, sym, side, cid, ro, trig: stop_order(
                    f"o{i}", symbol=sym, side=side, client_id=cid, reduce_only=ro, trigger=trig
                ),
                st.integers(0, 99),
                st.sampled_from(SYMBOLS),
                st.sampled_from(list(OrderSide)),
                st.sampled_from(client_ids),
                st.booleans(),
                PRICES,
            ),
            max_size=4,
            unique_by=lambda o: o.venue_order_id,
        )
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), known=known_positions, venue=reports, startup=st.booleans())
def test_reconcile_never_flattens_and_cancels_only_orders_its_records_name(
    data: st.DataObject, known: list[Position], venue: list[PositionReport], startup: bool
) -> None:
    orders = data.draw(venue_orders(known))
    missing = data.draw(st.sets(st.sampled_from([p.position_id for p in known] or ["none"])))
    result = reconcile(
        known,
        venue,
        orders,
        startup=startup,
        previously_missing=missing,
        protection=protection(),
        now=T0,
    )
    assert not any(isinstance(a, Flatten) for a in result.actions)

    reports_by_symbol = {s: [r for r in venue if r.symbol == s] for s in SYMBOLS}
    tracked = [p for p in known if p.state not in TERMINAL_STATES]
    tracked_by_symbol = {s: [p for p in tracked if p.symbol == s] for s in SYMBOLS}
    closed_now = {a.position_id for a in result.actions if isinstance(a, CloseRecord)}
    resized = {e.position_id for e in result.events if isinstance(e, SizeCorrected)}
    for action in result.actions:
        there = reports_by_symbol[action.symbol]
        if isinstance(action, Cancel):
            # only an order the record itself named, when it closes or its ladder is
            # re-sized to the venue's size (no owners map here: nothing else is ours)
            (owner,) = [p for p in known if p.position_id == action.position_id]
            assert action.position_id in closed_now | resized
            named = {owner.stop_order_id, *owner.tp_order_ids.values()}
            assert action.venue_order_id in named or action.client_id == owner.entry_client_id
            continue
        ours = tracked_by_symbol[action.symbol]
        if isinstance(action, CloseRecord):
            # second sighting only: nothing at the venue, or the other side there
            (p,) = [k for k in ours if k.position_id == action.position_id]
            assert not startup and action.position_id in missing
            assert not there or (len(there) == 1 and there[0].side is not p.side)
            continue
        # Everything else protects or imports exactly one venue position it understands.
        assert len(there) == 1 and len(ours) <= 1
        flipped = bool(ours) and ours[0].position_id in closed_now
        if isinstance(action, ImportPosition):
            assert not ours or flipped  # the other side is imported once ours is closed
        if isinstance(action, PlaceStop | MoveStop):
            assert action.side is there[0].side.exit_order_side
        if ours and ours[0].state in OPEN_STATES and not flipped:
            assert ours[0].side is there[0].side  # a first side mismatch is only suspected

    for pid in result.suspected_missing:
        (p,) = [k for k in known if k.position_id == pid]
        there = reports_by_symbol[p.symbol]
        assert p.state in OPEN_STATES
        assert not there or all(r.side is not p.side for r in there)

    # Every venue position ends up understood (a record) or explicitly deferred.
    records = {p.symbol for p in result.positions if p.state not in TERMINAL_STATES}
    for symbol, there in reports_by_symbol.items():
        if there:
            assert symbol in records or any(
                symbol in line and "deferred" in line for line in result.log_lines
            )
