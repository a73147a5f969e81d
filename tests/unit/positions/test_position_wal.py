"""The write-ahead intent log's states and start-up resolution by client order id."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from position_builders import SYMBOL, T0, filled

from core.actions import (
    Cancel,
    CloseRecord,
    Flatten,
    PlaceEntry,
    PlaceStop,
    PlaceTp,
)
from core.orders import Order, OrderSide, OrderStatus, OrderType
from core.positions import PositionState, StopPlaced, StopRejected, TpPlaced, apply
from core.protection import ProtectionRules, plan_protection
from core.wal import (
    FINAL_STATES,
    WAL_TRANSITIONS,
    Decision,
    IntentEntry,
    IntentState,
    InvalidIntentTransition,
    advance,
    apply_resolution,
    new_intent,
    position_event,
    resolve_pending,
)

T1 = T0 + timedelta(seconds=1)
STOP = PlaceStop("p1", SYMBOL, OrderSide.SELL, 10.0, 90.0, "p1-sl-0")
TP2 = PlaceTp("p1", SYMBOL, OrderSide.SELL, 2, 3.0, 120.0, "p1-tp2-0")
ENTRY = PlaceEntry("p1", SYMBOL, OrderSide.BUY, OrderType.MARKET, 10.0, "p1-en-0")


def venue_order(client_id: str, status: OrderStatus = OrderStatus.OPEN) -> Order:
    return Order(
        venue_order_id=f"v-{client_id}",
        client_id=client_id,
        symbol=SYMBOL,
        side=OrderSide.SELL,
        type=OrderType.STOP,
        size=10.0,
        filled=0.0,
        status=status,
        trigger_price=90.0,
        reduce_only=True,
    )


def in_state(entry: IntentEntry, state: IntentState) -> IntentEntry:
    path = {
        IntentState.PENDING: [],
        IntentState.SENT: [IntentState.SENT],
        IntentState.UNKNOWN: [IntentState.SENT, IntentState.UNKNOWN],
        IntentState.ACKNOWLEDGED: [IntentState.SENT, IntentState.ACKNOWLEDGED],
        IntentState.REJECTED: [IntentState.SENT, IntentState.REJECTED],
    }[state]
    for step in path:
        entry = advance(entry, step, at=T1)
    return entry


# --- transitions ------------------------------------------------------------------------


@pytest.mark.parametrize("source", list(IntentState))
@pytest.mark.parametrize("target", list(IntentState))
def test_every_intent_move_follows_the_table_or_is_refused(
    source: IntentState, target: IntentState
) -> None:
    entry = in_state(new_intent(STOP, at=T0), source)
    if target in WAL_TRANSITIONS[source]:
        moved = advance(entry, target, at=T1, venue_order_id="v1")
        assert moved.state is target and moved.updated_at == T1
    else:
        with pytest.raises(InvalidIntentTransition):
            advance(entry, target, at=T1)


def test_final_states_are_acknowledged_and_rejected() -> None:
    assert {IntentState.ACKNOWLEDGED, IntentState.REJECTED} == FINAL_STATES


def test_a_new_intent_is_pending_and_keyed_by_the_order_client_id() -> None:
    entry = new_intent(STOP, at=T0)
    assert entry.state is IntentState.PENDING
    assert entry.intent_id == entry.client_id == "p1-sl-0"
    assert entry.side == "sell" and entry.details()["trigger_price"] == 90.0


def test_side_less_and_local_intents_need_an_intent_id() -> None:
    with pytest.raises(ValueError, match="intent_id"):
        new_intent(Flatten(SYMBOL, "kill switch"), at=T0)
    cancel = new_intent(Cancel("p1", SYMBOL, "closed", client_id="p1-tp1-0"), at=T0, intent_id="c1")
    assert cancel.client_id is None  # a cancel creates no order of its own
    with pytest.raises(ValueError, match="contradicts"):
        new_intent(STOP, at=T0, intent_id="something-else")


# --- start-up resolution ----------------------------------------------------------------


@pytest.mark.parametrize("state", [IntentState.PENDING, IntentState.SENT, IntentState.UNKNOWN])
@pytest.mark.parametrize("status", [OrderStatus.OPEN, OrderStatus.FILLED, OrderStatus.CANCELLED])
def test_an_order_the_venue_has_is_acknowledged_and_never_resubmitted(
    state: IntentState, status: OrderStatus
) -> None:
    for action in (STOP, TP2, ENTRY):
        entry = in_state(new_intent(action, at=T0), state)
        (res,) = resolve_pending([entry], {action.client_id: venue_order(action.client_id, status)})
        assert res.decision is Decision.ACKNOWLEDGE
        assert res.venue_order_id == f"v-{action.client_id}"
        assert apply_resolution(entry, res, at=T1).state is IntentState.ACKNOWLEDGED


def test_an_order_the_venue_rejected_is_rejected() -> None:
    entry = in_state(new_intent(STOP, at=T0), IntentState.SENT)
    (res,) = resolve_pending([entry], {"p1-sl-0": venue_order("p1-sl-0", OrderStatus.REJECTED)})
    assert res.decision is Decision.REJECT and res.to_state is IntentState.REJECTED


def test_a_failed_lookup_defers() -> None:
    entry = in_state(new_intent(STOP, at=T0), IntentState.UNKNOWN)
    (res,) = resolve_pending([entry], {})
    assert res.decision is Decision.DEFER and res.to_state is IntentState.UNKNOWN
    assert apply_resolution(entry, res, at=T1).state is IntentState.UNKNOWN


def test_protection_never_sent_is_resubmitted_under_the_same_id() -> None:
    entry = new_intent(STOP, at=T0)
    (res,) = resolve_pending([entry], {"p1-sl-0": None})
    assert res.decision is Decision.RESUBMIT and res.to_state is IntentState.SENT
    assert apply_resolution(entry, res, at=T1).client_id == "p1-sl-0"


def test_a_stale_entry_never_sent_is_dropped_not_replayed() -> None:
    (res,) = resolve_pending([new_intent(ENTRY, at=T0)], {"p1-en-0": None})
    assert res.decision is Decision.REJECT


@pytest.mark.parametrize("state", [IntentState.SENT, IntentState.UNKNOWN])
def test_absent_after_a_send_is_rejected_and_the_stop_retried_under_a_new_id(
    state: IntentState,
) -> None:
    entry = in_state(new_intent(STOP, at=T0), state)
    (res,) = resolve_pending([entry], {"p1-sl-0": None})
    assert res.decision is Decision.REJECT
    final = apply_resolution(entry, res, at=T1)
    event = position_event(final)
    assert event == StopRejected("p1", "p1-sl-0", "absent at the venue after a send")
    after, actions = apply(filled(), event)
    assert actions == []  # no blind resend from the machine: the planner sends the next id
    _, retry = plan_protection(after, 100.0, ProtectionRules(), sent_this_cycle=0)
    assert [a.client_id for a in retry] == ["p1-sl-1"]


def test_cancels_and_local_intents_are_repeated() -> None:
    cancel = new_intent(Cancel("p1", SYMBOL, "closed", venue_order_id="t1"), at=T0, intent_id="c1")
    local = new_intent(CloseRecord("p1", SYMBOL, "ORPHAN"), at=T0, intent_id="r1")
    res = resolve_pending([in_state(cancel, IntentState.SENT), local], {})
    assert [r.decision for r in res] == [Decision.RESUBMIT, Decision.RESUBMIT]


def test_final_intents_are_not_resolved_again() -> None:
    done = in_state(new_intent(STOP, at=T0), IntentState.ACKNOWLEDGED)
    assert resolve_pending([done], {"p1-sl-0": None}) == []


def test_a_resolution_for_another_intent_or_state_is_refused() -> None:
    a = new_intent(STOP, at=T0)
    (res,) = resolve_pending([a], {"p1-sl-0": None})
    with pytest.raises(InvalidIntentTransition):
        apply_resolution(in_state(a, IntentState.SENT), res, at=T1)


def test_acknowledged_protection_becomes_the_position_event_it_implies() -> None:
    stop = advance(new_intent(STOP, at=T0), IntentState.ACKNOWLEDGED, at=T1, venue_order_id="v9")
    assert position_event(stop) == StopPlaced("p1", "v9", 90.0, 10.0)
    p, _ = apply(filled(), position_event(stop))  # type: ignore[arg-type]
    assert p.state is PositionState.PROTECTED
    tp = advance(new_intent(TP2, at=T0), IntentState.ACKNOWLEDGED, at=T1, venue_order_id="v8")
    assert position_event(tp) == TpPlaced("p1", 2, "v8", 120.0, 3.0)
    assert position_event(new_intent(ENTRY, at=T0)) is None


# --- property ---------------------------------------------------------------------------

ACTIONS = [STOP, TP2, ENTRY]
lookups = st.sampled_from(["missing", "none", *[s.value for s in OrderStatus]])


@given(
    picks=st.lists(
        st.tuples(st.sampled_from(range(3)), st.sampled_from(list(IntentState)), lookups),
        min_size=1,
        max_size=3,
        unique_by=lambda t: t[0],
    )
)
def test_resolution_never_resubmits_what_the_venue_has_and_always_applies(picks: list) -> None:
    entries, answers = [], {}
    for index, state, lookup in picks:
        action = ACTIONS[index]
        entries.append(in_state(new_intent(action, at=T0), state))
        if lookup == "none":
            answers[action.client_id] = None
        elif lookup != "missing":
            answers[action.client_id] = venue_order(action.client_id, OrderStatus(lookup))
    resolutions = resolve_pending(entries, answers)
    assert len(resolutions) == sum(not e.is_final for e in entries)
    by_id = {e.intent_id: e for e in entries}
    for res in resolutions:
        if answers.get(res.intent_id) is not None:
            assert res.decision is not Decision.RESUBMIT
        apply_resolution(by_id[res.intent_id], res, at=T1)
