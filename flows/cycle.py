"""One trading cycle = one Prefect flow run. Wiring only: the logic lives in core/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from core.registry import MarketRegistry
from core.summary import CycleSummary
from tasks.cycle_io import open_cycle, summarize
from tasks.markets import discover_markets
from tasks.ohlcv import refresh_ohlcv
from trader.settings import load_config, load_secrets
from venues.factory import make_venue


def cycle_overrides(
    venue: str | None = None,
    data_dir: str | None = None,
    db: str | None = None,
    api_url: str | None = None,
    sandbox: bool | None = None,
) -> dict[str, Any]:
    """Command-line choices as configuration overrides (None leaves the file's value)."""
    venue_over = {
        k: v
        for k, v in {"kind": venue, "data_dir": data_dir, "api_url": api_url, "sandbox": sandbox}.items()
        if v is not None
    }
    over: dict[str, Any] = {"venue": venue_over} if venue_over else {}
    if db is not None:
        over["cycle"] = {"db_path": db}
    return over


@flow(name="trading-cycle", log_prints=True, validate_parameters=True)
def trading_cycle(
    config_dir: str = "configs",
    venue: str | None = None,
    data_dir: str | None = None,
    db: str | None = None,
    api_url: str | None = None,
    sandbox: bool | None = None,
) -> str:
    """discover markets -> refresh OHLCV -> ... -> CYCLE_END. Returns the CYCLE_END line."""
    config = load_config(Path(config_dir), cycle_overrides(venue, data_dir, db, api_url, sandbox))
    market_venue = make_venue(config.venue, load_secrets())
    try:
        ctx = open_cycle(market_venue, config.cycle.db_path)
        markets = discover_markets(market_venue, ctx, config.markets)
        registry = MarketRegistry(markets)
        tradeable = registry.tradeable_symbols()
        refreshed = refresh_ohlcv(market_venue, tradeable, ctx, config.ohlcv)
        summary = CycleSummary(
            cycle_id=ctx.cycle_id,
            venue=ctx.venue,
            clock=f"{ctx.decision_time:%Y-%m-%dT%H:%MZ}",
            markets_total=markets.height,
            tradeable_markets=len(tradeable),
            coins_processed=len(refreshed.markets_ok),
            candles_upserted=refreshed.candles_upserted,
            market_errors=len(refreshed.errors),
            tiers=registry.tier_counts(),
        )
        tables = {
            "markets": markets.select("symbol", "tier", "volume_24h_usd", "spread_bps", "reason")
            .to_dicts(),
        }
        return summarize(ctx, summary, tables)
    finally:
        market_venue.close()
