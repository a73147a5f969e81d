"""Reconciliation as a function: the venue's positions and open orders in, corrections out.

Run every cycle and at start-up (SPEC §7: sync with the exchange, then take
over). The rules, each of which exists because of a real outage:

- PHANTOM (the venue holds a position we do not know): logged, imported, and
  protected: an existing reduce-only stop at the venue is adopted, otherwise a
  PLACE_STOP at a configured distance. Never closed.
- ORPHAN (our open record, nothing at the venue): the first sighting only marks
  it suspected; a second consecutive sighting closes the record, and with it the
  record's own exit orders. Never a flatten.
- SIZE_MISMATCH (same side, another size): the venue's size is the truth; the
  record takes it (logged), and its stop and TP ladder are re-sized to it.
- A known position whose stop is not working at the venue gets its stop back
  (our own lost stop is adopted by client id; otherwise PLACE_STOP).
- An order carrying one of our client ids (the write-ahead log knows every one)
  is always ours: one that no open record needs (an exit of a closed record, a
  stop or TP of an earlier attempt beside the working one) is cancelled, so
  nothing of ours stays working on a flat market.
- The other side at the venue (closed and reopened by hand): seen twice, the record
  closes as an ORPHAN and the venue's position is imported as a PHANTOM.
- Anything else not understood (several records or reports for one market, a foreign
  order) is logged `UNKNOWN ... deferred` and left as it is.

Nothing here flattens, and the only cancels are of our own orders listed
above: the bot never destroys what it is unsure about. Corrections to known
positions go through the position machine (`apply`), so their actions are the
machine's own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from core.actions import Action, ActionType, Cancel, ImportPosition, PlaceStop, client_id_for
from core.orders import Order, OrderStatus, OrderType, PositionReport, PositionSide
from core.position_events import (
    EntryCancelled,
    EntryFilled,
    EntryPartiallyFilled,
    PositionEvent,
    PositionGone,
    SizeCorrected,
    StopMissing,
    StopPlaced,
    TpPlaced,
)
from core.positions import (
    OPEN_STATES,
    TERMINAL_STATES,
    Position,
    PositionError,
    PositionState,
    apply,
    empty_tps,
)
from core.precision import round_away


@dataclass(frozen=True, slots=True)
class MarketGrid:
    tick_size: float
    lot_size: float


@dataclass(frozen=True, slots=True)
class ImportProtection:
    """Where the stop of an imported (PHANTOM) position goes, and each market's grid.

    Distance: `atr_multiple` x the market's ATR when `atr` has it, otherwise
    `stop_distance_pct` of the reference price (mark, else entry). `grids` should
    list every market the venue lists, tradeable or not; a phantom on a market
    without a grid is not understood and is deferred.
    """

    stop_distance_pct: float
    atr_multiple: float
    grids: Mapping[str, MarketGrid]
    atr: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.stop_distance_pct < 1:
            raise ValueError(f"stop_distance_pct must be in (0, 1), got {self.stop_distance_pct}")
        if not self.atr_multiple > 0:
            raise ValueError(f"atr_multiple must be positive, got {self.atr_multiple}")


@dataclass(frozen=True, slots=True)
class OrderOwner:
    """Who sent the order carrying a client id of ours (from the write-ahead log)."""

    position_id: str | None
    recorded: bool  # a position record with this id exists
    closed: bool  # that record is terminal


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """What the caller persists (`positions`), executes (`actions`) and logs.

    `events` are the corrective events already applied to the known positions,
    kept for the audit trail: do not apply them again. Pass
    `suspected_missing` as `previously_missing` to the next call.
    """

    positions: tuple[Position, ...]
    events: tuple[PositionEvent, ...]
    actions: tuple[Action, ...]
    log_lines: tuple[str, ...]
    suspected_missing: frozenset[str]


@dataclass(slots=True)
class _Run:
    """Mutable scratchpad of one reconcile call; never escapes it."""

    protection: ImportProtection
    now: datetime
    phase: str
    confirmable: frozenset[str]
    positions: dict[str, Position]
    events: list[PositionEvent] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    suspected: set[str] = field(default_factory=set)
    claimed_orders: set[str] = field(default_factory=set)

    def log(self, line: str) -> None:
        self.logs.append(f"[{self.phase}] {line}")

    def cancel(self, order: Order, position_id: str, why: str) -> None:
        if any(
            isinstance(a, Cancel) and a.venue_order_id == order.venue_order_id
            for a in self.actions
        ):
            return
        self.actions.append(
            Cancel(position_id, order.symbol, why, venue_order_id=order.venue_order_id)
        )

    def apply(self, p: Position, event: PositionEvent) -> None:
        try:
            new, actions = apply(p, event)
        except PositionError as err:
            self.log(f"UNKNOWN {p.symbol} {p.position_id}: {err}; deferred")
            return
        self.positions[p.position_id] = new
        self.events.append(event)
        self.actions.extend(actions)


def reconcile(
    known: list[Position],
    venue_positions: list[PositionReport],
    venue_open_orders: list[Order],
    *,
    startup: bool,
    previously_missing: set[str] | frozenset[str],
    protection: ImportProtection,
    now: datetime,
    owners: Mapping[str, OrderOwner] | None = None,
) -> ReconcileResult:
    """Compare the bot's positions with the venue's and return the corrections.

    `venue_open_orders` must be the venue's complete list of open orders.
    `previously_missing` holds the ids found missing by the previous call; at
    start-up it is ignored, because a record is closed only on two sightings
    made with fresh eyes. `now` stamps imported positions and is the time the
    venue's sizes are taken at. `owners` maps every client id in the write-ahead
    log to its owner. Refuses only a naive `now`; whatever else it does not
    understand is logged and deferred. Never emits FLATTEN; cancels only orders
    of ours that no open record needs.
    """
    if now.tzinfo is None:
        raise ValueError("reconcile needs a timezone-aware UTC `now`")
    run = _Run(
        protection=protection,
        now=now,
        phase="startup" if startup else "cycle",
        confirmable=frozenset() if startup else frozenset(previously_missing),
        positions={p.position_id: p for p in known},
    )
    tracked = [p for p in known if p.state not in TERMINAL_STATES]
    open_orders = [o for o in venue_open_orders if o.status is OrderStatus.OPEN]
    symbols = sorted(
        {p.symbol for p in tracked}
        | {v.symbol for v in venue_positions}
        | {o.symbol for o in open_orders}
    )
    for symbol in symbols:
        _reconcile_symbol(
            run,
            symbol,
            [p for p in tracked if p.symbol == symbol],
            [v for v in venue_positions if v.symbol == symbol],
            [o for o in open_orders if o.symbol == symbol],
        )
    _sweep_own_orders(run, owners or {}, open_orders, venue_positions)
    _log_foreign_orders(run, known, open_orders, owners or {})
    return ReconcileResult(
        positions=tuple(run.positions.values()),
        events=tuple(run.events),
        actions=tuple(run.actions),
        log_lines=tuple(run.logs),
        suspected_missing=frozenset(run.suspected),
    )


def _reconcile_symbol(
    run: _Run,
    symbol: str,
    ours: list[Position],
    reports: list[PositionReport],
    orders: list[Order],
) -> None:
    open_ = [p for p in ours if p.state in OPEN_STATES]
    pending = [p for p in ours if p.state is PositionState.PENDING_ENTRY]
    if len(reports) > 1:
        run.log(f"UNKNOWN {symbol}: the venue reports {len(reports)} positions; deferred")
        return
    if not reports:
        for p in open_:
            _missing(run, p)
        return  # a pending entry with nothing at the venue is the intent log's to resolve
    report = reports[0]
    if not open_ and not pending:
        _phantom(run, report, orders)
    elif len(open_) + len(pending) > 1:
        ids = ", ".join(p.position_id for p in open_ + pending)
        run.log(f"UNKNOWN {symbol}: several open records ({ids}) for one venue position; deferred")
    elif pending:
        _recover_entry(run, pending[0], report, orders)
    else:
        _check_open(run, open_[0], report, orders)


def _missing(run: _Run, p: Position) -> None:
    if p.position_id in run.confirmable:
        run.log(
            f"ORPHAN {p.symbol} {p.position_id}: absent at the venue on two consecutive checks; "
            "record closed, no exchange action"
        )
        run.apply(p, PositionGone(p.position_id, reason="ORPHAN: absent at the venue twice"))
        return
    run.suspected.add(p.position_id)
    run.log(
        f"ORPHAN suspected {p.symbol} {p.position_id}: absent at the venue; "
        "record kept until a second check"
    )


def _flipped(run: _Run, p: Position, report: PositionReport, orders: list[Order]) -> None:
    """The venue holds the other side: our position was closed and another opened (by hand).
    Seen twice, it is both an ORPHAN (the record closes, with its exits, which could never
    reduce the new side) and a PHANTOM (the new position is imported and protected)."""
    if p.position_id not in run.confirmable:
        run.suspected.add(p.position_id)
        run.log(
            f"UNKNOWN {p.symbol} {p.position_id}: side mismatch (ours {p.side}, venue "
            f"{report.side}); record kept until a second check"
        )
        return
    run.log(
        f"ORPHAN {p.symbol} {p.position_id}: the venue holds {report.side} instead of "
        f"{p.side} on two consecutive checks; record closed, no exchange action"
    )
    run.apply(p, PositionGone(p.position_id, reason="ORPHAN: the venue holds the other side"))
    _phantom(run, report, orders)


def import_position_id(report: PositionReport) -> str:
    """A deterministic id for an imported position, so a retried import reuses its client ids."""
    safe_symbol = re.sub(r"[^A-Za-z0-9_]", "_", report.symbol)
    digest = hashlib.sha256(
        f"{report.symbol}|{report.side}|{report.entry_price!r}".encode()
    ).hexdigest()[:10]
    return f"imp-{safe_symbol}-{report.side}-{digest}"


def _phantom(run: _Run, report: PositionReport, orders: list[Order]) -> None:
    grid = run.protection.grids.get(report.symbol)
    what = f"{report.symbol} {report.side} {report.size} @ {report.entry_price}"
    if grid is None:
        run.log(f"UNKNOWN PHANTOM {what}: no market grid to protect it with; import deferred")
        return
    pid = import_position_id(report)
    adopted = _adoptable_stop(report, orders, grid)
    position = Position(
        position_id=pid,
        symbol=report.symbol,
        side=report.side,
        state=PositionState.OPEN_UNPROTECTED,
        size=report.size,
        requested_size=report.size,
        entry_price=report.entry_price,
        stop_price=_import_stop_price(report, grid, run.protection),
        tick_size=grid.tick_size,
        lot_size=grid.lot_size,
        opened_at=run.now,  # the true open time is unknown: the import time
        tps=empty_tps(),
        entry_filled=report.size,
        entry_complete=True,
        imported=True,
    )
    if adopted is not None:
        position = replace(
            position,
            state=PositionState.PROTECTED,
            stop_order_id=adopted.venue_order_id,
            stop_price=adopted.trigger_price or position.stop_price,
            stop_size=adopted.size,
        )
        run.claimed_orders.add(adopted.venue_order_id)
    run.positions[pid] = position
    run.actions.append(
        ImportPosition(
            position_id=pid,
            symbol=report.symbol,
            side=report.side,
            size=report.size,
            entry_price=report.entry_price,
            stop_order_id=position.stop_order_id,
            stop_price=position.stop_price if adopted is not None else None,
        )
    )
    if adopted is not None:
        run.log(
            f"PHANTOM {what}: unknown to the bot; imported as {pid}, existing stop "
            f"{adopted.venue_order_id} adopted; no destructive action"
        )
        return
    run.actions.append(
        PlaceStop(
            position_id=pid,
            symbol=report.symbol,
            side=report.side.exit_order_side,
            size=report.size,
            trigger_price=position.stop_price,
            client_id=position.stop_client_id,
        )
    )
    run.log(
        f"PHANTOM {what}: unknown to the bot; imported as {pid}, protective stop at "
        f"{position.stop_price}; no destructive action"
    )


def _import_stop_price(report: PositionReport, grid: MarketGrid, rule: ImportProtection) -> float:
    """A stop `distance` beyond the mark (entry if no mark), on the grid, away from the price."""
    mark = report.mark_price
    reference = mark if mark is not None and mark > 0 else report.entry_price
    atr = rule.atr.get(report.symbol)
    distance = rule.atr_multiple * atr if atr else rule.stop_distance_pct * reference
    long = report.side is PositionSide.LONG
    raw = reference - distance if long else reference + distance
    price = round_away(max(raw, grid.tick_size), grid.tick_size, up=not long)
    return max(price, grid.tick_size)


def _adoptable_stop(report: PositionReport, orders: list[Order], grid: MarketGrid) -> Order | None:
    """The venue's most protective reduce-only stop that covers the whole position, if any."""
    long = report.side is PositionSide.LONG
    mark = report.mark_price

    def fits(o: Order) -> bool:
        if o.type is not OrderType.STOP or not o.reduce_only or o.trigger_price is None:
            return False
        if o.side is not report.side.exit_order_side or o.size < report.size - grid.lot_size / 2:
            return False
        # A stop on the wrong side of the mark would fire at once: not a protection we understand.
        return mark is None or (o.trigger_price < mark if long else o.trigger_price > mark)

    candidates = [o for o in orders if fits(o)]
    if not candidates:
        return None
    pick = max if long else min
    return pick(candidates, key=lambda o: o.trigger_price or 0.0)


def _recover_entry(run: _Run, p: Position, report: PositionReport, orders: list[Order]) -> None:
    """Our entry filled while its fill was not seen (crash, lost message): replay it."""
    if report.side is not p.side or report.size > p.requested_size + p.lot_size / 2:
        run.log(
            f"UNKNOWN {p.symbol}: pending entry {p.position_id} ({p.side} {p.requested_size}) "
            f"but the venue holds {report.side} {report.size}; deferred"
        )
        return
    still_working = any(o.client_id == p.entry_client_id for o in orders)
    event: PositionEvent = (
        EntryPartiallyFilled(p.position_id, report.size, report.entry_price)
        if still_working
        else EntryFilled(p.position_id, report.size, report.entry_price)
    )
    run.log(
        f"{p.symbol} {p.position_id}: entry fill recovered from the venue position "
        f"({report.size} @ {report.entry_price})"
    )
    run.apply(p, event)


def _check_open(run: _Run, p: Position, report: PositionReport, orders: list[Order]) -> None:
    if report.side is not p.side:
        _flipped(run, p, report, orders)
        return
    if not p.entry_complete and not any(o.client_id == p.entry_client_id for o in orders):
        run.apply(p, EntryCancelled(p.position_id, "entry order no longer working"))
        p = run.positions[p.position_id]
    p = _adopt_own_tps(run, p, orders)
    first_new = len(run.actions)
    _check_stop(run, p, orders)
    p = run.positions[p.position_id]
    if abs(report.size - p.size) >= p.lot_size / 2:
        run.log(
            f"SIZE_MISMATCH {p.symbol} {p.position_id}: record {p.size}, venue {report.size}; "
            "resolved from the venue (stop and take-profits re-sized)"
        )
        reason = f"venue holds {report.size}, record held {p.size}"
        run.apply(p, SizeCorrected(p.position_id, report.size, run.now, reason))
        size = run.positions[p.position_id].size
        # a stop asked for above covers what the venue holds, not the record's old size
        run.actions[first_new:] = [
            replace(a, size=size)
            if isinstance(a, PlaceStop) and a.position_id == p.position_id
            else a
            for a in run.actions[first_new:]
        ]


def _check_stop(run: _Run, p: Position, orders: list[Order]) -> None:
    if p.stop_order_id is not None and any(o.venue_order_id == p.stop_order_id for o in orders):
        return
    own = _own_stop(p, orders)
    if own is not None:
        run.log(f"{p.symbol} {p.position_id}: own stop {own.venue_order_id} found and adopted")
        trigger = own.trigger_price if own.trigger_price is not None else p.stop_price
        run.apply(p, StopPlaced(p.position_id, own.venue_order_id, trigger, own.size))
        return
    run.log(f"{p.symbol} {p.position_id}: no working stop at the venue; PLACE_STOP")
    run.apply(p, StopMissing(p.position_id, reason="no working stop at the venue"))


def _adopt_own_tps(run: _Run, p: Position, orders: list[Order]) -> Position:
    """A TP level with no recorded order whose current attempt works at the venue (its
    acknowledgement was lost): the record takes it, so it is never placed twice."""
    for t in p.tps:
        if t.order_id is not None or t.filled or t.price is None:
            continue
        cid = p.tp_client_id(t.level)
        own = next((o for o in orders if o.client_id == cid), None)
        if own is not None:
            trigger = own.trigger_price or t.price
            run.apply(p, TpPlaced(p.position_id, t.level, own.venue_order_id, trigger, own.size))
            p = run.positions[p.position_id]
    return p


def _stop_client_ids(p: Position) -> set[str]:
    """Every client id a stop of this position may carry, up to its current attempt."""
    ids = {client_id_for(p.position_id, ActionType.PLACE_STOP, attempt=a) for a in _upto(p)}
    ids |= {client_id_for(p.position_id, ActionType.MOVE_STOP, attempt=a) for a in _upto(p)}
    return ids


def _upto(p: Position) -> range:
    return range(p.stop_attempt + 1)


def _own_stop(p: Position, orders: list[Order]) -> Order | None:
    ids = _stop_client_ids(p)
    mine = [o for o in orders if o.type is OrderType.STOP and o.client_id in ids]
    return mine[-1] if mine else None


def _our_order_refs(known: Iterable[Position]) -> set[str]:
    """Venue and client ids of every order the known positions may own."""
    refs: set[str] = set()
    for p in known:
        refs |= _stop_client_ids(p)
        refs.add(p.entry_client_id)
        refs |= {
            client_id_for(p.position_id, ActionType.PLACE_TP, level=t.level, attempt=a)
            for t in p.tps
            for a in range(t.attempt + 1)
        }
        refs |= {t.order_id for t in p.tps if t.order_id is not None}
        if p.stop_order_id is not None:
            refs.add(p.stop_order_id)
    return refs


def _current_client_ids(p: Position) -> set[str]:
    """Client ids of the record's current attempts: an order under one is being settled
    (its acknowledgement may be lost), never a stray."""
    ids = {p.stop_client_id, p.entry_client_id, p.flatten_client_id}
    ids.add(client_id_for(p.position_id, ActionType.MOVE_STOP, attempt=p.stop_attempt))
    return ids | {p.tp_client_id(t.level) for t in p.tps}


def _needed_by(p: Position, order: Order) -> bool:
    """True when the open record `p` works through this order (its stop, a TP, its entry)."""
    if order.client_id in _current_client_ids(p):
        return True
    if order.venue_order_id == p.stop_order_id:
        return True
    if order.venue_order_id in {t.order_id for t in p.tps if not t.filled}:
        return True
    return order.client_id == p.entry_client_id and not p.entry_complete


def _sweep_own_orders(
    run: _Run,
    owners: Mapping[str, OrderOwner],
    orders: list[Order],
    reports: list[PositionReport],
) -> None:
    """Cancel our own orders that no open record needs (see the module docstring)."""
    held = {r.symbol for r in reports if r.size > 0}
    for o in orders:
        owner = owners.get(o.client_id or "")
        if owner is None or o.venue_order_id in run.claimed_orders:
            continue
        pid = owner.position_id or ""
        record = run.positions.get(pid)
        if record is not None and record.is_open:
            if _needed_by(record, o) or not record.is_protected:
                continue  # an unprotected record adopts its own stop instead (above)
            why = f"{o.type} {o.client_id} of an earlier attempt beside the working orders"
        elif record is not None or owner.closed:
            why = f"{o.type} {o.client_id} of closed record {pid}"
        elif o.symbol not in held:
            why = f"{o.type} {o.client_id} of no record, on a flat market"
        else:
            continue  # e.g. a kill-switch stop for a position the import adopts
        run.log(f"STRAY {o.symbol} order {o.venue_order_id}: {why}; cancelled")
        run.cancel(o, pid or o.client_id or o.venue_order_id, why)


def _log_foreign_orders(
    run: _Run, known: list[Position], orders: list[Order], owners: Mapping[str, OrderOwner]
) -> None:
    """Orders no record explains are logged and left alone (never cancel the not understood)."""
    refs = _our_order_refs([*known, *run.positions.values()])
    for o in orders:
        if (
            o.venue_order_id in refs
            or o.client_id in refs
            or (o.client_id or "") in owners
            or o.venue_order_id in run.claimed_orders
        ):
            continue
        run.log(
            f"UNKNOWN order {o.venue_order_id} ({o.type} {o.side} {o.size} {o.symbol}, "
            f"client id {o.client_id}): not ours; left alone, deferred"
        )
