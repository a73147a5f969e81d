"""One trading cycle = one Prefect flow run. Wiring only: the logic lives in core/.

discover markets -> refresh OHLCV -> signals -> auction + risk -> execute
  -> reconcile -> invariants (kill switch on HALT) -> CYCLE_END

A stage that fails (after its own retries) does not end the cycle: what depends on it is
skipped, positions are still managed with the latest known markets, and the invariant
monitor and kill switch run on the latest known account, every cycle. A cycle with a
failed stage ends as a Failed flow run, after its safety stages ran.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
from prefect import flow
from prefect.states import Completed, Failed, State

from core.auction import auction_table
from core.registry import MarketRegistry
from core.risk import AccountState
from core.summary import CycleSummary
from core.system_state import SystemState
from schemas.config import AppConfig, Secrets
from store.db import cycle_session
from tasks.account import last_known_account, sync_account
from tasks.allocation import allocate_task, open_positions
from tasks.cycle_io import cycle_run_name, finish_summary, is_startup, open_cycle, summarize
from tasks.cycle_report import publish_read_copy, report_cycle
from tasks.execution import (
    execute_task,
    kill_switch_task,
    known_markets,
    open_order_venue,
    placed_this_cycle,
    reconcile_task,
    save_order_venue_task,
)
from tasks.logs import ensure_logging
from tasks.markets import discover_markets
from tasks.ohlcv import refresh_ohlcv
from tasks.portfolio import active_portfolio, unprotected_positions
from tasks.safety import check_invariants_task
from tasks.settings import cycle_overrides, load_config, load_secrets
from tasks.signals import generate_signals
from venues.base import MarketDataVenue
from venues.factory import make_venue

log = logging.getLogger("smc_trader.cycle")
T = TypeVar("T")


@flow(
    name="trading-cycle", log_prints=True, validate_parameters=True, flow_run_name=cycle_run_name
)
def trading_cycle(
    config_dir: str = "configs",
    venue: str | None = None,
    data_dir: str | None = None,
    db: str | None = None,
    api_url: str | None = None,
    sandbox: bool | None = None,
    live: bool = False,
    paper: bool = False,
) -> str | State:
    """One cycle of the whole system. Returns the CYCLE_END line."""
    ensure_logging()
    config = load_config(Path(config_dir), cycle_overrides(venue, data_dir, db, api_url, sandbox))
    secrets = load_secrets()
    feed = make_venue(config.venue, secrets)
    try:
        # Every cycle, finished or failed, ends by publishing the read copy for SQL readers.
        with cycle_session(config.cycle.db_path, on_close=publish_read_copy):
            return _run_cycle(config, secrets, feed, live=live, paper=paper)
    finally:
        feed.close()


class _Stages:
    """Runs stages, keeping each failure instead of ending the cycle on the first one.

    plain=True calls each task's own function without Prefect (no task runs, no retries,
    no artifacts): the same wiring, for replaying many cycles fast (bench, parity tests).
    """

    def __init__(self, *, plain: bool = False) -> None:
        self.plain = plain
        self.failures: list[str] = []

    def call(self, task: Any, *args: Any, **kwargs: Any) -> Any:
        return (task.fn if self.plain else task)(*args, **kwargs)

    def run(self, name: str, task: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return self.call(task, *args, **kwargs)
        except Exception as exc:  # the task run shows Failed; the cycle goes on to safety
            self.failures.append(f"{name}: {type(exc).__name__}: {exc}")
            log.error("stage %s failed: %s: %s", name, type(exc).__name__, exc)
            return None


def replay_cycles(config: AppConfig, feed: MarketDataVenue, cycles: int) -> list[str]:
    """`cycles` cycles of this flow's own wiring on a sim or replay feed, without Prefect
    (each stage's plain function): what a backtest is proven against, and its naive peer."""
    lines = []
    for _ in range(cycles):
        with cycle_session(config.cycle.db_path):
            result = _run_cycle(config, Secrets(), feed, live=False, paper=False, plain=True)
        lines.append(result if isinstance(result, str) else str(result.message))
    return lines


def _run_cycle(
    config: AppConfig,
    secrets: Secrets,
    feed: MarketDataVenue,
    *,
    live: bool,
    paper: bool,
    plain: bool = False,
) -> str | State:
    stages = _Stages(plain=plain)
    call = stages.call
    ctx = call(open_cycle, feed, config.cycle.db_path)
    orders = call(open_order_venue, config, feed, ctx.db_path, secrets, live=live, paper=paper)
    markets = stages.run("discover_markets", discover_markets, feed, ctx, config.markets)
    registry = MarketRegistry(markets) if markets is not None else None
    tradeable = registry.tradeable_symbols() if registry is not None else []
    refreshed = (
        stages.run("refresh_ohlcv", refresh_ohlcv, feed, tradeable, ctx, config.ohlcv)
        if tradeable
        else None
    )
    before = (
        stages.run("sync_account", sync_account, ctx, orders, markets)
        if markets is not None
        else None
    )
    signals = (
        stages.run(
            "generate_signals",
            generate_signals,
            ctx,
            refreshed.markets_ok,
            markets,
            config.strategy,
        )
        if refreshed is not None and markets is not None
        else None
    )
    allocation = None
    if signals is not None and before is not None and markets is not None:
        held = open_positions(before.positions, markets, config.risk.default_leverage)
        account = AccountState(
            before.snapshot.equity,
            before.snapshot.margin_used,
            before.high_water,
            SystemState(before.state.state),
        )
        allocation = stages.run(
            "auction_and_risk", allocate_task, ctx, signals.signals, markets, held, account, config
        )
    # Positions are managed every cycle, with the last known markets if discovery failed.
    managed = markets if markets is not None else known_markets(ctx)
    intents = allocation.intents if allocation is not None else pl.DataFrame()
    executed = reconciled = None
    if managed is not None:
        executed = stages.run(
            "execute", execute_task, ctx, orders, intents, managed, config.execution, config.risk
        )
        startup = is_startup(ctx, config.cycle.interval_seconds)
        reconciled = stages.run(
            "reconcile", reconcile_task, ctx, orders, managed, config.execution, startup
        )
    after = stages.run("sync_account_after", sync_account, ctx, orders, managed)
    snapshot = after.snapshot if after is not None else last_known_account(ctx)
    safety = call(check_invariants_task, ctx, snapshot, config.safety)
    kill_lines = (
        stages.run("kill_switch", kill_switch_task, ctx, orders, config) or []
        if safety.halted
        else []
    )
    stages.run("save_order_venue", save_order_venue_task, orders, feed, ctx.db_path)

    portfolio = active_portfolio(ctx)
    done = [r for r in (executed, reconciled.execution if reconciled else None) if r is not None]
    summary = CycleSummary(
        cycle_id=ctx.cycle_id,
        venue=ctx.venue,
        clock=f"{ctx.decision_time:%Y-%m-%dT%H:%MZ}",
        markets_total=markets.height if markets is not None else 0,
        tradeable_markets=len(tradeable),
        coins_processed=signals.coins_processed if signals is not None else 0,
        candles_upserted=refreshed.candles_upserted if refreshed is not None else 0,
        signals=signals.signals.height if signals is not None else None,
        candidates=allocation.auction.candidates if allocation is not None else None,
        winners_selected=allocation.auction.winners_selected if allocation is not None else None,
        intents=allocation.approved if allocation is not None else None,
        orders_placed=placed_this_cycle(ctx),
        orders_cancelled=sum(r.cancelled for r in done) if done else None,
        open_positions=reconciled.open_positions if reconciled is not None else None,
        unprotected_positions=(
            reconciled.unprotected if reconciled is not None else unprotected_positions(ctx)
        ),
        equity=snapshot.equity if snapshot is not None else None,
        margin_utilization=snapshot.margin_utilization if snapshot is not None else None,
        system_state=str(safety.record.state),
        market_errors=len(refreshed.errors) if refreshed is not None else 0,
        failed_stages=len(stages.failures),
        tiers=registry.tier_counts() if registry is not None else {},
    )
    tables = {
        "markets": markets.select(
            "symbol", "tier", "volume_24h_usd", "spread_bps", "reason"
        ).to_dicts()
        if markets is not None
        else [],
        "auction": auction_table(allocation.auction) if allocation is not None else [],
        "portfolio": portfolio,
        "why-no-trades": [{"reason": k, "markets": v} for k, v in signals.rejections().items()]
        if signals is not None
        else [],
        "kill-switch": [{"step": line} for line in kill_lines],
        "failed-stages": [{"failure": f} for f in stages.failures],
    }
    line = finish_summary(ctx, summary) if plain else summarize(ctx, summary, tables)
    if not plain:
        report_cycle(ctx, summary, config.alerts)  # dashboard artifact and alerts
    if stages.failures:
        # Safety ran on the latest known state; the run is Failed so it can be seen and alerted.
        return Failed(message="; ".join(stages.failures), data=line)
    if safety.halted:
        # The cycle did its job; the run is marked, not failed (a failure would page wrongly).
        return Completed(
            name="Halted", message=f"Kill switch active: {safety.record.cause}", data=line
        )
    return line
