"""Backfill N days of candles for many markets, with a progress bar on the terminal."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from core.cycle import CycleContext
from core.errors import DataError, VenueError
from core.ohlcv import FetchKind, FetchRequest, floor_time, validate_candles
from schemas.config import OhlcvConfig
from store.candles import upsert_candles
from store.cycles import last_clock_ts
from store.db import open_store
from venues.base import MarketDataVenue, SimulatedClock


def backfill_context(venue: MarketDataVenue, db_path: Path) -> CycleContext:
    """A context at the venue's current time; cycle_id 0 marks work outside any cycle."""
    with open_store(db_path) as con:
        if isinstance(venue.clock, SimulatedClock):
            venue.clock.resume_after(last_clock_ts(con, venue.name))
    return CycleContext(0, venue.name, venue.clock.now(), db_path, datetime.now(UTC))


def first_candle_times(db_path: Path) -> dict[tuple[str, str], datetime]:
    with open_store(db_path) as con:
        rows = con.execute("SELECT symbol, timeframe, min(ts) FROM candles GROUP BY ALL").fetchall()
    return {(s, tf): ts for s, tf, ts in rows}


def _bar(done: int, total: int, label: str) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(
        f"\rbackfill [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<20}"
    )
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def backfill(
    venue: MarketDataVenue,
    symbols: list[str],
    ctx: CycleContext,
    config: OhlcvConfig,
    days: int,
    progress: bool,
) -> tuple[int, dict[str, str]]:
    """Candles from `days` ago up to now that are not stored yet. Per-market errors are
    returned, not raised: one bad market never stops the others."""
    first = first_candle_times(ctx.db_path)
    now = ctx.decision_time
    written, errors = 0, {}
    for i, symbol in enumerate(symbols, start=1):
        frames = []
        try:
            for tf in config.timeframes:
                start = floor_time(now - timedelta(days=days), tf)
                end = min(first.get((symbol, tf), now), now)
                if start < end:
                    request = FetchRequest(symbol, tf, start, end, FetchKind.INITIAL)
                    raw = venue.ohlcv(symbol, tf, request.since, request.until)
                    frames.append(validate_candles(symbol, tf, raw, now))
        except (DataError, VenueError) as exc:
            errors[symbol] = str(exc)
        else:
            if frames:
                with open_store(ctx.db_path) as con:
                    written += upsert_candles(con, pl.concat(frames))
        if progress:
            _bar(i, len(symbols), symbol)
    return written, errors


@task(name="backfill_history", cache_policy=NO_CACHE)
def backfill_history(
    venue: MarketDataVenue,
    symbols: list[str],
    ctx: CycleContext,
    config: OhlcvConfig,
    days: int,
    progress: bool,
) -> int:
    written, errors = backfill(venue, symbols, ctx, config, days, progress)
    for symbol, message in errors.items():
        print(f"backfill skipped {symbol}: {message}")
    print(f"backfill wrote {written} candles for {len(symbols) - len(errors)} markets")
    return written
