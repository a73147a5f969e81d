"""The write-ahead intent log as a pure state model; store/ persists it in DuckDB.

Every action is recorded as an intent before the gateway acts on it, then moved
through its states (the allowed moves are `WAL_TRANSITIONS`):

- PENDING: recorded; the request has not started.
- SENT: recorded immediately before the request goes out.
- ACKNOWLEDGED: the venue returned the order (open, filled, or since cancelled).
- REJECTED: the venue refused it, or start-up resolution found it never existed.
- UNKNOWN: the request failed without a verdict (timeout, 5xx after sending).

At start-up every non-final intent is resolved against the venue by client
order id (`resolve_pending`). The rule that never bends: an order the venue
has is never submitted again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from core.actions import MAX_CLIENT_ID, Action, ActionType, describe
from core.errors import TraderError
from core.orders import Order, OrderStatus
from core.positions import (
    EntryRejected,
    PositionEvent,
    StopMoved,
    StopPlaced,
    StopRejected,
    TpPlaced,
    TpRejected,
)


class IntentState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


_P, _S, _A, _R, _U = (
    IntentState.PENDING,
    IntentState.SENT,
    IntentState.ACKNOWLEDGED,
    IntentState.REJECTED,
    IntentState.UNKNOWN,
)
WAL_TRANSITIONS: dict[IntentState, frozenset[IntentState]] = {
    _P: frozenset({_S, _A, _R}),  # ACK/REJECT straight from PENDING only via start-up resolution
    _S: frozenset({_A, _R, _U}),
    _U: frozenset({_A, _R, _S}),  # SENT again only when resolution resubmits it
    _A: frozenset(),
    _R: frozenset(),
}
FINAL_STATES = frozenset(s for s, nxt in WAL_TRANSITIONS.items() if not nxt)


class IntentKind(StrEnum):
    VENUE_ORDER = "venue_order"  # creates an order under a client id
    VENUE_CANCEL = "venue_cancel"  # cancels an order; repeating it is harmless
    LOCAL = "local"  # changes only the bot's records; idempotent by position id


KIND_OF: dict[ActionType, IntentKind] = {
    ActionType.PLACE_ENTRY: IntentKind.VENUE_ORDER,
    ActionType.PLACE_STOP: IntentKind.VENUE_ORDER,
    ActionType.PLACE_TP: IntentKind.VENUE_ORDER,
    ActionType.MOVE_STOP: IntentKind.VENUE_ORDER,
    ActionType.FLATTEN: IntentKind.VENUE_ORDER,
    ActionType.CANCEL: IntentKind.VENUE_CANCEL,
    ActionType.CLOSE_RECORD: IntentKind.LOCAL,
    ActionType.IMPORT_POSITION: IntentKind.LOCAL,
    ActionType.NO_ACTION: IntentKind.LOCAL,
}
PROTECTIVE = frozenset({ActionType.PLACE_STOP, ActionType.PLACE_TP, ActionType.MOVE_STOP})
# Actions whose own client_id field is the id of the order they create.
_OWN_CLIENT_ID = frozenset(PROTECTIVE | {ActionType.PLACE_ENTRY, ActionType.FLATTEN})


class InvalidIntentTransition(TraderError):
    """An intent was asked to move where the table does not allow; it is unchanged."""


@dataclass(frozen=True, slots=True)
class IntentEntry:
    intent_id: str
    action_type: ActionType
    symbol: str | None
    side: str  # buy / sell / long / short, or 'unknown' for side-less actions (FLATTEN)
    client_id: str | None  # client id of the order this intent creates; None if it creates none
    payload: str  # describe(action) as JSON
    state: IntentState
    created_at: datetime
    updated_at: datetime
    venue_order_id: str | None = None
    reason: str | None = None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def details(self) -> dict[str, object]:
        return json.loads(self.payload)


def new_intent(action: Action, *, at: datetime, intent_id: str | None = None) -> IntentEntry:
    """A PENDING intent for `action`, recorded before anything is sent.

    Orders with their own client id (entries, stops, TPs, stop moves, flattens) use
    it as the intent id. CANCEL, local actions and a flatten built without a client
    id need `intent_id` from the caller (a flatten's market order carries it as its
    client id). Refuses a
    naive `at`, a missing or too long id, and an `intent_id` that contradicts the
    action's own client id.
    """
    if at.tzinfo is None:
        raise ValueError("intent times must be timezone-aware UTC")
    info = describe(action)  # never assumes a side: FLATTEN shows side 'unknown'
    own = info["client_id"] if action.action_type in _OWN_CLIENT_ID else None
    if own is not None and intent_id not in (None, own):
        raise ValueError(f"intent_id {intent_id!r} contradicts the action's client id {own!r}")
    iid = own if own is not None else intent_id
    if not isinstance(iid, str) or not iid or len(iid) > MAX_CLIENT_ID:
        raise ValueError(f"{action.action_type}: intent_id must be 1..{MAX_CLIENT_ID} characters")
    creates_order = KIND_OF[action.action_type] is IntentKind.VENUE_ORDER
    symbol = info["symbol"]
    return IntentEntry(
        intent_id=iid,
        action_type=action.action_type,
        symbol=symbol if isinstance(symbol, str) else None,
        side=str(info["side"]),
        client_id=iid if creates_order else None,
        payload=json.dumps(info, sort_keys=True, default=str),
        state=IntentState.PENDING,
        created_at=at,
        updated_at=at,
    )


def advance(
    entry: IntentEntry,
    to: IntentState,
    *,
    at: datetime,
    venue_order_id: str | None = None,
    reason: str | None = None,
) -> IntentEntry:
    """The entry moved to `to`. Refuses (InvalidIntentTransition) any move the table lacks."""
    if to not in WAL_TRANSITIONS[entry.state]:
        raise InvalidIntentTransition(
            f"intent {entry.intent_id}: {entry.state} -> {to} is not allowed"
        )
    return replace(
        entry,
        state=to,
        updated_at=at,
        venue_order_id=venue_order_id if venue_order_id is not None else entry.venue_order_id,
        reason=reason if reason is not None else entry.reason,
    )


# --- start-up resolution ---------------------------------------------------------------


class Decision(StrEnum):
    ACKNOWLEDGE = "acknowledge"  # the venue has it: record it, never send it again
    REJECT = "reject"  # it does not exist; its owner decides again (a new attempt id)
    RESUBMIT = "resubmit"  # send it (again) under the same id
    DEFER = "defer"  # no verdict from the venue yet; leave it for the next resolution


@dataclass(frozen=True, slots=True)
class Resolution:
    intent_id: str
    decision: Decision
    from_state: IntentState
    to_state: IntentState
    reason: str
    venue_order_id: str | None = None


def resolve_pending(
    entries: Iterable[IntentEntry], venue_lookup_results: Mapping[str, Order | None]
) -> list[Resolution]:
    """One resolution per non-final entry, from the venue's answer for its client id.

    `venue_lookup_results[client_id]` is the order the venue knows under that
    id, or None when the venue says it has none; a client id absent from the
    mapping means the lookup failed. Decisions:

    - found, not rejected -> ACKNOWLEDGE (whatever our state: never resubmitted);
      found rejected -> REJECT.
    - lookup failed -> DEFER.
    - not found, PENDING, a stop / TP / stop move -> RESUBMIT under the same id:
      PENDING means the request never started, and an unprotected position is
      the worse risk.
    - not found, PENDING, an entry or a flatten -> REJECT: a stale trading
      decision is not replayed; the next cycle decides again.
    - not found after a send (SENT / UNKNOWN) -> REJECT: treated as not
      accepted. The position machine retries a stop under the next attempt's
      id, so an order that surfaces late is at worst a second reduce-only stop,
      never a duplicate of the same id.
    - cancels and local actions -> RESUBMIT: repeating them is harmless.
    """
    out: list[Resolution] = []
    for entry in entries:
        if entry.is_final:
            continue
        if KIND_OF[entry.action_type] is IntentKind.VENUE_ORDER:
            out.append(_resolve_order(entry, venue_lookup_results))
        else:
            out.append(_resolution(entry, Decision.RESUBMIT, _S, "idempotent: repeat it"))
    return out


def _resolution(
    entry: IntentEntry,
    decision: Decision,
    to: IntentState,
    reason: str,
    venue_order_id: str | None = None,
) -> Resolution:
    return Resolution(entry.intent_id, decision, entry.state, to, reason, venue_order_id)


def _resolve_order(entry: IntentEntry, lookups: Mapping[str, Order | None]) -> Resolution:
    cid = entry.client_id
    if cid is None or cid not in lookups:
        return _resolution(entry, Decision.DEFER, entry.state, "venue lookup failed; retry later")
    order = lookups[cid]
    if order is not None:
        if order.status is OrderStatus.REJECTED:
            return _resolution(entry, Decision.REJECT, _R, "the venue rejected it")
        return _resolution(
            entry,
            Decision.ACKNOWLEDGE,
            _A,
            f"the venue has it ({order.status})",
            order.venue_order_id,
        )
    if entry.state is IntentState.PENDING and entry.action_type in PROTECTIVE:
        return _resolution(entry, Decision.RESUBMIT, _S, "never sent; protection is resubmitted")
    if entry.state is IntentState.PENDING:
        return _resolution(entry, Decision.REJECT, _R, "never sent; a stale decision is dropped")
    return _resolution(entry, Decision.REJECT, _R, "absent at the venue after a send")


def apply_resolution(entry: IntentEntry, resolution: Resolution, *, at: datetime) -> IntentEntry:
    """The entry after `resolution`; refuses one for another intent or from a stale state."""
    if resolution.intent_id != entry.intent_id or resolution.from_state is not entry.state:
        raise InvalidIntentTransition(
            f"resolution for {resolution.intent_id} ({resolution.from_state}) does not match "
            f"intent {entry.intent_id} ({entry.state})"
        )
    if resolution.to_state is entry.state:
        return replace(entry, updated_at=at, reason=resolution.reason)
    return advance(
        entry,
        resolution.to_state,
        at=at,
        venue_order_id=resolution.venue_order_id,
        reason=resolution.reason,
    )


def position_event(entry: IntentEntry) -> PositionEvent | None:
    """The position-machine event a final intent implies, so a restart loses no acknowledgement.

    ACKNOWLEDGED stop / TP / stop move -> StopPlaced / TpPlaced / StopMoved;
    REJECTED stop / TP / entry -> StopRejected / TpRejected / EntryRejected.
    None for anything else (fills arrive as fills; other actions have no event).
    """
    info = entry.details()
    pid = info.get("position_id")
    if not isinstance(pid, str):
        return None
    if entry.state is IntentState.ACKNOWLEDGED and entry.venue_order_id is not None:
        return _ack_event(entry, pid, entry.venue_order_id, info)
    if entry.state is IntentState.REJECTED:
        return _reject_event(entry, pid, info)
    return None


def _number(info: Mapping[str, object], key: str) -> float:
    value = info.get(key)
    if not isinstance(value, int | float):
        raise ValueError(f"intent payload has no numeric {key!r}: {value!r}")
    return float(value)


def _ack_event(
    entry: IntentEntry, pid: str, venue_order_id: str, info: Mapping[str, object]
) -> PositionEvent | None:
    kind = entry.action_type
    if kind not in PROTECTIVE:
        return None
    trigger, size = _number(info, "trigger_price"), _number(info, "size")
    if kind is ActionType.PLACE_STOP:
        return StopPlaced(pid, venue_order_id, trigger, size)
    if kind is ActionType.MOVE_STOP:
        return StopMoved(pid, venue_order_id, trigger, size)
    return TpPlaced(pid, int(_number(info, "level")), venue_order_id, trigger, size)


def _reject_event(entry: IntentEntry, pid: str, info: Mapping[str, object]) -> PositionEvent | None:
    reason = entry.reason or "rejected"
    cid = entry.client_id or ""
    if entry.action_type in (ActionType.PLACE_STOP, ActionType.MOVE_STOP):
        return StopRejected(pid, cid, reason)
    if entry.action_type is ActionType.PLACE_TP:
        return TpRejected(pid, int(_number(info, "level")), cid, reason)
    if entry.action_type is ActionType.PLACE_ENTRY:
        return EntryRejected(pid, reason)
    return None
