"""The live signal path - the OHLCV stage filling a store from a replay venue, then the
signal stage reading it - decides as `trader signals` scans the same folder, whatever day
the store was started.

Two drifts between live and history are pinned here:
- the daily 200-EMA depended on how much history a new market had loaded (400 days)
  while the strategy reads 1200, so two bots started on different days disagreed;
- the venue's 4h candles (incomplete buckets kept) differed from the strategy's own
  resampling of the hours (incomplete buckets dropped) for a listing at 10:00 UTC
  and for a market with a 2-hour hole.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.cycle import CycleContext
from core.smc import resample, scan_signals
from schemas.config import AppConfig
from store.candles import read_candles
from store.db import open_store
from tasks.ohlcv import refresh
from tasks.signals import generate
from tests.support.histories import hourly_history, wave, write_replay_folder
from trader.smc_commands import load_data_dir
from venues.replay import ReplayVenue

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CONFIG = AppConfig()


def day(n: int) -> datetime:
    """Day n since 1970: the daily EMA's calendar blocks are 600 such days (ema 200 x 3)."""
    return EPOCH + n * DAY


def signal_stage(
    folder: Path, db: Path, started: datetime, times: Iterable[datetime]
) -> pl.DataFrame:
    """Gate traces of the live path: a replay venue whose store was started at `started`,
    then refreshed and evaluated at each of `times` (every market the venue lists, tier A)."""
    venue = ReplayVenue(folder, start=started)
    traces = []
    for cycle_id, when in enumerate([started, *times], start=1):
        venue.clock.resume_after(when - HOUR)
        symbols = [m.symbol for m in venue.markets()]
        ctx = CycleContext(cycle_id, venue.name, when, db, datetime.now(UTC))
        assert not refresh(venue, symbols, ctx, CONFIG.ohlcv).errors
        tiers = pl.DataFrame({"symbol": symbols, "tier": ["A"] * len(symbols)})
        traces.append(generate(ctx, symbols, tiers, CONFIG.strategy).gate_trace)
    return pl.concat(traces[1:])


def scanned(folder: Path, times: list[datetime], symbols: pl.Series) -> pl.DataFrame:
    """`trader signals`' gate trace of the folder at `times`, named as the venue names them."""
    candles = load_data_dir(folder).with_columns(pl.col("symbol").str.replace("USDT$", "/USD:USD"))
    tiers = pl.DataFrame({"symbol": symbols.unique(), "tier": "A"})
    times_ = pl.Series(times, dtype=pl.Datetime("us", "UTC"))
    _, trace = scan_signals(candles, times_, CONFIG.strategy, tiers)
    return trace.filter(pl.col("symbol").is_in(symbols.implode()))


def same_decisions(left: pl.DataFrame, right: pl.DataFrame) -> None:
    assert_frame_equal(left.sort("ts", "symbol"), right.sort("ts", "symbol"))


# --- the real folder ----------------------------------------------------------------------

REAL_STARTS = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2026, 2, 10, tzinfo=UTC))
REAL_TIMES = [datetime(2026, 2, 10, tzinfo=UTC) + HOUR * h for h in range(1, 9)]


@pytest.mark.realdata
def test_real_markets_decide_the_same_whichever_day_their_store_was_started(
    real_data_dir: Path, tmp_path: Path
) -> None:
    # 2026-02-10 minus the old 400-day load is 2025-01-06: after the folder's first day.
    early, late = (
        signal_stage(real_data_dir, tmp_path / f"{s:%Y%m%d}.duckdb", s, REAL_TIMES)
        for s in REAL_STARTS
    )
    same_decisions(early, late)
    same_decisions(late, scanned(real_data_dir, REAL_TIMES, late["symbol"]))
    # Not vacuous: the established markets have their EMA and so their bias.
    assert late.filter(pl.col("bias").is_not_null())["symbol"].n_unique() >= 10


# --- a synthetic folder built so that the old behaviour disagrees -------------------------

# The EMA of a decision on day 20450 (2025-12-27) is seeded on day 19800, the start of the
# calendar block before its own. The market rallied to 3x on days 19900-20049: a store
# started on day 20300 held them with the old 400-day load, one started on day 20450 did
# not, so their EMAs (and the bias of a market crossing its EMA) differed.
DRIFT_DAYS = (19500, 20470)
STARTS = (day(20300), day(20450))
HOLE = (day(20450) + 13 * HOUR, day(20450) + 14 * HOUR)  # the 12:00 bucket keeps two hours
LISTING = day(20446) + 10 * HOUR  # mid-bucket: its first 4h candle holds 10:00 and 11:00
# Every hour around the hole, then each noon for a week: the bias flips in between.
TIMES = [STARTS[1] + HOUR * h for h in range(10, 22)] + [
    STARTS[1] + d * DAY + 12 * HOUR for d in range(2, 8)
]


@functools.cache
def drift_levels() -> np.ndarray:
    days = np.arange(*DRIFT_DAYS)
    rally = (days >= 19900) & (days < 20050)
    return wave(len(days), period=9.0, amplitude=0.02) * np.where(rally, 3.0, 1.0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    drift = hourly_history(day(DRIFT_DAYS[0]), drift_levels(), seed=3, missing=HOLE)
    listed = hourly_history(LISTING, wave(DRIFT_DAYS[1] - 20446, period=5.0), seed=4)
    return write_replay_folder(tmp_path_factory.mktemp("drift"), {"DRIFT": drift, "NEW": listed})


@pytest.fixture(scope="module")
def late(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, Path]:
    """The live path's trace from a store started on the later day, and that store."""
    db = tmp_path_factory.mktemp("late") / "store.duckdb"
    return signal_stage(folder, db, STARTS[1], TIMES), db


def test_a_market_decides_the_same_whichever_day_its_store_was_started(
    folder: Path, late: tuple[pl.DataFrame, Path], tmp_path: Path
) -> None:
    early = signal_stage(folder, tmp_path / "early.duckdb", STARTS[0], TIMES)
    late_trace, _ = late
    same_decisions(early, late_trace)
    same_decisions(late_trace, scanned(folder, TIMES, late_trace["symbol"]))
    drift = late_trace.filter(pl.col("symbol") == "DRIFT/USD:USD")
    # The market crosses its EMA in the window: the bias is long on some days, short on others.
    assert set(drift["bias"]) == {"long", "short"}
    new = late_trace.filter(pl.col("symbol") == "NEW/USD:USD")
    assert (new["reason"] == "INSUFFICIENT_HISTORY").all()
    assert new["problem"].str.starts_with("1d: daily EMA warming up").all()


def test_a_listing_at_10_utc_and_a_2_hour_hole_give_one_set_of_4h_candles_and_decisions(
    folder: Path, late: tuple[pl.DataFrame, Path]
) -> None:
    live, db = late
    with open_store(db) as con:
        stored = read_candles(con, ["DRIFT/USD:USD", "NEW/USD:USD"])
    end = TIMES[-1]
    for symbol in ("DRIFT/USD:USD", "NEW/USD:USD"):
        ours = stored.filter(pl.col("symbol") == symbol)
        venue_4h = ours.filter(pl.col("timeframe") == "4h").drop("timeframe")
        hours = ours.filter(pl.col("timeframe") == "1h").drop("timeframe")
        strategy_4h = resample(hours, "4h", end)
        # Fewer hours than 4h candles are stored (1000 vs 600 x 4): compare where both are.
        since = max(venue_4h["ts"].min(), hours["ts"].dt.truncate("4h").min())
        assert_frame_equal(
            venue_4h.filter(pl.col("ts") >= since), strategy_4h.filter(pl.col("ts") >= since)
        )
    first_new = stored.filter((pl.col("symbol") == "NEW/USD:USD") & (pl.col("timeframe") == "4h"))
    assert first_new["ts"][0] == LISTING.replace(hour=8)
    holed = stored.filter(
        (pl.col("symbol") == "DRIFT/USD:USD")
        & (pl.col("timeframe") == "4h")
        & (pl.col("ts") == HOLE[0].replace(hour=12))
    )
    assert holed.height == 1
    # The decisions after the hole and the listing: venue-fed (the store) = store-fed (the scan).
    same_decisions(live, scanned(folder, TIMES, live["symbol"]))
    assert live.filter(pl.col("h4_known_at") == HOLE[0].replace(hour=16)).height > 0
