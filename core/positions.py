"""The position state machine: events in, a new immutable position and typed actions out.

The lifecycle is a table of (state, event type) -> allowed next states
(`TRANSITIONS`). `apply` looks the pair up before it touches anything and
raises `InvalidTransition` when the table has no row for it; a handler then
computes the new position and its actions, and a result outside the row's
allowed states is refused too. Nothing here talks to a venue or a database.

Sizes are contracts; "flat" means less than half a lot remains. Fills are
cumulative per venue order (core/position_events.py), so a repeated or late
report is harmless and no fill is counted twice. The venue's size is the truth:
a reconciled size (`SizeCorrected`) replaces the record's, and the fills it
already contains are not applied again. Stop and TP client ids are derived
from (position, action, level, attempt): re-emitting the same attempt is
recognised by the gateway, and a rejection or loss moves to the next attempt
so a fresh id is used.

What the position owns at the venue (its stop, its TP ladder, an unfinished
entry) is cancelled whenever the record closes, however it closes; the TP
ladder always covers what is held, never more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

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
from core.position_events import (
    EVENT_TYPES,
    CloseRequested,
    EntryCancelled,
    EntryFilled,
    EntryPartiallyFilled,
    EntryRejected,
    FlattenFilled,
    PositionEvent,
    PositionGone,
    SizeCorrected,
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
)
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
    (_R, StopFilled): frozenset({_X, _U, _R}),  # a partial fill leaves the stop working
    (_C, StopFilled): frozenset({_X, _C}),
    # take profit
    **_stay((_U, _R, _C, _X), TpPlaced),
    **_stay((_U, _R, _C, _X), TpRejected),
    **_stay((_U, _R, _C, _X), TpCancelled),
    (_U, TpFilled): frozenset({_X, _U}),
    (_R, TpFilled): frozenset({_X, _R}),
    (_C, TpFilled): frozenset({_X, _C}),
    # the venue's truth
    **_stay((_U, _R, _C), SizeCorrected),
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
    size: float = 0.0  # contracts this level closes (re-sized when the position changes)
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
    stop_size: float = 0.0  # size of the working stop order when placed
    stop_attempt: int = 0
    imported: bool = False  # adopted from the venue (PHANTOM), not opened by us
    close_reason: str | None = None
    # (venue order id, cumulative filled) of every exit order that has filled
    exit_fills: tuple[tuple[str, float], ...] = ()
    size_basis_ts: datetime | None = None  # the size was taken from the venue at this time
    stop_rejections: int = 0  # consecutive refusals of this position's stop
    stop_problem: str | None = None  # why the last stop was refused
    unprotected_cycles: int = 0  # consecutive cycle ends without a working stop
    flatten_attempt: int = 0
    realised_pnl: float | None = None  # the venue's figure, when the exit was not seen in fills

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
    def is_protected(self) -> bool:
        """Holding contracts with a stop confirmed working at the venue."""
        return self.stop_order_id is not None and self.size >= self.lot_size / 2

    @property
    def entry_client_id(self) -> str:
        return client_id_for(self.position_id, ActionType.PLACE_ENTRY)

    @property
    def stop_client_id(self) -> str:
        """The client id of the current stop attempt."""
        return client_id_for(self.position_id, ActionType.PLACE_STOP, attempt=self.stop_attempt)

    @property
    def flatten_client_id(self) -> str:
        return client_id_for(self.position_id, ActionType.FLATTEN, attempt=self.flatten_attempt)

    def tp_client_id(self, level: int) -> str:
        return client_id_for(
            self.position_id, ActionType.PLACE_TP, level=level, attempt=self.tps[level - 1].attempt
        )

    def exit_filled(self, venue_order_id: str | None) -> float:
        """What the exit order `venue_order_id` has filled so far, as this record counted it."""
        return dict(self.exit_fills).get(venue_order_id or "", 0.0)

    @property
    def stop_remaining(self) -> float:
        """Contracts the working stop can still close (its size less what it filled)."""
        if self.stop_order_id is None:
            return 0.0
        return max(self.stop_size - self.exit_filled(self.stop_order_id), 0.0)


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


def _lots(p: Position, size: float) -> float:
    """A size back on the lot grid (0.3 - 0.1 must be 0.2, not 0.19999999999999998)."""
    return round_to_step(max(size, 0.0), p.lot_size)


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


def _with_exit_fill(p: Position, order: str, filled: float) -> Position:
    fills = dict(p.exit_fills)
    fills[order] = max(fills.get(order, 0.0), filled)
    return replace(p, exit_fills=tuple(sorted(fills.items())))


def _exit_delta(p: Position, order: str, filled: float, reflected: float) -> float:
    """Contracts this report removes that the record's size does not yet reflect."""
    counted = max(p.exit_filled(order), reflected)
    return _lots(p, filled - counted) if filled > counted else 0.0


def _owned_cancels(p: Position, reason: str, *, keep: str | None = None) -> list[Action]:
    """Cancel every order the record owns at the venue (no OCO on Kraken), except `keep`."""
    cancels: list[Action] = []
    if p.stop_order_id is not None and p.stop_order_id != keep:
        cancels.append(_cancel(p, reason, venue_order_id=p.stop_order_id))
    for t in p.tps:
        if t.order_id is not None and not t.filled and t.order_id != keep:
            cancels.append(_cancel(p, reason, venue_order_id=t.order_id))
    if not p.entry_complete:
        cancels.append(_cancel(p, reason, client_id=p.entry_client_id))
    return cancels


def _close(p: Position, reason: str, *, done_order: str | None = None) -> Result:
    """CLOSED, with every sibling exit and a still-working entry cancelled; `done_order`
    is the exit order that finished the position (nothing left to cancel there)."""
    cancels = _owned_cancels(p, reason, keep=done_order)
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


def _ladder_sizes(p: Position) -> dict[int, float]:
    """Each open planned level's size: fractions of the held size, lots floored, the last
    takes the rest; fractions are normalised over the levels not yet filled, so the ladder
    covers exactly what is held (the last TP fill leaves the position flat)."""
    planned = [t for t in p.tps if t.price is not None and not t.filled]
    total = sum(t.fraction for t in planned)
    sizes: dict[int, float] = {}
    cum_fraction, prev = 0.0, 0.0
    for i, t in enumerate(planned):
        cum_fraction += t.fraction
        last = i == len(planned) - 1
        cum = p.size if last else floor_to_step(p.size * cum_fraction / total, p.lot_size)
        sizes[t.level] = max(round_to_step(cum - prev, p.lot_size), 0.0)
        prev = cum
    return sizes


def _ladder(p: Position) -> tuple[TpSlot, ...]:
    sizes = _ladder_sizes(p)
    return tuple(replace(t, size=sizes.get(t.level, t.size if t.filled else 0.0)) for t in p.tps)


def _complete_entry(p: Position) -> Result:
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


def _rebalance(p: Position, why: str) -> Result:
    """After the held size changed other than by a TP fill: the stop must cover it, and the
    TP ladder is re-sized to it (a working level of the wrong size is replaced)."""
    actions: list[Action] = []
    nxt = p
    if nxt.stop_order_id is not None and nxt.stop_remaining < nxt.size - nxt.lot_size / 2:
        nxt, move = _replace_stop(nxt, nxt.stop_price)
        actions.append(move)
    if not nxt.entry_complete or nxt.state not in (_U, _R):
        return nxt, actions
    sizes = _ladder_sizes(nxt)
    for t in nxt.tps:
        if t.price is None or t.filled:
            continue
        target = sizes.get(t.level, 0.0)
        if t.order_id is None:
            nxt = _with_tp(nxt, t.level, size=target)
            continue
        working = t.size - nxt.exit_filled(t.order_id)
        if abs(working - target) < nxt.lot_size / 2:
            continue
        log.info(
            "%s TP%d re-sized %s -> %s (%s)", nxt.position_id, t.level, working, target, why
        )
        actions.append(_cancel(nxt, f"TP re-sized: {why}", venue_order_id=t.order_id))
        nxt = _with_tp(nxt, t.level, order_id=None, attempt=t.attempt + 1, size=target)
        if target > 0:
            actions.append(_place_tp(nxt, nxt.tps[t.level - 1], target))
    return nxt, actions


# --- handlers: (position, event, break_even_after_tp1) -> (position, actions) -------------

Result = tuple[Position, list[Action]]


def _on_entry_fill(p: Position, e: EntryPartiallyFilled | EntryFilled, _be: bool) -> Result:
    delta = e.filled_size - p.entry_filled
    nxt = p
    if delta > 0:  # cumulative fills: a repeated or stale report changes nothing
        nxt = replace(
            p,
            size=_lots(p, p.size + delta),
            entry_filled=e.filled_size,
            entry_price=e.avg_price,
        )
    elif p.entry_price is None or e.filled_size >= p.entry_filled - p.lot_size / 2:
        # the order's own fills now cover an estimate (a size recovered from the venue)
        nxt = replace(p, entry_price=e.avg_price)
    actions: list[Action] = []
    if p.state is PositionState.PENDING_ENTRY:
        nxt = replace(nxt, state=PositionState.OPEN_UNPROTECTED)
        actions.append(_place_stop(nxt))
    elif nxt.size != p.size:
        nxt, more = _rebalance(nxt, "entry filled further")
        actions += more
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


def _refuse_an_id_owned_elsewhere(p: Position, venue_order_id: str, slot: str) -> None:
    """A venue order id names one order: an acknowledgement giving the stop a TP's id (or a
    TP the stop's or another level's) is refused, never recorded, because cancelling the
    one would then cancel the other (a working stop of an open position included)."""
    owners = {"stop": p.stop_order_id} | {f"tp{t.level}": t.order_id for t in p.tps}
    for name, owned in owners.items():
        if name != slot and owned == venue_order_id:
            raise PositionError(
                f"{p.position_id}: venue order {venue_order_id} acknowledged as its {slot} "
                f"is already its {name}; the record is left as it was"
            )


def _on_stop_placed(p: Position, e: StopPlaced, _be: bool) -> Result:
    if p.state is PositionState.CLOSED:
        return p, [_cancel(p, "stop acknowledged after close", venue_order_id=e.venue_order_id)]
    _refuse_an_id_owned_elsewhere(p, e.venue_order_id, "stop")
    if p.stop_order_id == e.venue_order_id:
        return p, []  # a repeated acknowledgement
    state = PositionState.CLOSING if p.state is PositionState.CLOSING else PositionState.PROTECTED
    nxt = replace(
        p,
        state=state,
        stop_order_id=e.venue_order_id,
        stop_price=e.trigger_price,
        stop_size=e.size,
        stop_rejections=0,
        stop_problem=None,
    )
    if state is PositionState.PROTECTED and e.size < nxt.size - nxt.lot_size / 2:
        nxt, move = _replace_stop(nxt, nxt.stop_price)  # placed before the entry finished filling
        return nxt, [move]
    return nxt, []


def _on_stop_moved(p: Position, e: StopMoved, _be: bool) -> Result:
    if p.state is PositionState.CLOSED:
        return p, [_cancel(p, "stop moved after close", venue_order_id=e.venue_order_id)]
    _refuse_an_id_owned_elsewhere(p, e.venue_order_id, "stop")
    nxt = replace(
        p,
        stop_order_id=e.venue_order_id,
        stop_price=e.trigger_price,
        stop_size=e.size,
        stop_rejections=0,
        stop_problem=None,
    )
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
    # No resend at the same price here: core/protection.py decides (re-price, close, or wait
    # for the next cycle), so a refused stop is never repeated blindly.
    nxt = replace(
        p,
        stop_attempt=p.stop_attempt + 1,
        stop_rejections=p.stop_rejections + 1,
        stop_problem=e.reason,
    )
    return nxt, []


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
    order = e.venue_order_id or p.stop_order_id or ""
    delta = _exit_delta(p, order, e.filled_size, e.reflected)
    nxt = replace(_with_exit_fill(p, order, e.filled_size), size=_lots(p, p.size - delta))
    current = order == p.stop_order_id
    if _flat(p, nxt.size):
        return _close(nxt, "stop filled", done_order=order if e.done else None)
    if delta <= 0 and not (current and e.done):
        return nxt, []  # a repeated report, or one the record's size already reflects
    if current and e.done:
        state = PositionState.CLOSING if p.state is PositionState.CLOSING else _U
        return _reprotect(nxt, state)  # an undersized stop is done: protect the rest
    # The stop filled in part and keeps working (or an older stop filled): re-size the rest.
    return _rebalance(nxt, "stop filled in part")


def _on_tp_placed(p: Position, e: TpPlaced, _be: bool) -> Result:
    if p.state is PositionState.CLOSED:
        return p, [
            _cancel(p, "take profit acknowledged after close", venue_order_id=e.venue_order_id)
        ]
    _refuse_an_id_owned_elsewhere(p, e.venue_order_id, f"tp{e.level}")
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
    slot = p.tps[e.level - 1]
    order = e.venue_order_id or slot.order_id or f"tp{e.level}"
    delta = _exit_delta(p, order, e.filled_size, e.reflected)
    if delta <= 0 and (slot.filled or not e.done):
        return _with_exit_fill(p, order, e.filled_size), []  # repeated or already reflected
    nxt = replace(_with_exit_fill(p, order, e.filled_size), size=_lots(p, p.size - delta))
    extra: list[Action] = []
    if e.done:
        if slot.order_id is not None and slot.order_id != order:
            # an older order of this level finished it (a re-size's cancel came too late)
            extra.append(_cancel(p, f"TP{e.level} already filled", venue_order_id=slot.order_id))
        nxt = _with_tp(nxt, e.level, filled=True, order_id=e.venue_order_id or slot.order_id)
    if _flat(p, nxt.size):
        closed, cancels = _close(nxt, f"TP{e.level} filled", done_order=order if e.done else None)
        return closed, [*extra, *cancels]
    if (
        break_even_after_tp1
        and e.done
        and e.level == 1
        and nxt.state is PositionState.PROTECTED
        and nxt.entry_price is not None
    ):
        be = round_away(nxt.entry_price, nxt.tick_size, up=nxt.side is PositionSide.LONG)
        if _beyond(nxt.side, be, nxt.stop_price):  # only ever tighten the stop
            nxt, move = _replace_stop(nxt, be)
            return nxt, [*extra, move]
    return nxt, extra


def _on_size_corrected(p: Position, e: SizeCorrected, _be: bool) -> Result:
    size = _lots(p, e.venue_size)
    nxt = replace(p, size=size, size_basis_ts=e.basis_ts)
    if size == p.size:
        return nxt, []
    if not p.entry_complete and size >= p.requested_size - p.lot_size / 2:
        nxt = replace(nxt, entry_filled=max(p.entry_filled, size))
    return _rebalance(nxt, e.reason)


def _on_close_requested(p: Position, e: CloseRequested, _be: bool) -> Result:
    actions: list[Action] = []
    if not p.entry_complete:
        actions.append(_cancel(p, e.reason, client_id=p.entry_client_id))
    actions.append(_flatten(p, e.reason))
    return replace(p, state=PositionState.CLOSING, close_reason=e.reason), actions


def _flatten(p: Position, reason: str) -> Flatten:
    return Flatten(
        symbol=p.symbol, reason=reason, client_id=p.flatten_client_id, position_id=p.position_id
    )


def _on_flatten_filled(p: Position, e: FlattenFilled, _be: bool) -> Result:
    order = e.venue_order_id or p.flatten_client_id
    delta = _exit_delta(p, order, e.filled_size, e.reflected)
    nxt = replace(_with_exit_fill(p, order, e.filled_size), size=_lots(p, p.size - delta))
    if _flat(p, nxt.size):
        return _close(nxt, p.close_reason or "flattened")
    if not e.done or delta <= 0:
        return nxt, []
    # Something was left (a late entry fill): flatten the rest under the next attempt's id.
    nxt = replace(nxt, flatten_attempt=p.flatten_attempt + 1)
    return nxt, [_flatten(nxt, p.close_reason or "rest")]


def _on_position_gone(p: Position, e: PositionGone, _be: bool) -> Result:
    # No flatten, ever (SPEC §7, ORPHAN): the record closes, and the orders it owns at the
    # venue (reduce-only exits left on a flat market) are cancelled with it.
    closed, cancels = _close(p, e.reason)
    closed = replace(closed, realised_pnl=e.realised_pnl)
    record = CloseRecord(position_id=p.position_id, symbol=p.symbol, reason=e.reason)
    return closed, [record, *cancels]


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
    SizeCorrected: _on_size_corrected,
}
assert set(_HANDLERS) == set(EVENT_TYPES)


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


def count_unprotected(position: Position) -> Position:
    """At a cycle's end: one more cycle without a working stop, or back to zero."""
    if position.is_open and not position.is_protected:
        return replace(position, unprotected_cycles=position.unprotected_cycles + 1)
    if position.unprotected_cycles:
        return replace(position, unprotected_cycles=0)
    return position


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
    working = sum(
        t.size - position.exit_filled(t.order_id)
        for t in position.tps
        if t.order_id is not None and not t.filled
    )
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
