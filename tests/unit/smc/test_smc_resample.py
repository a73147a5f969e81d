"""One 4h/1d rule for venues and strategy: every closed bucket with at least one hour.

Hand-built hours make each case explicit: a market listing at 10:00 UTC, a
2-hour hole, a bucket still in progress. The replay venue (what a live cycle
stores) and the strategy's own resampling (what `trader signals` scans) must
serve the same candles at every clock time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.errors import DataError
from core.smc import resample
from trader.smc_commands import load_data_dir
from venues.replay import ReplayVenue

HOUR = timedelta(hours=1)
LISTING = datetime(2025, 3, 3, 10, tzinfo=UTC)  # mid-bucket: the 08:00 bucket holds 10:00, 11:00
HOLE = (datetime(2025, 3, 4, 13, tzinfo=UTC), datetime(2025, 3, 4, 14, tzinfo=UTC))
END = datetime(2025, 3, 5, 18, tzinfo=UTC)  # last hourly open 17:00: the 16:00 bucket is open


def hours() -> pl.DataFrame:
    """Hour i (from the listing) opens at 100 + i, closes at 100.5 + i; volume 1 + i."""
    ts = pl.datetime_range(LISTING, END - HOUR, "1h", eager=True, time_zone="UTC")
    frame = pl.DataFrame({"ts": ts}).with_row_index("i").filter(~pl.col("ts").is_in(HOLE))
    return frame.select(
        pl.col("ts").dt.cast_time_unit("us"),
        open=100.0 + pl.col("i"),
        high=101.0 + pl.col("i"),
        low=99.0 + pl.col("i"),
        close=100.5 + pl.col("i"),
        volume=1.0 + pl.col("i"),
    )


def hour(ts: datetime) -> dict[str, float]:
    return hours().filter(pl.col("ts") == ts).row(0, named=True)


def test_a_listing_mid_bucket_and_a_hole_still_give_their_candles_built_from_the_hours_held() -> (
    None
):
    candles = resample(hours(), "4h", END)
    first = candles.row(0, named=True)
    # The 08:00 bucket exists from the listing on: the 10:00 and 11:00 hours.
    assert first["ts"] == datetime(2025, 3, 3, 8, tzinfo=UTC)
    assert first["open"] == hour(LISTING)["open"]
    assert first["close"] == hour(LISTING + HOUR)["close"]
    assert first["volume"] == hour(LISTING)["volume"] + hour(LISTING + HOUR)["volume"]
    # The 12:00 bucket of 4 March lost 13:00 and 14:00: built from 12:00 and 15:00.
    holed = candles.filter(pl.col("ts") == datetime(2025, 3, 4, 12, tzinfo=UTC)).row(0, named=True)
    noon, three = (
        hour(datetime(2025, 3, 4, 12, tzinfo=UTC)),
        hour(datetime(2025, 3, 4, 15, tzinfo=UTC)),
    )
    assert (holed["open"], holed["close"]) == (noon["open"], three["close"])
    assert (holed["high"], holed["low"]) == (three["high"], noon["low"])
    assert holed["volume"] == noon["volume"] + three["volume"]
    # Every bucket from the listing to the last closed one, none skipped, none in progress.
    assert candles["ts"].to_list() == [
        datetime(2025, 3, 3, 8, tzinfo=UTC) + 4 * HOUR * k for k in range(14)
    ]
    assert candles["ts"][-1] + 4 * HOUR <= END


def test_a_bucket_in_progress_is_never_a_candle_even_with_all_its_hours_in() -> None:
    frame = hours()
    # At 15:00 the 12:00 bucket of 5 March has three of its hours, at 16:00 all four.
    for now in (datetime(2025, 3, 5, 15, tzinfo=UTC), datetime(2025, 3, 5, 15, 59, tzinfo=UTC)):
        closed = frame.filter(pl.col("ts") + HOUR <= now)
        assert resample(closed, "4h", now)["ts"][-1] == datetime(2025, 3, 5, 8, tzinfo=UTC)
    # Even given hours beyond `closed_by`, the bucket is refused until it has closed.
    assert resample(frame, "4h", datetime(2025, 3, 5, 15, tzinfo=UTC))["ts"][-1] == datetime(
        2025, 3, 5, 8, tzinfo=UTC
    )
    at_close = datetime(2025, 3, 5, 16, tzinfo=UTC)
    assert resample(frame, "4h", at_close)["ts"][-1] == datetime(2025, 3, 5, 12, tzinfo=UTC)


def test_daily_candles_follow_the_same_rule() -> None:
    daily = resample(hours(), "1d", END)
    # The listing day (from 10:00) and 4 March (with its hole); 5 March is in progress.
    assert daily["ts"].to_list() == [datetime(2025, 3, d, tzinfo=UTC) for d in (3, 4)]
    assert daily["open"][0] == hour(LISTING)["open"]


def test_an_unknown_timeframe_is_refused_naming_it() -> None:
    with pytest.raises(DataError, match="2h"):
        resample(hours(), "2h", END)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The hand-built market beside a complete one, as a replay folder (daily files beside)."""
    full = pl.datetime_range(LISTING - 30 * HOUR, END - HOUR, "1h", eager=True, time_zone="UTC")
    complete = pl.DataFrame({"ts": full.dt.cast_time_unit("us")}).with_columns(
        open=pl.lit(10.0), high=pl.lit(11.0), low=pl.lit(9.0), close=pl.lit(10.5), volume=1.0
    )
    for base, frame in (("LATE", hours()), ("FULL", complete)):
        frame.write_parquet(tmp_path / f"{base}USDT_1h.parquet")
        resample(frame, "1d", END).write_parquet(tmp_path / f"{base}USDT_1d.parquet")
    return tmp_path


def test_the_venue_serves_at_every_clock_time_what_the_strategy_resamples_from_its_hours(
    folder: Path,
) -> None:
    venue = ReplayVenue(folder, start=LISTING)
    since = LISTING - 2 * 24 * HOUR
    while venue.clock.now() <= END:
        now = venue.clock.now()
        served = venue.ohlcv("LATE/USD:USD", "4h", since, now)
        stored_hours = venue.ohlcv("LATE/USD:USD", "1h", since, now)
        assert_frame_equal(served, resample(stored_hours, "4h", now))
        venue.clock.advance()
    assert served.height == 14  # the listing bucket and the holed one included


def test_trader_signals_resamples_the_folder_as_the_replay_venue_serves_it(folder: Path) -> None:
    scanned = load_data_dir(folder).filter(pl.col("timeframe") == "4h")
    venue = ReplayVenue(folder, start=END)
    for base in ("LATE", "FULL"):
        served = venue.ohlcv(f"{base}/USD:USD", "4h", LISTING - 2 * 24 * HOUR, END)
        assert_frame_equal(
            scanned.filter(pl.col("symbol") == f"{base}USDT").select(served.columns), served
        )
