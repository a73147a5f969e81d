"""One trading cycle = one Prefect flow run. Wiring only: the logic lives in core/.

discover markets -> refresh OHLCV -> signals -> auction + risk -> execute
  -> reconcile -> invariants (kill switch on HALT) -> CYCLE_END
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.states import Completed, State

from core.registry import MarketRegistry
from core.risk import AccountState
from core.summary import CycleSummary
from core.system_state import SystemState
from schemas.config import AppConfig, Secrets
from store.db import cycle_session
from tasks.account import sync_account
from tasks.allocation import allocate_task, open_positions
from tasks.cycle_io import cycle_run_name, is_startup, open_cycle, summarize
from tasks.cycle_report import publish_read_copy, report_cycle
from tasks.execution import (
    execute_task,
    make_order_venue,
    reconcile_task,
    run_kill_switch,
    save_order_venue,
)
from tasks.markets import discover_markets
from tasks.ohlcv import refresh_ohlcv
from tasks.portfolio import active_portfolio, unprotected_positions
from tasks.safety import check_invariants_task
from tasks.signals import generate_signals
from trader.logs import ensure_logging
from trader.settings import cycle_overrides, load_config, load_secrets
from venues.base import MarketDataVenue
from venues.factory import make_venue


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


def _run_cycle(
    config: AppConfig, secrets: Secrets, feed: MarketDataVenue, *, live: bool, paper: bool
) -> str | State:
    ctx = open_cycle(feed, config.cycle.db_path)
    orders = make_order_venue(config, feed, ctx.db_path, secrets, live=live, paper=paper)
    markets = discover_markets(feed, ctx, config.markets)
    registry = MarketRegistry(markets)
    tradeable = registry.tradeable_symbols()
    refreshed = refresh_ohlcv(feed, tradeable, ctx, config.ohlcv)

    before = sync_account(ctx, orders, markets)
    signals = generate_signals(ctx, refreshed.markets_ok, markets, config.strategy)
    held = open_positions(before.positions, markets, config.risk.default_leverage)
    account = AccountState(
        before.snapshot.equity,
        before.snapshot.margin_used,
        before.high_water,
        SystemState(before.state.state),
    )
    allocation = allocate_task(ctx, signals.signals, markets, held, account, config)
    executed = execute_task(ctx, orders, allocation.intents, markets, config.execution, config.risk)
    reconciled = reconcile_task(
        ctx, orders, markets, config.execution, is_startup(ctx, config.cycle.interval_seconds)
    )
    after = sync_account(ctx, orders, markets)
    safety = check_invariants_task(ctx, after.snapshot, config.safety)
    kill_lines = run_kill_switch(ctx, orders, config) if safety.halted else []
    save_order_venue(orders, feed, ctx.db_path)

    portfolio = active_portfolio(ctx)
    summary = CycleSummary(
        cycle_id=ctx.cycle_id,
        venue=ctx.venue,
        clock=f"{ctx.decision_time:%Y-%m-%dT%H:%MZ}",
        markets_total=markets.height,
        tradeable_markets=len(tradeable),
        coins_processed=signals.coins_processed,
        candles_upserted=refreshed.candles_upserted,
        signals=signals.signals.height,
        candidates=allocation.auction.candidates,
        winners_selected=allocation.auction.winners_selected,
        intents=allocation.approved,
        orders_placed=executed.placed + reconciled.execution.placed,
        orders_cancelled=executed.cancelled + reconciled.execution.cancelled,
        open_positions=reconciled.open_positions,
        equity=after.snapshot.equity,
        margin_utilization=after.snapshot.margin_used / after.snapshot.equity
        if after.snapshot.equity > 0
        else None,
        system_state=str(safety.record.state),
        market_errors=len(refreshed.errors),
        unprotected_positions=unprotected_positions(ctx),
        tiers=registry.tier_counts(),
    )
    tables = {
        "markets": markets.select(
            "symbol", "tier", "volume_24h_usd", "spread_bps", "reason"
        ).to_dicts(),
        "auction": _auction_rows(allocation),
        "portfolio": portfolio,
        "why-no-trades": [{"reason": k, "markets": v} for k, v in signals.rejections().items()],
        "kill-switch": [{"step": line} for line in kill_lines],
    }
    line = summarize(ctx, summary, tables)
    report_cycle(ctx, summary, config.alerts)  # dashboard artifact and alerts (issue 12)
    if safety.halted:
        # The cycle did its job; the run is marked, not failed (a failure would page wrongly).
        return Completed(
            name="Halted", message=f"Kill switch active: {safety.record.cause}", data=line
        )
    return line


def _auction_rows(allocation: Any) -> list[dict[str, Any]]:
    from core.auction import auction_table

    return auction_table(allocation.auction)
