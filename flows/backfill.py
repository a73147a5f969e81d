"""Backfill: load N days of history for every tradeable market (also hourly, scheduled)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from core.registry import build_registry
from store.db import open_store
from tasks.backfill import backfill_context, backfill_history
from tasks.cycle_report import publish_read_copy
from tasks.logs import ensure_logging
from tasks.settings import cycle_overrides, load_config, load_secrets
from venues.factory import make_venue


@flow(name="backfill", log_prints=True)
def backfill(
    days: int = 30,
    progress: bool = False,
    config_dir: str = "configs",
    venue: str | None = None,
    data_dir: str | None = None,
    db: str | None = None,
    api_url: str | None = None,
    sandbox: bool | None = None,
) -> int:
    """Returns the number of candles written."""
    ensure_logging()
    config = load_config(Path(config_dir), cycle_overrides(venue, data_dir, db, api_url, sandbox))
    market_venue = make_venue(config.venue, load_secrets())
    try:
        ctx = backfill_context(market_venue, config.cycle.db_path)
        markets = build_registry(market_venue.markets(), market_venue.tickers(), config.markets)
        symbols = markets.filter("tradeable")["symbol"].to_list()
        written = backfill_history(market_venue, symbols, ctx, config.ohlcv, days, progress)
    finally:
        market_venue.close()
    with open_store(config.cycle.db_path) as con:
        publish_read_copy(con, config.cycle.db_path)  # SQL readers see the history now
    return written
