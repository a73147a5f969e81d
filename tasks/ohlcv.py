"""Stage 2: bring stored candles up to the decision time, incrementally.

Markets are batched inside one task (a task per market would swamp the Prefect
server on 2 cores). A market whose fetch or validation fails is skipped and
recorded; the others proceed. Only when the venue fails for every market with a
transient error does the task raise, so Prefect retries it with backoff; the
retry is cheap because the refresh is incremental.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl
from duckdb import DuckDBPyConnection
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from core.cycle import CycleContext
from core.errors import DataError, VenueError, VenueRetryableError, VenueUnavailableError
from core.ohlcv import FetchKind, FetchRequest, plan_fetches, validate_candles
from schemas.config import TIMEFRAME_SECONDS, OhlcvConfig
from store.candles import (
    GapRecord,
    exhausted_gaps,
    last_candle_times,
    record_gaps,
    stored_gaps,
    upsert_candles,
)
from store.cycles import record_market_errors
from store.db import open_store
from tasks.retry import retry_on_transient_venue_errors
from venues.base import MarketDataVenue

log = logging.getLogger("smc_trader.ohlcv")
MAX_GAP_ATTEMPTS = 3
GAP_SCAN = timedelta(days=10)


@dataclass
class RefreshResult:
    requests: int = 0
    candles_upserted: int = 0
    markets_ok: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    gaps_open: int = 0


def _fetch(venue: MarketDataVenue, request: FetchRequest, now_ctx: CycleContext) -> pl.DataFrame:
    raw = venue.ohlcv(request.symbol, request.timeframe, request.since, request.until)
    return validate_candles(request.symbol, request.timeframe, raw, now_ctx.decision_time)


def _run_requests(
    venue: MarketDataVenue, plan: list[FetchRequest], ctx: CycleContext, workers: int
) -> tuple[list[pl.DataFrame], dict[str, str], int]:
    """Fetch every request; a market's first failure skips the rest of that market."""
    frames: list[pl.DataFrame] = []
    errors: dict[str, str] = {}
    transient = 0
    by_symbol: dict[str, list[FetchRequest]] = {}
    for request in plan:
        by_symbol.setdefault(request.symbol, []).append(request)

    def one_market(requests: list[FetchRequest]) -> tuple[list[pl.DataFrame], str | None, bool]:
        got = []
        for request in requests:
            try:
                got.append(_fetch(venue, request, ctx))
            except VenueRetryableError as exc:
                return got, f"{request.timeframe}: {exc}", True
            except (DataError, VenueError) as exc:
                return got, f"{request.timeframe}: {exc}", False
        return got, None, False

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ohlcv") as pool:
        results = pool.map(one_market, by_symbol.values())
        for symbol, (got, error, was_transient) in zip(by_symbol, results, strict=True):
            if error is None:
                frames.extend(got)
            else:
                # All or nothing per market: a half-fetched market would look gap-free.
                errors[symbol] = error
                transient += was_transient
                log.warning("OHLCV refresh skipped %s: %s", symbol, error)
    return frames, errors, transient


def refresh(
    venue: MarketDataVenue, symbols: list[str], ctx: CycleContext, config: OhlcvConfig
) -> RefreshResult:
    """Fetch, validate and upsert the candles `symbols` miss. Raises VenueUnavailableError
    only when every market failed transiently (the venue itself is down)."""
    result = RefreshResult()
    # New holes appear where new candles land: scan the recent past, not all history.
    window_start = ctx.decision_time - GAP_SCAN
    step_s = {tf: TIMEFRAME_SECONDS[tf] for tf in config.timeframes}
    with open_store(ctx.db_path) as con:
        last = last_candle_times(con)
        gaps = stored_gaps(con, step_s, window_start)
        skip = exhausted_gaps(con, MAX_GAP_ATTEMPTS)
    open_gaps = [
        (g["symbol"], g["timeframe"], g["gap_start"], g["gap_end"])
        for g in gaps.iter_rows(named=True)
        if (g["symbol"], g["timeframe"], g["gap_start"]) not in skip
    ]
    plan = plan_fetches(
        symbols, config.timeframes, last, ctx.decision_time, config.history_bars, open_gaps
    )
    result.requests = len(plan)
    frames, result.errors, transient = _run_requests(venue, plan, ctx, config.max_concurrency)
    touched = {r.symbol for r in plan}
    if touched and transient == len(touched):
        raise VenueUnavailableError(
            f"OHLCV refresh failed for all {len(touched)} markets with transient errors; "
            f"first: {next(iter(result.errors.values()))}"
        )
    with open_store(ctx.db_path) as con:
        if frames:
            result.candles_upserted = upsert_candles(con, pl.concat(frames, how="vertical"))
        _track_gaps(con, plan, step_s, window_start, ctx.cycle_id)
        record_market_errors(con, ctx.cycle_id, "ohlcv", result.errors, ctx.decision_time)
        result.gaps_open = stored_gaps(con, step_s, window_start).height
    result.markets_ok = sorted(set(symbols) - set(result.errors))
    return result


def _track_gaps(
    con: DuckDBPyConnection,
    plan: list[FetchRequest],
    step_s: dict[str, int],
    window_start: datetime,
    cycle_id: int,
) -> None:
    """Record which asked-for gaps the venue filled, so unfillable ones stop being asked."""
    remaining = stored_gaps(con, step_s, window_start)
    still = set(
        zip(remaining["symbol"], remaining["timeframe"], remaining["gap_start"], strict=True)
    )
    rows = [
        GapRecord(
            r.symbol,
            r.timeframe,
            r.since,
            r.until,
            attempted=True,
            filled=(r.symbol, r.timeframe, r.since) not in still,
        )
        for r in plan
        if r.kind is FetchKind.GAP
    ]
    asked = {(g.symbol, g.timeframe, g.gap_start) for g in rows}
    rows += [
        GapRecord(
            g["symbol"], g["timeframe"], g["gap_start"], g["gap_end"], attempted=False, filled=False
        )
        for g in remaining.iter_rows(named=True)
        if (g["symbol"], g["timeframe"], g["gap_start"]) not in asked
    ]
    record_gaps(con, rows, cycle_id)


@task(
    name="refresh_ohlcv",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_transient_venue_errors,
    cache_policy=NO_CACHE,
)
def refresh_ohlcv(
    venue: MarketDataVenue, symbols: list[str], ctx: CycleContext, config: OhlcvConfig
) -> RefreshResult:
    return refresh(venue, symbols, ctx, config)
