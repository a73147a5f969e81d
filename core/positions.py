"""The position state machine: events in, a new immutable position and typed actions out.

The lifecycle is a table of (state, event type) -> allowed next states
(`TRANSITIONS`). `apply` looks the pair up before it touches anything and
raises `InvalidTransition` when the table has no row for it; a handler then
computes the new position and its actions, and a result outside the row's
allowed states is refused too. Nothing here talks to a venue or a database.

Sizes are contracts; "flat" means less than half a lot remains. Entry fills are
cumulative (the venue's filled quantity so far), so a repeated fill event is
harmless. Stop and TP client ids are derived from (position, action, level,
attempt): re-emitting the same attempt is recognised by the gateway, and a
rejection or loss moves to the next attempt so a fresh id is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from core.actions import (
    TP_LEVELS,
    Action,
    ActionType,
    Cancel,
    CloseRecord,
    Flatten,
    MoveStop,
    NoAction,
    PlaceEntry,
    PlaceStop,
    PlaceTp,
    client_id_for,
)
from core.errors import TraderError
from core.orders import OrderType, PositionSide
from core.precision import floor_to_step, round_away, round_to_step

log = logging.getLogger("smc_trader.positions")


class PositionState(StrEnum):
    PENDING_ENTRY = "pending_entry"  # entry order sent, nothing filled yet
    ENTRY_REJECTED = "entry_rejected"  # terminal: the venue refused the entry
    ENTRY_CANCELLED = "entry_cancelled"  # terminal: the entry ended with no fill
    OPEN_UNPROTECTED = "open_unprotected"  # contracts held, no stop confirmed at the venue
    PROTECTED = "protected"  # contracts held, a stop confirmed at the venue
    CLOSING = "closing"  # a flatten was requested; exits stay until flat
    CLOSED = "closed"  # terminal: flat, or the record was closed after verification


OPEN_STATES = frozenset(
    {PositionState.OPEN_UNPROTECTED, PositionState.PROTECTED, PositionState.CLOSING}
)
TERMINAL_STATES = frozenset(
    {PositionState.ENTRY_REJECTED, PositionState.ENTRY_CANCELLED, PositionState.CLOSED}
)


class PositionError(TraderError):
    """A position event could not be applied; the position is unchanged."""


class InvalidTransition(PositionError):
    """The transition table has no row for (state, event): a bug or an unexpected venue report."""

    def __init__(self, state: PositionState, event: object, detail: str = "") -> None:
        name = type(event).__name__
        extra = f": {detail}" if detail else ""
        super().__init__(f"no transition from {state} on {name}{extra}")
        self.state = state
        self.event = event


class EventForOtherPosition(PositionError):
    """The event names a different position than the one it was applied to."""


# --- events -----------------------------------------------------------------------------


class _Event:
    """Refuses a non-positive size or price on the fields the event lists in `_positive`."""

    __slots__ = ()
    _positive: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in self._positive:
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{type(self).__name__}: {name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class EntryPartiallyFilled(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("filled_size", "avg_price")
    position_id: str
    filled_size: float  # cumulative entry fill so far
    avg_price: float


@dataclass(frozen=True, slots=True)
class EntryFilled(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("filled_size", "avg_price")
    position_id: str
    filled_size: float  # cumulative, final: the entry order is done
    avg_price: float


@dataclass(frozen=True, slots=True)
class EntryRejected(_Event):
    position_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class EntryCancelled(_Event):
    position_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StopPlaced(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("trigger_price", "size")
    position_id: str
    venue_order_id: str
    trigger_price: float
    size: float


@dataclass(frozen=True, slots=True)
class StopMoved(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("trigger_price", "size")
    position_id: str
    venue_order_id: str  # the replacement stop
    trigger_price: float
    size: float


@dataclass(frozen=True, slots=True)
class StopRejected(_Event):
    position_id: str
    client_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StopCancelled(_Event):
    position_id: str
    venue_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StopMissing(_Event):
    """Reconciliation found the position at the venue without its stop."""

    position_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StopFilled(_Event):
    """The stop order is done; `filled_size` is what it closed (less than all if undersized)."""

    _positive: ClassVar[tuple[str, ...]] = ("filled_size", "price")
    position_id: str
    filled_size: float
    price: float


@dataclass(frozen=True, slots=True)
class TpPlaced(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("trigger_price", "size")
    position_id: str
    level: int
    venue_order_id: str
    trigger_price: float
    size: float


@dataclass(frozen=True, slots=True)
class TpRejected(_Event):
    position_id: str
    level: int
    client_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TpCancelled(_Event):
    position_id: str
    level: int
    venue_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TpFilled(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("filled_size", "price")
    position_id: str
    level: int
    filled_size: float
    price: float


@dataclass(frozen=True, slots=True)
class CloseRequested(_Event):
    """A deliberate decision to close a known position (operator, kill switch, strategy)."""

    position_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class FlattenFilled(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("filled_size", "price")
    position_id: str
    filled_size: float
    price: float


@dataclass(frozen=True, slots=True)
class PositionGone(_Event):
    """The venue no longer holds the position (confirmed by a second check)."""

    position_id: str
    reason: str


PositionEvent = (
    EntryPartiallyFilled
    | EntryFilled
    | EntryRejected
    | EntryCancelled
    | StopPlaced
    | StopMoved
    | StopRejected
    | StopCancelled
    | StopMissing
    | StopFilled
    | TpPlaced
    | TpRejected
    | TpCancelled
    | TpFilled
    | CloseRequested
    | FlattenFilled
    | PositionGone
)
EVENT_TYPES: tuple[type, ...] = (
    EntryPartiallyFilled,
    EntryFilled,
    EntryRejected,
    EntryCancelled,
    StopPlaced,
    StopMoved,
    StopRejected,
    StopCancelled,
    StopMissing,
    StopFilled,
    TpPlaced,
    TpRejected,
    TpCancelled,
    TpFilled,
    CloseRequested,
    FlattenFilled,
    PositionGone,
)

# --- the transition table ---------------------------------------------------------------

_P = PositionState.PENDING_ENTRY
_U = PositionState.OPEN_UNPROTECTED
_R = PositionState.PROTECTED
_C = PositionState.CLOSING
_X = PositionState.CLOSED
_ER = PositionState.ENTRY_REJECTED
_EC = PositionState.ENTRY_CANCELLED


def _stay(
    states: Sequence[PositionState], event: type
) -> dict[tuple[PositionState, type], frozenset[PositionState]]:
    return {(s, event): frozenset({s}) for s in states}


TRANSITIONS: dict[tuple[PositionState, type], frozenset[PositionState]] = {
    # entry
    (_P, EntryPartiallyFilled): frozenset({_U}),
    (_P, EntryFilled): frozenset({_U}),
    (_P, EntryRejected): frozenset({_ER}),
    (_P, EntryCancelled): frozenset({_EC}),
    **_stay((_U, _R, _C), EntryPartiallyFilled),
    **_stay((_U, _R, _C), EntryFilled),
    **_stay((_U, _R, _C), EntryCancelled),  # the rest of a partly filled entry ended
    # stop
    (_U, StopPlaced): frozenset({_R}),
    (_R, StopPlaced): frozenset({_R}),
    **_stay((_C, _X), StopPlaced),  # late ack: recorded while closing, cancelled once closed
    **_stay((_R, _C, _X), StopMoved),
    **_stay((_U, _R, _C, _X), StopRejected),
    (_R, StopCancelled): frozenset({_R, _U}),  # unprotected only if it was the working stop
    **_stay((_U, _C, _X), StopCancelled),
    (_R, StopMissing): frozenset({_U}),
    **_stay((_U, _C), StopMissing),
    (_U, StopFilled): frozenset({_X, _U}),
    (_R, StopFilled): frozenset({_X, _U}),
    (_C, StopFilled): frozenset({_X, _C}),
    # take profit
    **_stay((_U, _R, _C, _X), TpPlaced),
    **_stay((_U, _R, _C, _X), TpRejected),
    **_stay((_U, _R, _C, _X), TpCancelled),
    (_U, TpFilled): frozenset({_X, _U}),
    (_R, TpFilled): frozenset({_X, _R}),
    (_C, TpFilled): frozenset({_X, _C}),
    # closing
    (_U, CloseRequested): frozenset({_C}),
    (_R, CloseRequested): frozenset({_C}),
    (_C, FlattenFilled): frozenset({_X, _C}),
    (_U, PositionGone): frozenset({_X}),
    (_R, PositionGone): frozenset({_X}),
    (_C, PositionGone): frozenset({_X}),
}

# --- the position record ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TpSlot:
    """One take-profit level of a position: its plan and its working order, if any."""

    level: int
    price: float | None  # planned trigger; None when the plan has no such level
    fraction: float  # share of the filled entry this level closes
    size: float = 0.0  # contracts, fixed when the entry completes
    order_id: str | None = None
    attempt: int = 0
    filled: bool = False


@dataclass(frozen=True, slots=True)
class Position:
    """One position's record; changed only by `apply`, which returns a new one."""

    position_id: str
    symbol: str
    side: PositionSide
    state: PositionState
    size: float  # contracts held now
    requested_size: float
    entry_price: float | None  # average fill price; None until the first fill
    stop_price: float  # planned, then working, stop trigger
    tick_size: float
    lot_size: float
    opened_at: datetime
    tps: tuple[TpSlot, ...]  # always levels 1..3, in order
    entry_filled: float = 0.0  # cumulative entry fill
    entry_complete: bool = False  # the entry order is done (filled, or rest cancelled)
    stop_order_id: str | None = None
    stop_size: float = 0.0
    stop_attempt: int = 0
    imported: bool = False  # adopted from the venue (PHANTOM), not opened by us
    close_reason: str | None = None

    @property
    def tp_order_ids(self) -> dict[int, str | None]:
        return {t.level: t.order_id for t in self.tps}

    @property
    def tp_prices(self) -> dict[int, float | None]:
        return {t.level: t.price for t in self.tps}

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def entry_client_id(self) -> str:
        return client_id_for(self.position_id, ActionType.PLACE_ENTRY)

    @property
    def stop_client_id(self) -> str:
        """The client id of the current stop attempt."""
        return client_id_for(self.position_id, ActionType.PLACE_STOP, attempt=self.stop_attempt)

    def tp_client_id(self, level: int) -> str:
        return client_id_for(
            self.position_id, ActionType.PLACE_TP, level=level, attempt=self.tps[level - 1].attempt
        )


def empty_tps() -> tuple[TpSlot, ...]:
    """Three unplanned TP levels (an imported position has no TP plan)."""
    return tuple(TpSlot(level=lv, price=None, fraction=0.0) for lv in TP_LEVELS)


def open_position(
    *,
    position_id: str,
    symbol: str,
    side: PositionSide,
    size: float,
    stop_price: float,
    tp_prices: Sequence[float | None],
    tp_fractions: Sequence[float],
    tick_size: float,
    lot_size: float,
    opened_at: datetime,
    limit_price: float | None = None,
) -> tuple[Position, PlaceEntry]:
    """A PENDING_ENTRY position and the PLACE_ENTRY action that opens it.

    Market entry unless `limit_price` is given. Refuses a naive `opened_at`, a
    non-positive size or stop, a stop on the profit side of a limit price, and
    TP lists that are not one price-or-None and one positive fraction per level 1..3.
    """
    if opened_at.tzinfo is None:
        raise ValueError(f"{position_id}: opened_at must be timezone-aware UTC")
    if size <= 0 or stop_price <= 0 or tick_size <= 0 or lot_size <= 0:
        raise ValueError(f"{position_id}: size, stop_price, tick and lot sizes must be positive")
    if len(tp_prices) != len(TP_LEVELS) or len(tp_fractions) != len(TP_LEVELS):
        raise ValueError(f"{position_id}: give 3 tp_prices (None to skip) and 3 tp_fractions")
    if any(p is not None and p <= 0 for p in tp_prices):
        raise ValueError(f"{position_id}: tp_prices must be positive or None, got {tp_prices}")
    if any(f <= 0 for f in tp_fractions):
        raise ValueError(f"{position_id}: tp_fractions must be positive, got {tp_fractions}")
    if limit_price is not None and _beyond(side, stop_price, limit_price):
        raise ValueError(f"{position_id}: stop {stop_price} is on the profit side of {limit_price}")
    tps = tuple(
        TpSlot(level=lv, price=p, fraction=f)
        for lv, p, f in zip(TP_LEVELS, tp_prices, tp_fractions, strict=True)
    )
    position = Position(
        position_id=position_id,
        symbol=symbol,
        side=side,
        state=PositionState.PENDING_ENTRY,
        size=0.0,
        requested_size=size,
        entry_price=None,
        stop_price=stop_price,
        tick_size=tick_size,
        lot_size=lot_size,
        opened_at=opened_at,
        tps=tps,
    )
    entry = PlaceEntry(
        position_id=position_id,
        symbol=symbol,
        side=side.entry_order_side,
        order_type=OrderType.LIMIT if limit_price is not None else OrderType.MARKET,
        size=size,
        client_id=position.entry_client_id,
        price=limit_price,
    )
    return position, entry


# --- small helpers ----------------------------------------------------------------------


def _beyond(side: PositionSide, price: float, reference: float) -> bool:
    """True when `price` is on the profit side of `reference` (above it for a long)."""
    return price > reference if side is PositionSide.LONG else price < reference


def _flat(p: Position, size: float) -> bool:
    return size < p.lot_size / 2


def _place_stop(p: Position) -> PlaceStop:
    return PlaceStop(
        position_id=p.position_id,
        symbol=p.symbol,
        side=p.side.exit_order_side,
        size=p.size,
        trigger_price=p.stop_price,
        client_id=p.stop_client_id,
    )


def _replace_stop(p: Position, trigger: float) -> tuple[Position, MoveStop]:
    """Next stop attempt: a MOVE_STOP of the working stop to `trigger` for the full size."""
    assert p.stop_order_id is not None  # callers check; a move needs a working stop
    nxt = replace(p, stop_attempt=p.stop_attempt + 1)
    move = MoveStop(
        position_id=p.position_id,
        symbol=p.symbol,
        side=p.side.exit_order_side,
        size=p.size,
        trigger_price=trigger,
        replaces_order_id=p.stop_order_id,
        client_id=client_id_for(p.position_id, ActionType.MOVE_STOP, attempt=nxt.stop_attempt),
    )
    return nxt, move


def _reprotect(p: Position, state: PositionState) -> tuple[Position, list[Action]]:
    """The stop is gone but contracts remain: next attempt, a new PLACE_STOP."""
    nxt = replace(
        p, state=state, stop_order_id=None, stop_size=0.0, stop_attempt=p.stop_attempt + 1
    )
    return nxt, [_place_stop(nxt)]


def _close(p: Position, reason: str, *, stop_filled: bool = False) -> tuple[Position, list[Action]]:
    """CLOSED, with every sibling exit and a still-working entry cancelled (no OCO on Kraken)."""
    cancels: list[Action] = []
    if not stop_filled and p.stop_order_id is not None:
        cancels.append(_cancel(p, reason, venue_order_id=p.stop_order_id))
    for t in p.tps:
        if t.order_id is not None and not t.filled:
            cancels.append(_cancel(p, reason, venue_order_id=t.order_id))
    if not p.entry_complete:
        cancels.append(_cancel(p, reason, client_id=p.entry_client_id))
    closed = replace(p, state=PositionState.CLOSED, size=0.0, close_reason=reason)
    return closed, cancels


def _cancel(
    p: Position, reason: str, *, venue_order_id: str | None = None, client_id: str | None = None
) -> Cancel:
    return Cancel(
        position_id=p.position_id,
        symbol=p.symbol,
        reason=reason,
        venue_order_id=venue_order_id,
        client_id=client_id,
    )


def tp_level_problem(
    side: PositionSide, price: float, reference: float, min_distance: float
) -> str | None:
    """Why a TP at `price` must not be placed now ('already passed' / 'too close'), or None."""
    if not _beyond(side, price, reference):
        return f"already passed ({price} vs {reference})"
    if abs(price - reference) < min_distance:
        return f"too close ({price} vs {reference}, min distance {min_distance})"
    return None


def _ladder(p: Position) -> tuple[TpSlot, ...]:
    """Fix each planned level's size: fractions of the held size, lots floored, last takes the rest.

    Fractions are normalised over the planned levels so the ladder covers the
    whole position: the last TP fill leaves it flat.
    """
    planned = [t for t in p.tps if t.price is not None]
    total = sum(t.fraction for t in planned)
    sizes: dict[int, float] = {}
    cum_fraction, prev = 0.0, 0.0
    for i, t in enumerate(planned):
        cum_fraction += t.fraction
        last = i == len(planned) - 1
        cum = p.size if last else floor_to_step(p.size * cum_fraction / total, p.lot_size)
        sizes[t.level] = max(round_to_step(cum - prev, p.lot_size), 0.0)
        prev = cum
    return tuple(replace(t, size=sizes.get(t.level, 0.0)) for t in p.tps)


def _complete_entry(p: Position) -> tuple[Position, list[Action]]:
    """Entry done: fix the TP ladder and place each level that is valid from the fill price."""
    done = replace(p, entry_complete=True, tps=_ladder(p))
    if done.state is PositionState.CLOSING or done.entry_price is None:
        return done, []
    actions: list[Action] = []
    for t in done.tps:
        if t.price is None or t.size <= 0:
            continue
        problem = tp_level_problem(done.side, t.price, done.entry_price, done.tick_size)
        if problem:
            log.warning("%s TP%d skipped at entry: %s", done.position_id, t.level, problem)
            continue
        actions.append(_place_tp(done, t, t.size))
    return done, actions


def _place_tp(p: Position, slot: TpSlot, size: float) -> PlaceTp:
    assert slot.price is not None  # callers skip unplanned levels
    return PlaceTp(
        position_id=p.position_id,
        symbol=p.symbol,
        side=p.side.exit_order_side,
        level=slot.level,
        size=size,
        trigger_price=round_to_step(slot.price, p.tick_size),
        client_id=p.tp_client_id(slot.level),
    )


def _with_tp(p: Position, level: int, **changes: object) -> Position:
    tps = tuple(replace(t, **changes) if t.level == level else t for t in p.tps)
    return replace(p, tps=tps)


# --- handlers: (position, event, break_even_after_tp1) -> (position, actions) -------------

Result = tuple[Position, list[Action]]


def _on_entry_fill(p: Position, e: EntryPartiallyFilled | EntryFilled, _be: bool) -> Result:
    delta = e.filled_size - p.entry_filled
    nxt = p
    if delta > 0:  # cumulative fills: a repeated or stale report changes nothing
        nxt = replace(p, size=p.size + delta, entry_filled=e.filled_size, entry_price=e.avg_price)
    actions: list[Action] = []
    if p.state is PositionState.PENDING_ENTRY:
        nxt = replace(nxt, state=PositionState.OPEN_UNPROTECTED)
        actions.append(_place_stop(nxt))
    elif nxt is not p and p.state is PositionState.PROTECTED and p.stop_order_id is not None:
        nxt, move = _replace_stop(nxt, nxt.stop_price)  # the stop must cover the added size
        actions.append(move)
    if isinstance(e, EntryFilled) and not nxt.entry_complete:
        nxt, tp_actions = _complete_entry(nxt)
        actions.extend(tp_actions)
    return nxt, actions


def _on_entry_rejected(p: Position, e: EntryRejected, _be: bool) -> Result:
    return replace(p, state=PositionState.ENTRY_REJECTED, close_reason=e.reason), []


def _on_entry_cancelled(p: Position, e: EntryCancelled, _be: bool) -> Result:
    if p.state is PositionState.PENDING_ENTRY:
        return replace(p, state=PositionState.ENTRY_CANCELLED, close_reason=e.reason), []
    if p.entry_complete:
        return p, []
    return _complete_entry(p)  # partly filled: the ladder covers what was filled


def _on_stop_placed(p: Position, e: StopPlaced, _be: bool) -> Result:
    if p.state is PositionState.CLOSED:
        return p, [_cancel(p, "stop acknowledged after close", venue_order_id=e.venue_order_id)]
    if p.stop_order_id == e.venue_order_id:
        return p, []  # a repeated acknowledgement
    state = PositionState.CLOSING if p.state is PositionState.CLOSING else PositionState.PROTECTED
    nxt = replace(
        p,
        state=state,
        stop_order_id=e.venue_order_id,
        stop_price=e.trigger_price,
        stop_size=e.size,
    )
    if state is PositionState.PROTECTED and e.size < nxt.size - nxt.lot_size / 2:
        nxt, move = _replace_stop(nxt, nxt.stop_price)  # placed before the entry finished filling
        return nxt, [move]
    return nxt, []


def _on_stop_moved(p: Position, e: StopMoved, _be: bool) -> Result:
    if p.state is PositionState.CLOSED:
        return p, [_cancel(p, "stop moved after close", venue_order_id=e.venue_order_id)]
    nxt = replace(p, stop_order_id=e.venue_order_id, stop_price=e.trigger_price, stop_size=e.size)
    return nxt, []


def _on_stop_rejected(p: Position, e: StopRejected, _be: bool) -> Result:
    if p.state is PositionState.CLOSED:
        return p, []
    if p.stop_order_id is not None:
        # A replacement was refused; the recorded stop still works.
        reason = f"stop replacement {e.client_id} rejected ({e.reason}); keeping {p.stop_order_id}"
        return p, [NoAction(reason=reason, position_id=p.position_id, symbol=p.symbol)]
    if e.client_id != p.stop_client_id:
        return p, []  # an older attempt; the current one is still in flight
    return _reprotect(p, p.state)


def _on_stop_cancelled(p: Position, e: StopCancelled, _be: bool) -> Result:
    if p.state is PositionState.CLOSED or e.venue_order_id != p.stop_order_id:
        return p, []  # our own cancel echoing back, or a stop already replaced
    state = PositionState.CLOSING if p.state is PositionState.CLOSING else _U
    return _reprotect(p, state)


def _on_stop_missing(p: Position, _e: StopMissing, _be: bool) -> Result:
    state = PositionState.CLOSING if p.state is PositionState.CLOSING else _U
    if p.stop_order_id is None:
        # Re-ask under the same attempt id: if it is merely in flight the gateway knows it.
        return replace(p, state=state), [_place_stop(p)]
    return _reprotect(p, state)


def _on_stop_filled(p: Position, e: StopFilled, _be: bool) -> Result:
    remaining = max(p.size - e.filled_size, 0.0)
    if _flat(p, remaining):
        return _close(p, "stop filled", stop_filled=True)
    state = PositionState.CLOSING if p.state is PositionState.CLOSING else _U
    return _reprotect(replace(p, size=remaining), state)


def _on_tp_placed(p: Position, e: TpPlaced, _be: bool) -> Result:
    if p.state is PositionState.CLOSED:
        return p, [
            _cancel(p, "take profit acknowledged after close", venue_order_id=e.venue_order_id)
        ]
    return _with_tp(p, e.level, order_id=e.venue_order_id, price=e.trigger_price, size=e.size), []


def _on_tp_rejected(p: Position, e: TpRejected, _be: bool) -> Result:
    slot = p.tps[e.level - 1]
    if p.state is PositionState.CLOSED or slot.order_id is not None:
        return p, []
    if e.client_id != p.tp_client_id(e.level):
        return p, []
    # The backfill places it again later, under the next attempt's id.
    return _with_tp(p, e.level, attempt=slot.attempt + 1), []


def _on_tp_cancelled(p: Position, e: TpCancelled, _be: bool) -> Result:
    slot = p.tps[e.level - 1]
    if p.state is PositionState.CLOSED or slot.order_id != e.venue_order_id:
        return p, []
    return _with_tp(p, e.level, order_id=None, attempt=slot.attempt + 1), []


def _on_tp_filled(p: Position, e: TpFilled, break_even_after_tp1: bool) -> Result:
    if p.tps[e.level - 1].filled:
        return p, []  # a repeated fill report for a level already done
    remaining = max(p.size - e.filled_size, 0.0)
    nxt = replace(_with_tp(p, e.level, filled=True), size=remaining)
    if _flat(p, remaining):
        closed, cancels = _close(nxt, f"TP{e.level} filled")
        return closed, cancels
    if (
        break_even_after_tp1
        and e.level == 1
        and nxt.state is PositionState.PROTECTED
        and nxt.entry_price is not None
    ):
        be = round_away(nxt.entry_price, nxt.tick_size, up=nxt.side is PositionSide.LONG)
        if _beyond(nxt.side, be, nxt.stop_price):  # only ever tighten the stop
            nxt, move = _replace_stop(nxt, be)
            return nxt, [move]
    return nxt, []


def _on_close_requested(p: Position, e: CloseRequested, _be: bool) -> Result:
    actions: list[Action] = []
    if not p.entry_complete:
        actions.append(_cancel(p, e.reason, client_id=p.entry_client_id))
    actions.append(Flatten(symbol=p.symbol, reason=e.reason))
    return replace(p, state=PositionState.CLOSING, close_reason=e.reason), actions


def _on_flatten_filled(p: Position, e: FlattenFilled, _be: bool) -> Result:
    remaining = max(p.size - e.filled_size, 0.0)
    if _flat(p, remaining):
        return _close(replace(p, size=remaining), p.close_reason or "flattened")
    # Something was left (a late entry fill): flatten the rest of this known position.
    return replace(p, size=remaining), [Flatten(symbol=p.symbol, reason=p.close_reason or "rest")]


def _on_position_gone(p: Position, e: PositionGone, _be: bool) -> Result:
    # Never an exchange action: only the record closes (SPEC §7, ORPHAN).
    closed = replace(p, state=PositionState.CLOSED, size=0.0, close_reason=e.reason)
    return closed, [CloseRecord(position_id=p.position_id, symbol=p.symbol, reason=e.reason)]


_HANDLERS: dict[type, Callable[[Position, object, bool], Result]] = {
    EntryPartiallyFilled: _on_entry_fill,
    EntryFilled: _on_entry_fill,
    EntryRejected: _on_entry_rejected,
    EntryCancelled: _on_entry_cancelled,
    StopPlaced: _on_stop_placed,
    StopMoved: _on_stop_moved,
    StopRejected: _on_stop_rejected,
    StopCancelled: _on_stop_cancelled,
    StopMissing: _on_stop_missing,
    StopFilled: _on_stop_filled,
    TpPlaced: _on_tp_placed,
    TpRejected: _on_tp_rejected,
    TpCancelled: _on_tp_cancelled,
    TpFilled: _on_tp_filled,
    CloseRequested: _on_close_requested,
    FlattenFilled: _on_flatten_filled,
    PositionGone: _on_position_gone,
}


def apply(
    position: Position, event: PositionEvent, *, break_even_after_tp1: bool = False
) -> tuple[Position, list[Action]]:
    """The position after `event` and the actions it calls for.

    Refuses, with the position unchanged: an event for another position
    (EventForOtherPosition), a (state, event) pair the table does not list,
    and a TP level outside 1..3 (InvalidTransition). `break_even_after_tp1`
    moves a working stop to the entry price once TP1 fills.
    """
    if event.position_id != position.position_id:
        raise EventForOtherPosition(
            f"{type(event).__name__} for {event.position_id} applied to {position.position_id}"
        )
    allowed = TRANSITIONS.get((position.state, type(event)))
    if allowed is None:
        raise InvalidTransition(position.state, event)
    level = getattr(event, "level", None)
    if level is not None and level not in TP_LEVELS:
        raise InvalidTransition(position.state, event, f"TP level {level} is not 1..3")
    new, actions = _HANDLERS[type(event)](position, event, break_even_after_tp1)
    if new.state not in allowed:
        raise InvalidTransition(position.state, event, f"handler produced {new.state}")
    return new, actions


# --- TP backfill ------------------------------------------------------------------------


def plan_tp_backfill(
    position: Position, mark_price: float, tick_size: float, min_distance: float
) -> tuple[list[PlaceTp], list[str]]:
    """PLACE_TP for every planned level with no working order, and why others were skipped.

    Each level is judged on its own against the mark price: one already passed
    or closer than `min_distance` (at least a tick) is skipped, the others are
    still placed. A level re-asked before its acknowledgement arrives keeps its
    client id, so the gateway recognises it. Only open, unclosing positions
    whose entry is complete get TPs.
    """
    if position.state not in (_U, _R) or not position.entry_complete:
        return [], []
    working = sum(t.size for t in position.tps if t.order_id is not None and not t.filled)
    room = floor_to_step(max(position.size - working, 0.0), position.lot_size)
    placed: list[PlaceTp] = []
    skipped: list[str] = []
    for t in position.tps:
        if t.price is None or t.order_id is not None or t.filled or t.size <= 0:
            continue
        problem = tp_level_problem(position.side, t.price, mark_price, max(min_distance, tick_size))
        size = min(t.size, room)
        if problem is None and size <= 0:
            problem = "no uncovered size left"
        if problem:
            skipped.append(f"{position.position_id} TP{t.level} skipped: {problem}")
            continue
        room -= size
        placed.append(_place_tp(replace(position, tick_size=tick_size), t, size))
    return placed, skipped


def tp_backfill(
    position: Position, mark_price: float, tick_size: float, min_distance: float
) -> list[PlaceTp]:
    """The missing TP levels to place now; each skipped level is logged as a warning."""
    placed, skipped = plan_tp_backfill(position, mark_price, tick_size, min_distance)
    for line in skipped:
        log.warning(line)
    return placed
