"""Stage 1: discover the venue's perpetuals and tier them (the market registry)."""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from core.cycle import CycleContext
from core.registry import build_registry
from schemas.config import MarketsConfig
from store.cycles import save_markets
from store.db import open_store
from tasks.retry import retry_on_transient_venue_errors
from venues.base import MarketDataVenue


def discover(venue: MarketDataVenue, ctx: CycleContext, config: MarketsConfig) -> pl.DataFrame:
    """The validated Markets frame for this cycle, also saved as the registry snapshot."""
    markets = build_registry(venue.markets(), venue.tickers(), config)
    with open_store(ctx.db_path) as con:
        save_markets(con, markets, ctx.venue, ctx.cycle_id, ctx.decision_time)
    return markets


@task(
    name="discover_markets",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_transient_venue_errors,
    cache_policy=NO_CACHE,
)
def discover_markets(
    venue: MarketDataVenue, ctx: CycleContext, config: MarketsConfig
) -> pl.DataFrame:
    return discover(venue, ctx, config)
