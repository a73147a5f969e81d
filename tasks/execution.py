"""Stages 6–7 and the kill switch as Prefect tasks over the engine (core/engine).

Each task opens the store's state (the cycle's DuckDB connection) and calls the pure
engine with it; the order venue is paper (sim, replay) or Kraken through ccxt. A paper
account lives in memory, so it is saved to the store after every cycle and restored at
the next: each Prefect flow run may be a fresh process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from core.cycle import Clock, CycleContext
from core.engine import execution as engine
from core.engine.execution import ReconcileReport, Stage
from core.engine.gateway import ExecutionReport
from core.errors import LiveTradingNotAllowedError
from core.orders import OrderVenue
from schemas.config import AppConfig, Secrets, VenueKind
from schemas.execution import ExecutionConfig
from schemas.risk import RiskConfig
from store import execution as ex
from store.cycles import last_markets
from store.db import open_store
from store.state import store_state
from tasks.retry import retry_on_transient_venue_errors
from venues.base import MarketDataVenue, WallClock

if TYPE_CHECKING:
    from venues.paper import FundingSchedule

log = logging.getLogger("smc_trader.execution")


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
    from venues.paper import PaperAccountState, PaperConfig, PaperOrderVenue
    from venues.paper.legacy import from_pickle, is_pickled

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
    # versioned JSON (an account pickled by an older version is converted once)
    state = (
        from_pickle(blob, timeframe="1h") if is_pickled(blob) else PaperAccountState.from_json(blob)
    )
    return state.open_venue(feed, funding=_funding(feed))


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


def save_order_venue(order_venue: OrderVenue, feed: MarketDataVenue, db_path: Path) -> None:
    """Persist a paper account (versioned JSON, history bounded) so the next flow run, maybe
    a new process, continues it."""
    from venues.paper import PaperOrderVenue, save_paper_account

    if not isinstance(order_venue, PaperOrderVenue) or order_venue.driver is None:
        return
    text = save_paper_account(order_venue)
    with open_store(db_path) as con:
        ex.save_venue_state(con, feed.name, text.encode("utf-8"), feed.clock.now())


# -- the engine's stages on the store -------------------------------------------------------


def clock_of(order_venue: OrderVenue) -> Clock:
    """The venue's clock (simulated in sim and replay), else the wall clock (live)."""
    clock = getattr(order_venue, "clock", None)
    return clock if clock is not None else WallClock()


@contextmanager
def open_stage(
    order_venue: OrderVenue, ctx: CycleContext, cfg: ExecutionConfig | None = None
) -> Iterator[Stage]:
    """An engine stage (gateway + fills) on the store at ctx.db_path, for one block."""
    with store_state(ctx.db_path) as state:
        yield Stage.open(order_venue, state, ctx, clock_of(order_venue), cfg or ExecutionConfig())


def execute(
    ctx: CycleContext,
    order_venue: OrderVenue,
    intents: pl.DataFrame,
    markets: pl.DataFrame,
    cfg: ExecutionConfig,
    risk: RiskConfig | None = None,
) -> ExecutionReport:
    """core.engine.execution.execute_stage on the store (see there)."""
    with store_state(ctx.db_path) as state:
        return engine.execute_stage(
            ctx, order_venue, state, clock_of(order_venue), intents, markets, cfg,
            risk or RiskConfig(),
        )


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


def reconcile_stage(
    ctx: CycleContext,
    order_venue: OrderVenue,
    markets: pl.DataFrame,
    cfg: ExecutionConfig,
    *,
    startup: bool,
    atr: dict[str, float] | None = None,
) -> ReconcileReport:
    """core.engine.execution.reconcile_stage on the store (see there)."""
    with store_state(ctx.db_path) as state:
        return engine.reconcile_stage(
            ctx, order_venue, state, clock_of(order_venue), markets, cfg, startup=startup,
            atr=atr,
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


def run_kill_switch(ctx: CycleContext, order_venue: OrderVenue, config: AppConfig) -> list[str]:
    """core.engine.execution.kill_switch on the store (see there)."""
    with store_state(ctx.db_path) as state:
        return engine.kill_switch(ctx, order_venue, state, clock_of(order_venue), config)


@task(name="kill_switch", cache_policy=NO_CACHE)
def kill_switch_task(ctx: CycleContext, order_venue: OrderVenue, config: AppConfig) -> list[str]:
    """The kill switch as its own task run: visible in the cycle's graph when it fires."""
    return run_kill_switch(ctx, order_venue, config)


def placed_this_cycle(ctx: CycleContext) -> int:
    """Orders placed in this cycle, counted in the log (a retried stage's first try too)."""
    with store_state(ctx.db_path) as state:
        return state.orders_placed(ctx.cycle_id)


def known_markets(ctx: CycleContext) -> pl.DataFrame | None:
    """The registry as the last cycle saw it (grids, last prices): what positions are
    managed with when this cycle's market discovery failed."""
    with open_store(ctx.db_path) as con:
        return last_markets(con, ctx.venue)


__all__ = [
    "ReconcileReport",
    "clock_of",
    "execute",
    "execute_task",
    "kill_switch_task",
    "known_markets",
    "make_order_venue",
    "open_order_venue",
    "open_stage",
    "placed_this_cycle",
    "reconcile_stage",
    "reconcile_task",
    "run_kill_switch",
    "save_order_venue",
    "save_order_venue_task",
]
