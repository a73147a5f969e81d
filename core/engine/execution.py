"""Stages 6–7 and the kill switch as pure engine code: intents in, orders out, positions kept.

Everything here talks to an order venue (core.orders.OrderVenue) and a state repository
(core.engine.state.StateRepository) through their ports only, and takes time from the
cycle context and the venue's clock: the live cycle runs it on Kraken or a paper venue
with the DuckDB store, a backtest on the paper engine with in-memory state.

- `execute_stage`: resolve the log, apply new fills, open approved intents, protect
  every position, place missing take-profits.
- `reconcile_stage`: venue positions and orders against the records (core/reconcile.py),
  corrections executed; counts cycles without a working stop.
- `kill_switch`: on HALT, missing stops first, entries cancelled, every stop kept.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import polars as pl

from core.actions import Action, ActionType, MoveStop, client_id_for
from core.actions import Flatten as FlattenAction
from core.actions import PlaceStop as PlaceStopAction
from core.cycle import Clock, CycleContext
from core.engine.fills import FillBook
from core.engine.gateway import ExecutionReport, Gateway
from core.engine.state import StateRepository
from core.errors import VenueError, VenueRetryableError
from core.kill_switch import CancelOrder, Flatten, PlaceStop, plan_kill_switch
from core.market_book import MarketBook
from core.orders import OrderStatus, OrderVenue, PositionSide
from core.position_events import CloseRequested, PositionEvent, PositionGone, StopMissing
from core.positions import (
    Position,
    PositionError,
    PositionState,
    apply,
    count_unprotected,
    open_position,
    tp_backfill,
)
from core.protection import (
    CrossedStopAction,
    ProtectionRules,
    crossed,
    guard_stop,
    plan_protection,
    repriced_trigger,
)
from core.reconcile import ImportProtection, MarketGrid, reconcile
from core.tp_plan import min_tp_distance
from schemas.config import AppConfig
from schemas.execution import ExecutionConfig
from schemas.risk import RiskConfig

log = logging.getLogger("smc_trader.execution")
SUSPECTED_KEY = "reconcile.suspected_missing"
MAX_ROUNDS = 4  # ack -> event -> action chains are short (entry -> stop -> TPs)


@dataclass
class Stage:
    """One stage's order traffic: the gateway (send and journal) and the fills it reads."""

    gateway: Gateway
    fills: FillBook
    state: StateRepository
    ctx: CycleContext

    @classmethod
    def open(
        cls,
        venue: OrderVenue,
        state: StateRepository,
        ctx: CycleContext,
        clock: Clock,
        cfg: ExecutionConfig,
    ) -> Stage:
        reread = timedelta(hours=cfg.fill_reread_hours)
        gateway = Gateway(venue, state, ctx.cycle_id, clock, fill_reread=reread)
        book = FillBook(venue, state, ctx.cycle_id, clock, fill_reread=reread)
        return cls(gateway, book, state, ctx)

    @property
    def report(self) -> ExecutionReport:
        self.gateway.report.fills_applied = self.fills.applied
        return self.gateway.report

    def fill_events(self, positions: dict[str, Position]) -> list[PositionEvent]:
        return self.fills.fill_events(positions) + self.fills.ended_entry_events(
            positions, self.gateway.ended_entries
        )

    def save(self, positions: dict[str, Position], applied: list[PositionEvent]) -> None:
        self.fills.save_progress(positions, applied)


def apply_events(
    positions: dict[str, Position], events: list[PositionEvent], *, break_even_after_tp1: bool
) -> tuple[list[Action], list[PositionEvent]]:
    """Apply events to the positions in place; the actions they imply and the events applied.

    An event the machine refuses (a late duplicate, an event for a closed record) is
    logged and skipped: one confusing report never stops the others.
    """
    actions: list[Action] = []
    applied: list[PositionEvent] = []
    for event in events:
        position = positions.get(event.position_id)
        if position is None:
            log.warning(
                "event %s for unknown position %s: ignored", type(event).__name__, event.position_id
            )
            continue
        try:
            new, produced = apply(position, event, break_even_after_tp1=break_even_after_tp1)
        except PositionError as exc:
            log.warning("event %s refused for %s: %s", type(event).__name__, event.position_id, exc)
            continue
        positions[event.position_id] = new
        actions += produced
        applied.append(event)
    return actions, applied


# -- execution ----------------------------------------------------------------------------


def open_new(
    positions: dict[str, Position],
    intents: pl.DataFrame | Sequence[Mapping[str, Any]],
    markets: pl.DataFrame | MarketBook,
    cfg: ExecutionConfig,
    ctx: CycleContext,
) -> list[Action]:
    """A PENDING_ENTRY record and its PLACE_ENTRY per approved intent of a market we do not
    hold (one position per market; an intent already recorded is never opened twice).
    `intents`: an OrderIntents frame or its rows."""
    grids = MarketBook.of(markets).rows
    held = {p.symbol for p in positions.values() if p.is_open or p.state.value == "pending_entry"}
    actions: list[Action] = []
    rows = intents.iter_rows(named=True) if isinstance(intents, pl.DataFrame) else intents
    for row in rows:
        if row["status"] != "approved":
            continue
        pid = row["client_intent_id"]
        if pid in positions or row["symbol"] in held:
            continue
        grid = grids[row["symbol"]]
        position, entry = open_position(
            position_id=pid,
            symbol=row["symbol"],
            side=PositionSide(row["side"]),
            size=row["size"],
            stop_price=row["stop"],
            tp_prices=[row["tp1"], row["tp2"], row["tp3"]],
            tp_fractions=cfg.tp_fractions,
            tick_size=grid["tick_size"],
            lot_size=grid["lot_size"],
            opened_at=ctx.decision_time,
        )
        positions[pid] = position
        held.add(row["symbol"])
        actions.append(entry)
    return actions


def protection_rules(cfg: ExecutionConfig) -> ProtectionRules:
    return ProtectionRules(
        crossed_stop_action=CrossedStopAction(cfg.crossed_stop_action),
        crossed_stop_buffer_pct=cfg.crossed_stop_buffer_pct,
        stop_attempts_per_cycle=cfg.stop_attempts_per_cycle,
    )


def _guarded(
    positions: dict[str, Position],
    actions: list[Action],
    marks: Mapping[str, float],
    rules: ProtectionRules,
    sends: Counter[str],
) -> tuple[list[Action], list[PositionEvent]]:
    """Every stop action checked against the mark before it is sent (core/protection.py),
    and a refused stop's retries capped per cycle (the invariant monitor escalates)."""
    out: list[Action] = []
    applied: list[PositionEvent] = []
    for action in actions:
        p = positions.get(getattr(action, "position_id", "") or "")
        if p is None or not isinstance(action, PlaceStopAction | MoveStop):
            out.append(action)
            continue
        retry = isinstance(action, PlaceStopAction) and p.stop_rejections > 0
        if retry and sends[p.position_id] >= rules.stop_attempts_per_cycle:
            log.warning(
                "UNPROTECTED %s %s: %d stop(s) sent this cycle, last refused (%s); "
                "next attempt next cycle",
                p.symbol, p.position_id, sends[p.position_id], p.stop_problem,
            )
            continue
        guarded, sent = guard_stop(p, action, marks.get(p.symbol), rules)
        if guarded.state is PositionState.CLOSING and p.state is not PositionState.CLOSING:
            applied.append(CloseRequested(p.position_id, "stop through the mark"))
        positions[p.position_id] = guarded
        out += sent
    return out, applied


def _protection_round(
    stage: Stage,
    positions: dict[str, Position],
    marks: Mapping[str, float],
    rules: ProtectionRules,
) -> list[Action]:
    """The next attempt for every position whose stop was refused (capped per cycle)."""
    actions: list[Action] = []
    for pid, p in list(positions.items()):
        new, more = plan_protection(p, marks.get(p.symbol), rules, stage.gateway.stop_sends[pid])
        positions[pid] = new
        actions += more
    return actions


def drive(
    stage: Stage,
    positions: dict[str, Position],
    actions: list[Action],
    cfg: ExecutionConfig,
    marks: Mapping[str, float] | None = None,
) -> None:
    """Execute actions until the chain settles: ack -> event -> next action, fills included."""
    rules = protection_rules(cfg)
    marks = marks or {}
    actions = actions + _protection_round(stage, positions, marks, rules)
    for _ in range(MAX_ROUNDS):
        actions, applied = _guarded(positions, actions, marks, rules, stage.gateway.stop_sends)
        events: list[PositionEvent] = []
        for action in actions:
            events += stage.gateway.execute(action)
        events += stage.fill_events(positions)
        actions, more = apply_events(
            positions, events, break_even_after_tp1=cfg.break_even_after_tp1
        )
        applied += more
        actions += _protection_round(stage, positions, marks, rules)
        stage.save(positions, applied)
        if not actions and not events:
            return


def tp_backfill_actions(
    positions: dict[str, Position], marks: Mapping[str, float], risk: RiskConfig
) -> list[Action]:
    """PLACE_TP for every missing level of open positions, at this cycle's last price
    (no price for a market, no backfill there this cycle)."""
    actions: list[Action] = []
    for p in positions.values():
        mark = marks.get(p.symbol)
        if mark is None or not p.is_open:
            continue
        actions += tp_backfill(p, mark, p.tick_size, min_tp_distance(mark, risk))
    return actions


def execute_stage(
    ctx: CycleContext,
    venue: OrderVenue,
    state: StateRepository,
    clock: Clock,
    intents: pl.DataFrame | Sequence[Mapping[str, Any]],
    markets: pl.DataFrame | MarketBook,
    cfg: ExecutionConfig,
    risk: RiskConfig,
) -> ExecutionReport:
    """Resolve the log, apply new fills, open approved intents, protect every position,
    place any take-profit level a position misses (each level judged on its own).

    Raises VenueRetryableError after finishing everything else when some order's outcome
    is unknown: the retry resolves it by client id (never a second order)."""
    stage = Stage.open(venue, state, ctx, clock, cfg)
    positions = {p.position_id: p for p in state.live_positions()}
    events = stage.gateway.recover_lost_events(positions) + stage.gateway.resolve_unresolved()
    events += stage.fill_events(positions)
    actions, applied = apply_events(
        positions, events, break_even_after_tp1=cfg.break_even_after_tp1
    )
    book = MarketBook.of(markets)
    marks = book.marks
    actions += tp_backfill_actions(positions, marks, risk)
    actions += open_new(positions, intents, book, cfg, ctx)
    stage.save(positions, applied)
    drive(stage, positions, actions, cfg, marks)
    report = stage.report
    if report.unknown:
        raise VenueRetryableError(
            f"{report.unknown} order(s) with unknown outcome; the retry resolves them by client id"
        )
    return report


# -- reconciliation -----------------------------------------------------------------------


@dataclass
class ReconcileReport:
    open_positions: int
    imported: int
    actions: int
    log_lines: list[str]
    execution: ExecutionReport
    unprotected: int = 0  # open positions still without a working stop


def reconcile_stage(
    ctx: CycleContext,
    venue: OrderVenue,
    state: StateRepository,
    clock: Clock,
    markets: pl.DataFrame | MarketBook,
    cfg: ExecutionConfig,
    *,
    startup: bool,
    atr: Mapping[str, float] | None = None,
) -> ReconcileReport:
    """Venue positions and orders vs our records; corrections executed, never destructive.

    Ends by counting, per open record, the cycles it has gone without a working stop
    (the invariant monitor escalates a position left unprotected)."""
    book = MarketBook.of(markets)
    known = state.live_positions()
    previous = set(json.loads(state.get_value(SUSPECTED_KEY) or "[]"))
    protection = ImportProtection(
        stop_distance_pct=cfg.import_stop_distance_pct,
        atr_multiple=cfg.import_stop_atr_multiple,
        grids={s: MarketGrid(r["tick_size"], r["lot_size"]) for s, r in book.rows.items()},
        atr=atr or {},
    )
    result = reconcile(
        known,
        venue.positions(),
        venue.open_orders(),
        startup=startup,
        previously_missing=previous,
        protection=protection,
        now=ctx.decision_time,
        owners=state.order_owners(),
    )
    for line in result.log_lines:
        log.warning(line)
    positions = {p.position_id: p for p in result.positions}
    events = [_with_exit(venue, positions, e) for e in result.events]
    stage = Stage.open(venue, state, ctx, clock, cfg)
    at = ctx.decision_time
    state.save_positions(list(positions.values()), at)
    state.record_events(events, ctx.cycle_id, at)
    state.set_value(SUSPECTED_KEY, json.dumps(sorted(result.suspected_missing)))
    drive(stage, positions, list(result.actions), cfg, book.marks)
    counted = [count_unprotected(p) for p in positions.values()]
    state.save_positions([p for p in counted if p.is_open], at)
    open_now = [p for p in counted if p.is_open]
    return ReconcileReport(
        open_positions=len(open_now),
        imported=sum(1 for a in result.actions if a.action_type.value == "import_position"),
        actions=len(result.actions),
        log_lines=list(result.log_lines),
        execution=stage.report,
        unprotected=sum(1 for p in open_now if not p.is_protected),
    )


def _with_exit(
    venue: OrderVenue, positions: dict[str, Position], event: PositionEvent
) -> PositionEvent:
    """A record closed as ORPHAN had an exit the fills never showed (e.g. older than the
    fill look-back): ask the venue how it ended, and say so in the record, never silently."""
    if not isinstance(event, PositionGone):
        return event
    p = positions.get(event.position_id)
    if p is None:
        return event
    note, pnl = exit_evidence(venue, p)
    log.warning("ORPHAN %s %s: exit %s", p.symbol, p.position_id, note)
    reason = f"{event.reason}; exit {note}"
    positions[p.position_id] = replace(p, close_reason=reason, realised_pnl=pnl)
    return PositionGone(event.position_id, reason, pnl)


def exit_evidence(venue: OrderVenue, p: Position) -> tuple[str, float | None]:
    """How a vanished position most likely exited: one of its own exit orders found filled
    by client id, else the venue's realised PnL for the market since it opened (when the
    venue reports it), else 'unknown'."""
    ids = [p.stop_client_id, *(p.tp_client_id(t.level) for t in p.tps if t.price is not None)]
    if p.stop_attempt > 0:
        ids.append(client_id_for(p.position_id, ActionType.PLACE_STOP, attempt=p.stop_attempt - 1))
    for cid in ids:
        try:
            order = venue.order_by_client_id(cid)
        except VenueError as exc:
            log.warning("%s: exit lookup %s failed: %s", p.position_id, cid, exc)
            continue
        if order is not None and order.status is OrderStatus.FILLED:
            return f"found: {order.type} {cid} filled {order.filled} (venue order status)", None
    book = getattr(venue, "realised_pnl", None)  # the account log, where offered
    if book is not None:
        try:
            entries = book(p.symbol, p.opened_at)
        except VenueError as exc:
            log.warning("%s: account log lookup failed: %s", p.position_id, exc)
            entries = []
        if entries:
            pnl = round(sum(e.realised_pnl - e.fee for e in entries), 8)
            closed = [e for e in entries if e.closed_position]
            where = (
                f"closed at {closed[-1].price} on {closed[-1].ts:%Y-%m-%d %H:%M}"
                if closed
                else "close not seen"
            )
            return f"from the account log: {where}; realised PnL after fees {pnl:.2f}", pnl
    return "unknown (not in fills, no order found by client id, no account log)", None


# -- kill switch --------------------------------------------------------------------------


def _through_machine(
    stage: Stage,
    owner: Position,
    event: PositionEvent,
    config: AppConfig,
    marks: Mapping[str, float],
) -> None:
    positions = {owner.position_id: owner}
    actions, applied = apply_events(
        positions, [event], break_even_after_tp1=config.execution.break_even_after_tp1
    )
    stage.state.save_positions(list(positions.values()), stage.ctx.decision_time)
    stage.state.record_events(applied, stage.ctx.cycle_id, stage.ctx.decision_time)
    drive(stage, positions, actions, config.execution, marks)


def _protect_now(
    stage: Stage,
    known: dict[str, Position],
    step: PlaceStop,
    config: AppConfig,
    marks: Mapping[str, float],
) -> None:
    """Place the missing stop. Through the position machine when we hold a record, so the
    record names the new stop and reconciliation recognises it as ours."""
    owner = known.get(step.symbol)
    if owner is None:
        # Not ours (reconciliation imports it next cycle, adopting this stop); protect it now.
        pid = f"ks-{step.symbol}"
        action = PlaceStopAction(
            pid,
            step.symbol,
            step.side,
            step.size,
            step.trigger_price,
            client_id_for(pid, ActionType.PLACE_STOP, attempt=stage.ctx.cycle_id),
        )
        stage.gateway.execute(action)
        return
    event = StopMissing(owner.position_id, "kill switch: no working stop")
    _through_machine(stage, owner, event, config, marks)


def _kill_switch_stop(p: Position, mark: float | None, cfg: ExecutionConfig) -> float:
    """The record's stop, or a valid one beyond the mark when it is already through it."""
    if crossed(p.side, p.stop_price, mark, p.tick_size) and mark is not None:
        return repriced_trigger(p.side, mark, cfg.crossed_stop_buffer_pct, p.tick_size)
    return p.stop_price


def kill_switch(
    ctx: CycleContext,
    venue: OrderVenue,
    state: StateRepository,
    clock: Clock,
    config: AppConfig,
) -> list[str]:
    """On HALT: place any missing stop first, cancel entries (TPs if configured), keep stops.
    Returns the plan's lines (each step, each order kept, anything left unprotected)."""
    known = {p.symbol: p for p in state.live_positions() if p.is_open}
    venue_positions = venue.positions()
    marks = {v.symbol: v.mark_price for v in venue_positions if v.mark_price}
    plan = plan_kill_switch(
        venue_positions,
        venue.open_orders(),
        config.safety,
        {s: _kill_switch_stop(p, marks.get(s), config.execution) for s, p in known.items()},
    )
    stage = Stage.open(venue, state, ctx, clock, config.execution)
    for step in plan.steps:
        if isinstance(step, PlaceStop):
            _protect_now(stage, known, step, config, marks)
        elif isinstance(step, CancelOrder):
            try:
                if venue.cancel(step.venue_order_id) is not None:
                    stage.gateway.report.cancelled += 1
            except VenueError as exc:
                log.warning("kill switch: cancel %s deferred: %s", step.venue_order_id, exc)
        elif isinstance(step, Flatten):
            owner = known.get(step.symbol)
            reason = "kill switch flatten (configured)"
            if owner is not None:
                _through_machine(stage, owner, CloseRequested(owner.position_id, reason), config,
                                 marks)
            else:
                stage.gateway.execute(FlattenAction(step.symbol, reason))
    lines = plan.lines()
    for line in lines:
        # "Kill switch active" is logged once per cycle by the state check; each step here
        # at WARNING, each order kept at INFO.
        level = logging.INFO if line.startswith("KEEP") else logging.WARNING
        log.log(level, "kill switch: %s", line)
    return lines
