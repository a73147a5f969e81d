"""Stages 6–7 and the kill switch: execute intents, manage positions, reconcile with the venue.

The order venue is paper (sim, replay) or Kraken through ccxt. A paper account
lives in memory, so it is saved to the store after every stage and restored at
the next one: each Prefect flow run may be a fresh process.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from core.actions import Action
from core.actions import PlaceStop as PlaceStopAction
from core.cycle import CycleContext
from core.errors import LiveTradingNotAllowedError, VenueRetryableError
from core.invariants import AccountSnapshot, PositionExposure
from core.kill_switch import CancelOrder, Flatten, PlaceStop, plan_kill_switch
from core.orders import OrderVenue, PositionSide
from core.positions import Position, StopMissing, open_position, tp_backfill
from core.reconcile import ImportProtection, MarketGrid, reconcile
from core.tp_plan import min_tp_distance
from schemas.config import AppConfig, Secrets, VenueKind
from schemas.execution import ExecutionConfig
from schemas.risk import RiskConfig
from store import execution as ex
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


def _drive(
    gw: Gateway,
    positions: dict[str, Position],
    actions: list,
    cfg: ExecutionConfig,
    ctx: CycleContext,
) -> None:
    """Execute actions until the chain settles: ack -> event -> next action, fills included."""
    for _ in range(4):
        events = []
        for action in actions:
            events += gw.execute(action)
        events += gw.fill_events(positions)
        actions, applied = apply_events(
            positions, events, break_even_after_tp1=cfg.break_even_after_tp1
        )
        gw.save_progress(positions, applied)
        if not actions and not events:
            return


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
    with Gateway(order_venue, ctx.db_path, ctx.cycle_id, _clock_of(order_venue)) as gw:
        with gw.store() as con:
            positions = {p.position_id: p for p in ex.live_positions(con)}
        events = gw.recover_lost_events(positions) + gw.resolve_unresolved()
        events += gw.fill_events(positions)
        actions, applied = apply_events(
            positions, events, break_even_after_tp1=cfg.break_even_after_tp1
        )
        actions += _tp_backfill(positions, markets, risk or RiskConfig())
        actions += _open_new(positions, intents, markets, cfg, ctx)
        gw.save_progress(positions, applied)
        _drive(gw, positions, actions, cfg, ctx)
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


def reconcile_stage(
    ctx: CycleContext,
    order_venue: OrderVenue,
    markets: pl.DataFrame,
    cfg: ExecutionConfig,
    *,
    startup: bool,
    atr: dict[str, float] | None = None,
) -> ReconcileReport:
    """Venue positions and orders vs our records; corrections executed, never destructive."""
    with open_store(ctx.db_path) as con:
        known = ex.live_positions(con)
        previous = set(json.loads(ex.get_value(con, SUSPECTED_KEY) or "[]"))
    protection = ImportProtection(
        stop_distance_pct=cfg.import_stop_distance_pct,
        atr_multiple=cfg.import_stop_atr_multiple,
        grids={
            r["symbol"]: MarketGrid(r["tick_size"], r["lot_size"])
            for r in markets.iter_rows(named=True)
        },
        atr=atr or {},
    )
    result = reconcile(
        known,
        order_venue.positions(),
        order_venue.open_orders(),
        startup=startup,
        previously_missing=previous,
        protection=protection,
        now=ctx.decision_time,
    )
    for line in result.log_lines:
        log.warning(line)
    positions = {p.position_id: p for p in result.positions}
    with Gateway(order_venue, ctx.db_path, ctx.cycle_id, _clock_of(order_venue)) as gw:
        with gw.store() as con:
            ex.save_positions(con, list(positions.values()))
            ex.record_events(con, list(result.events), ctx.cycle_id)
            ex.set_value(con, SUSPECTED_KEY, json.dumps(sorted(result.suspected_missing)))
        _drive(gw, positions, list(result.actions), cfg, ctx)
    open_now = [p for p in positions.values() if p.is_open]
    return ReconcileReport(
        open_positions=len(open_now),
        imported=sum(1 for a in result.actions if a.action_type.value == "import_position"),
        actions=len(result.actions),
        log_lines=list(result.log_lines),
        execution=gw.report,
    )


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
) -> None:
    """Place the missing stop. Through the position machine when we hold a record, so the
    record names the new stop and reconciliation recognises it as ours."""
    owner = known.get(step.symbol)
    if owner is None:
        # Not ours (reconciliation imports it next cycle); protect it all the same.
        action = PlaceStopAction(
            f"ks-{step.symbol}",
            step.symbol,
            step.side,
            step.size,
            step.trigger_price,
            f"ks-{ctx.cycle_id}-{step.symbol}"[:100],
        )
        gw.execute(action)
        return
    positions = {owner.position_id: owner}
    missing = StopMissing(owner.position_id, "kill switch: no working stop at the venue")
    actions, applied = apply_events(
        positions, [missing], break_even_after_tp1=config.execution.break_even_after_tp1
    )
    with gw.store() as con:
        ex.save_positions(con, list(positions.values()))
        ex.record_events(con, applied, ctx.cycle_id)
    _drive(gw, positions, actions, config.execution, ctx)


def run_kill_switch(ctx: CycleContext, order_venue: OrderVenue, config: AppConfig) -> list[str]:
    """On HALT: place any missing stop first, cancel entries (TPs if configured), keep stops."""
    with open_store(ctx.db_path) as con:
        known = {p.symbol: p for p in ex.live_positions(con) if p.is_open}
    plan = plan_kill_switch(
        order_venue.positions(),
        order_venue.open_orders(),
        config.safety,
        {s: p.stop_price for s, p in known.items()},
    )
    with Gateway(order_venue, ctx.db_path, ctx.cycle_id, _clock_of(order_venue)) as gw:
        for step in plan.steps:
            if isinstance(step, PlaceStop):
                _protect_now(gw, ctx, known, step, config)
            elif isinstance(step, CancelOrder):
                try:
                    if order_venue.cancel(step.venue_order_id) is not None:
                        gw.report.cancelled += 1
                except VenueRetryableError as exc:
                    log.warning("kill switch: cancel %s deferred: %s", step.venue_order_id, exc)
            elif isinstance(step, Flatten):
                from core.actions import Flatten as FlattenAction

                gw.execute(FlattenAction(step.symbol, "kill switch flatten (configured)"))
    lines = plan.lines()
    for line in lines:
        # "Kill switch active" is logged once per cycle by the state check (tasks/safety.py);
        # each step here at WARNING, each order kept at INFO (issue 12).
        level = logging.INFO if line.startswith("KEEP") else logging.WARNING
        log.log(level, "kill switch: %s", line)
    return lines


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
