"""Stages 6–7 and the kill switch: execute intents, manage positions, reconcile with the venue.

The order venue is paper (sim, replay) or Kraken through ccxt. A paper account
lives in memory, so it is saved to the store after every stage and restored at
the next one: each Prefect flow run may be a fresh process.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections import Counter
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from core.actions import Action, ActionType, MoveStop, client_id_for
from core.actions import PlaceStop as PlaceStopAction
from core.cycle import CycleContext
from core.errors import LiveTradingNotAllowedError, VenueError, VenueRetryableError
from core.invariants import AccountSnapshot, PositionExposure
from core.kill_switch import CancelOrder, Flatten, PlaceStop, plan_kill_switch
from core.orders import OrderStatus, OrderVenue, PositionSide
from core.position_events import CloseRequested, PositionEvent, PositionGone, StopMissing
from core.positions import Position, PositionState, count_unprotected, open_position, tp_backfill
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
from schemas.config import AppConfig, Secrets, VenueKind
from schemas.execution import ExecutionConfig
from schemas.risk import RiskConfig
from store import execution as ex
from store.cycles import last_markets
from store.db import open_store
from tasks.gateway import ExecutionReport, Gateway, apply_events
from tasks.retry import retry_on_transient_venue_errors
from venues.base import MarketDataVenue

if TYPE_CHECKING:
    from venues.paper import FundingSchedule

log = logging.getLogger("smc_trader.execution")
SUSPECTED_KEY = "reconcile.suspected_missing"


# -- the order venue ----------------------------------------------------------------------


def make_order_venue(
    config: AppConfig,
    feed: MarketDataVenue,
    db_path: Path,
    secrets: Secrets,
    *,
    live: bool,
    paper: bool = False,
) -> OrderVenue:
    """Paper on sim/replay and on kraken with `paper` (restored from the store); Kraken
    orders only when explicitly allowed (--live, --sandbox or a loopback simulator)."""
    if live and paper:
        raise LiveTradingNotAllowedError("live and paper contradict each other: choose one")
    if config.venue.kind is VenueKind.KRAKEN and not paper:
        return _kraken_orders(config, feed, secrets, live=live)
    if live:
        raise LiveTradingNotAllowedError(
            f"--live given with venue {config.venue.kind}: live orders exist only on kraken"
        )
    from venues.paper import FeedDriver, PaperConfig, PaperEngine, PaperOrderVenue

    with open_store(db_path) as con:
        blob = ex.load_venue_state(con, feed.name)
    if blob is None:
        cfg = config.execution
        paper = PaperConfig(
            maker_fee=cfg.maker_fee,
            taker_fee=cfg.taker_fee,
            slippage_bps=cfg.slippage_bps,
            initial_cash=cfg.paper_initial_cash,
            default_leverage=config.risk.default_leverage,
        )
        return PaperOrderVenue.on_feed(feed, paper, timeframe="1h", funding=_funding(feed))
    engine, done_until = pickle.loads(blob)
    if not isinstance(engine, PaperEngine):
        raise TypeError(f"stored paper state for {feed.name} is not a PaperEngine")
    for market in feed.markets():
        engine.add_market(market)
    driver = FeedDriver(engine, feed, "1h", funding=_funding(feed))
    driver.resume(done_until)
    return PaperOrderVenue(engine, feed.clock, driver)


def _funding(feed: MarketDataVenue) -> FundingSchedule | None:
    """Replay data carries funding rates (every 8 h in the Binance files): paid and received
    by the paper account as they fall due. The sim market has none."""
    data_dir = getattr(feed, "data_dir", None)
    if data_dir is None:
        return None
    from venues.paper import FundingSchedule

    return FundingSchedule.from_binance_dir(
        data_dir, {m.symbol: m.base for m in getattr(feed, "all_markets", feed.markets)()}
    )


def _kraken_orders(
    config: AppConfig, feed: MarketDataVenue, secrets: Secrets, *, live: bool
) -> OrderVenue:
    from venues.kraken_orders import KrakenOrderVenue, require_explicit_mode

    require_explicit_mode(
        live=live,
        sandbox=config.venue.sandbox,
        api_url=config.venue.api_url,
        has_credentials=secrets.has_kraken,
    )
    exchange = getattr(feed, "exchange", None)
    if exchange is None:
        raise TypeError("the kraken order venue needs the kraken market-data venue")
    return KrakenOrderVenue(exchange, clock=feed.clock)


@task(name="open_order_venue", cache_policy=NO_CACHE)
def open_order_venue(
    config: AppConfig,
    feed: MarketDataVenue,
    db_path: Path,
    secrets: Secrets,
    *,
    live: bool,
    paper: bool = False,
) -> OrderVenue:
    """The cycle's order venue (see make_order_venue): paper restored, or Kraken."""
    return make_order_venue(config, feed, db_path, secrets, live=live, paper=paper)


@task(name="save_order_venue", cache_policy=NO_CACHE)
def save_order_venue_task(order_venue: OrderVenue, feed: MarketDataVenue, db_path: Path) -> None:
    save_order_venue(order_venue, feed, db_path)


def placed_this_cycle(ctx: CycleContext) -> int:
    """Orders placed in this cycle, counted in the log (a retried stage's first try too)."""
    with open_store(ctx.db_path) as con:
        return ex.orders_placed(con, ctx.cycle_id)


def known_markets(ctx: CycleContext) -> pl.DataFrame | None:
    """The registry as the last cycle saw it (grids, last prices): what positions are
    managed with when this cycle's market discovery failed."""
    with open_store(ctx.db_path) as con:
        return last_markets(con, ctx.venue)


def save_order_venue(order_venue: OrderVenue, feed: MarketDataVenue, db_path: Path) -> None:
    """Persist a paper account so the next flow run (maybe a new process) continues it."""
    engine = getattr(order_venue, "engine", None)
    driver = getattr(order_venue, "driver", None)
    if engine is None or driver is None:
        return
    with open_store(db_path) as con:
        ex.save_venue_state(con, feed.name, pickle.dumps((engine, driver.done_until)))


# -- the account --------------------------------------------------------------------------


def account_snapshot(
    order_venue: OrderVenue, markets: pl.DataFrame, ctx: CycleContext
) -> AccountSnapshot:
    """Equity, margin and exposures as the venue reports them (high-water filled in later)."""
    balance = order_venue.balance()
    contract = dict(zip(markets["symbol"], markets["contract_size"], strict=True))
    exposures = tuple(
        PositionExposure(
            p.symbol, p.size * contract.get(p.symbol, 1.0) * (p.mark_price or p.entry_price)
        )
        for p in order_venue.positions()
        if p.size > 0
    )
    return AccountSnapshot(balance.equity, balance.margin_used, 0.0, exposures, ctx.decision_time)


# -- execution ----------------------------------------------------------------------------


def _open_new(
    positions: dict[str, Position],
    intents: pl.DataFrame,
    markets: pl.DataFrame,
    cfg: ExecutionConfig,
    ctx: CycleContext,
) -> list:
    grids = {r["symbol"]: r for r in markets.iter_rows(named=True)}
    held = {p.symbol for p in positions.values() if p.is_open or p.state.value == "pending_entry"}
    actions = []
    approved = intents.filter(pl.col("status") == "approved") if intents.height else intents
    for row in approved.iter_rows(named=True):
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


def marks_of(markets: pl.DataFrame) -> dict[str, float]:
    """This cycle's last price per market (what stops and TPs are checked against)."""
    if "last" not in markets.columns:
        return {}
    return {
        s: float(v)
        for s, v in zip(markets["symbol"], markets["last"], strict=True)
        if v is not None
    }


def _guarded(
    positions: dict[str, Position],
    actions: list[Action],
    marks: dict[str, float],
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
    gw: Gateway, positions: dict[str, Position], marks: dict[str, float], rules: ProtectionRules
) -> list[Action]:
    """The next attempt for every position whose stop was refused (capped per cycle)."""
    actions: list[Action] = []
    for pid, p in list(positions.items()):
        new, more = plan_protection(p, marks.get(p.symbol), rules, gw.stop_sends[pid])
        positions[pid] = new
        actions += more
    return actions


def _drive(
    gw: Gateway,
    positions: dict[str, Position],
    actions: list,
    cfg: ExecutionConfig,
    ctx: CycleContext,
    marks: dict[str, float] | None = None,
) -> None:
    """Execute actions until the chain settles: ack -> event -> next action, fills included."""
    rules = protection_rules(cfg)
    marks = marks or {}
    actions = actions + _protection_round(gw, positions, marks, rules)
    for _ in range(4):
        actions, applied = _guarded(positions, actions, marks, rules, gw.stop_sends)
        events = []
        for action in actions:
            events += gw.execute(action)
        events += gw.fill_events(positions)
        events += gw.ended_entry_events(positions)
        actions, more = apply_events(
            positions, events, break_even_after_tp1=cfg.break_even_after_tp1
        )
        applied += more
        actions += _protection_round(gw, positions, marks, rules)
        gw.save_progress(positions, applied)
        if not actions and not events:
            return


def _gateway(order_venue: OrderVenue, ctx: CycleContext, cfg: ExecutionConfig) -> Gateway:
    return Gateway(
        order_venue,
        ctx.db_path,
        ctx.cycle_id,
        _clock_of(order_venue),
        fill_reread=timedelta(hours=cfg.fill_reread_hours),
    )


def execute(
    ctx: CycleContext,
    order_venue: OrderVenue,
    intents: pl.DataFrame,
    markets: pl.DataFrame,
    cfg: ExecutionConfig,
    risk: RiskConfig | None = None,
) -> ExecutionReport:
    """Resolve the log, apply new fills, open approved intents, protect every position,
    place any take-profit level a position misses (each level judged on its own).

    Raises VenueRetryableError after finishing everything else when some order's outcome
    is unknown: the retry resolves it by client id (never a second order)."""
    with _gateway(order_venue, ctx, cfg) as gw:
        with gw.store() as con:
            positions = {p.position_id: p for p in ex.live_positions(con)}
        events = gw.recover_lost_events(positions) + gw.resolve_unresolved()
        events += gw.fill_events(positions)
        events += gw.ended_entry_events(positions)
        actions, applied = apply_events(
            positions, events, break_even_after_tp1=cfg.break_even_after_tp1
        )
        actions += _tp_backfill(positions, markets, risk or RiskConfig())
        actions += _open_new(positions, intents, markets, cfg, ctx)
        gw.save_progress(positions, applied)
        _drive(gw, positions, actions, cfg, ctx, marks_of(markets))
    if gw.report.unknown:
        raise VenueRetryableError(
            f"{gw.report.unknown} order(s) with unknown outcome; "
            "the retry resolves them by client id"
        )
    return gw.report


def _tp_backfill(
    positions: dict[str, Position], markets: pl.DataFrame, risk: RiskConfig
) -> list[Action]:
    """PLACE_TP for every missing level of open positions, at this cycle's last price
    (no price for a market, no backfill there this cycle)."""
    last = dict(zip(markets["symbol"], markets["last"], strict=True)) if "last" in markets else {}
    actions: list[Action] = []
    for p in positions.values():
        mark = last.get(p.symbol)
        if mark is None or not p.is_open:
            continue
        actions += tp_backfill(p, mark, p.tick_size, min_tp_distance(mark, risk))
    return actions


def _clock_of(order_venue: OrderVenue):  # type: ignore[no-untyped-def]
    clock = getattr(order_venue, "clock", None)
    if clock is None:
        from venues.base import WallClock

        return WallClock()
    return clock


@task(
    name="execute",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=retry_on_transient_venue_errors,
    cache_policy=NO_CACHE,
)
def execute_task(
    ctx: CycleContext,
    order_venue: OrderVenue,
    intents: pl.DataFrame,
    markets: pl.DataFrame,
    cfg: ExecutionConfig,
    risk: RiskConfig | None = None,
) -> ExecutionReport:
    # Safe to retry: every order has a client id and the log is resolved first.
    return execute(ctx, order_venue, intents, markets, cfg, risk)


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
    order_venue: OrderVenue,
    markets: pl.DataFrame,
    cfg: ExecutionConfig,
    *,
    startup: bool,
    atr: dict[str, float] | None = None,
) -> ReconcileReport:
    """Venue positions and orders vs our records; corrections executed, never destructive.

    Ends by counting, per open record, the cycles it has gone without a working stop
    (the invariant monitor escalates a position left unprotected)."""
    with open_store(ctx.db_path) as con:
        known = ex.live_positions(con)
        previous = set(json.loads(ex.get_value(con, SUSPECTED_KEY) or "[]"))
        owners = ex.order_owners(con)
    protection = ImportProtection(
        stop_distance_pct=cfg.import_stop_distance_pct,
        atr_multiple=cfg.import_stop_atr_multiple,
        grids={
            r["symbol"]: MarketGrid(r["tick_size"], r["lot_size"])
            for r in markets.iter_rows(named=True)
        },
        atr=atr or {},
    )
    venue_positions = order_venue.positions()
    open_orders = order_venue.open_orders()
    result = reconcile(
        known,
        venue_positions,
        open_orders,
        startup=startup,
        previously_missing=previous,
        protection=protection,
        now=ctx.decision_time,
        owners=owners,
    )
    for line in result.log_lines:
        log.warning(line)
    positions = {p.position_id: p for p in result.positions}
    events = [_with_exit(order_venue, positions, e) for e in result.events]
    with _gateway(order_venue, ctx, cfg) as gw:
        with gw.store() as con:
            ex.save_positions(con, list(positions.values()))
            ex.record_events(con, events, ctx.cycle_id)
            ex.set_value(con, SUSPECTED_KEY, json.dumps(sorted(result.suspected_missing)))
        _drive(gw, positions, list(result.actions), cfg, ctx, marks_of(markets))
        counted = [count_unprotected(p) for p in positions.values()]
        with gw.store() as con:
            ex.save_positions(con, [p for p in counted if p.is_open])
    open_now = [p for p in counted if p.is_open]
    return ReconcileReport(
        open_positions=len(open_now),
        imported=sum(1 for a in result.actions if a.action_type.value == "import_position"),
        actions=len(result.actions),
        log_lines=list(result.log_lines),
        execution=gw.report,
        unprotected=sum(1 for p in open_now if not p.is_protected),
    )


def _with_exit(
    order_venue: OrderVenue, positions: dict[str, Position], event: PositionEvent
) -> PositionEvent:
    """A record closed as ORPHAN had an exit the fills never showed (e.g. older than the
    fill look-back): ask the venue how it ended, and say so in the record, never silently."""
    if not isinstance(event, PositionGone):
        return event
    p = positions.get(event.position_id)
    if p is None:
        return event
    note, pnl = exit_evidence(order_venue, p)
    log.warning("ORPHAN %s %s: exit %s", p.symbol, p.position_id, note)
    reason = f"{event.reason}; exit {note}"
    positions[p.position_id] = replace(p, close_reason=reason, realised_pnl=pnl)
    return PositionGone(event.position_id, reason, pnl)


def exit_evidence(order_venue: OrderVenue, p: Position) -> tuple[str, float | None]:
    """How a vanished position most likely exited: one of its own exit orders found filled
    by client id, else the venue's realised PnL for the market since it opened (when the
    venue reports it), else 'unknown'."""
    ids = [p.stop_client_id, *(p.tp_client_id(t.level) for t in p.tps if t.price is not None)]
    if p.stop_attempt > 0:
        ids.append(client_id_for(p.position_id, ActionType.PLACE_STOP, attempt=p.stop_attempt - 1))
    for cid in ids:
        try:
            order = order_venue.order_by_client_id(cid)
        except VenueError as exc:
            log.warning("%s: exit lookup %s failed: %s", p.position_id, cid, exc)
            continue
        if order is not None and order.status is OrderStatus.FILLED:
            return f"found: {order.type} {cid} filled {order.filled} (venue order status)", None
    book = getattr(order_venue, "realised_pnl", None)  # the account log, where offered
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


@task(name="reconcile", cache_policy=NO_CACHE)
def reconcile_task(
    ctx: CycleContext,
    order_venue: OrderVenue,
    markets: pl.DataFrame,
    cfg: ExecutionConfig,
    startup: bool,
) -> ReconcileReport:
    return reconcile_stage(ctx, order_venue, markets, cfg, startup=startup)


# -- kill switch --------------------------------------------------------------------------


def _protect_now(
    gw: Gateway,
    ctx: CycleContext,
    known: dict[str, Position],
    step: PlaceStop,
    config: AppConfig,
    marks: dict[str, float],
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
            client_id_for(pid, ActionType.PLACE_STOP, attempt=ctx.cycle_id),
        )
        gw.execute(action)
        return
    _through_machine(
        gw, ctx, owner, StopMissing(owner.position_id, "kill switch: no working stop"), config,
        marks,
    )


def _through_machine(
    gw: Gateway,
    ctx: CycleContext,
    owner: Position,
    event: PositionEvent,
    config: AppConfig,
    marks: dict[str, float],
) -> None:
    positions = {owner.position_id: owner}
    actions, applied = apply_events(
        positions, [event], break_even_after_tp1=config.execution.break_even_after_tp1
    )
    with gw.store() as con:
        ex.save_positions(con, list(positions.values()))
        ex.record_events(con, applied, ctx.cycle_id)
    _drive(gw, positions, actions, config.execution, ctx, marks)


def _kill_switch_stop(p: Position, mark: float | None, cfg: ExecutionConfig) -> float:
    """The record's stop, or a valid one beyond the mark when it is already through it."""
    if crossed(p.side, p.stop_price, mark, p.tick_size) and mark is not None:
        return repriced_trigger(p.side, mark, cfg.crossed_stop_buffer_pct, p.tick_size)
    return p.stop_price


def run_kill_switch(ctx: CycleContext, order_venue: OrderVenue, config: AppConfig) -> list[str]:
    """On HALT: place any missing stop first, cancel entries (TPs if configured), keep stops."""
    with open_store(ctx.db_path) as con:
        known = {p.symbol: p for p in ex.live_positions(con) if p.is_open}
    venue_positions = order_venue.positions()
    marks = {v.symbol: v.mark_price for v in venue_positions if v.mark_price}
    plan = plan_kill_switch(
        venue_positions,
        order_venue.open_orders(),
        config.safety,
        {s: _kill_switch_stop(p, marks.get(s), config.execution) for s, p in known.items()},
    )
    with _gateway(order_venue, ctx, config.execution) as gw:
        for step in plan.steps:
            if isinstance(step, PlaceStop):
                _protect_now(gw, ctx, known, step, config, marks)
            elif isinstance(step, CancelOrder):
                try:
                    if order_venue.cancel(step.venue_order_id) is not None:
                        gw.report.cancelled += 1
                except VenueError as exc:
                    log.warning("kill switch: cancel %s deferred: %s", step.venue_order_id, exc)
            elif isinstance(step, Flatten):
                owner = known.get(step.symbol)
                reason = "kill switch flatten (configured)"
                if owner is not None:
                    event = CloseRequested(owner.position_id, reason)
                    _through_machine(gw, ctx, owner, event, config, marks)
                else:
                    from core.actions import Flatten as FlattenAction

                    gw.execute(FlattenAction(step.symbol, reason))
    lines = plan.lines()
    for line in lines:
        log.error("Kill switch active: %s", line)
    return lines


@task(name="kill_switch", cache_policy=NO_CACHE)
def kill_switch_task(ctx: CycleContext, order_venue: OrderVenue, config: AppConfig) -> list[str]:
    """The kill switch as its own task run: visible in the cycle's graph when it fires."""
    return run_kill_switch(ctx, order_venue, config)


__all__ = [
    "ReconcileReport",
    "account_snapshot",
    "execute",
    "execute_task",
    "make_order_venue",
    "reconcile_stage",
    "reconcile_task",
    "run_kill_switch",
    "save_order_venue",
]
