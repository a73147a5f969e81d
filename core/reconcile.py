"""Reconciliation as a function: the venue's positions and open orders in, corrections out.

Run every cycle and at start-up (SPEC §7: sync with the exchange, then take
over). The rules, each of which exists because of a real outage:

- PHANTOM (the venue holds a position we do not know): logged, imported, and
  protected: an existing reduce-only stop at the venue is adopted, otherwise a
  PLACE_STOP at a configured distance. Never closed.
- ORPHAN (our open record, nothing at the venue): the first sighting only marks
  it suspected; a second consecutive sighting closes the record. Never an
  exchange action.
- A known position whose stop is not working at the venue gets its stop back
  (our own lost stop is adopted by client id; otherwise PLACE_STOP).
- Anything else not understood (side or size mismatch, several records or
  reports for one market, a foreign order) is logged `UNKNOWN ... deferred`
  and left as it is.

Nothing here emits FLATTEN or CANCEL: the bot never destroys what it is
unsure about. Corrections to known positions go through the position
machine (`apply`), so their actions are the machine's own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from core.actions import Action, ActionType, ImportPosition, PlaceStop, client_id_for
from core.orders import Order, OrderStatus, OrderType, PositionReport, PositionSide
from core.positions import (
    OPEN_STATES,
    TERMINAL_STATES,
    EntryFilled,
    EntryPartiallyFilled,
    Position,
    PositionError,
    PositionEvent,
    PositionGone,
    PositionState,
    StopMissing,
    StopPlaced,
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
) -> ReconcileResult:
    """Compare the bot's positions with the venue's and return the corrections.

    `venue_open_orders` must be the venue's complete list of open orders.
    `previously_missing` holds the ids found missing by the previous call; at
    start-up it is ignored, because a record is closed only on two sightings
    made with fresh eyes. `now` stamps imported positions. Refuses only a naive
    `now`; whatever else it does not understand is logged and deferred. Never
    emits FLATTEN or CANCEL.
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
    _log_foreign_orders(run, known, open_orders)
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
        run.log(
            f"UNKNOWN {p.symbol} {p.position_id}: side mismatch (ours {p.side}, venue "
            f"{report.side}); deferred"
        )
        return
    if abs(report.size - p.size) >= p.lot_size / 2:
        run.log(
            f"UNKNOWN {p.symbol} {p.position_id}: size mismatch (ours {p.size}, venue "
            f"{report.size}); deferred"
        )
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


def _log_foreign_orders(run: _Run, known: list[Position], orders: list[Order]) -> None:
    """Orders no record explains are logged and left alone (never cancel the not understood)."""
    refs = _our_order_refs([*known, *run.positions.values()])
    for o in orders:
        if (
            o.venue_order_id in refs
            or o.client_id in refs
            or o.venue_order_id in run.claimed_orders
        ):
            continue
        run.log(
            f"UNKNOWN order {o.venue_order_id} ({o.type} {o.side} {o.size} {o.symbol}, "
            f"client id {o.client_id}): not ours; left alone, deferred"
        )
