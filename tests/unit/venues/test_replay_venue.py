"""The replay venue over the real Binance USD-M candles, and over files that are wrong."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.errors import VenueError, VenueRetryableError
from venues.base import OHLCV_COLUMNS, MarketDataVenue
from venues.replay import ReplayDataError, ReplayVenue

HOUR = timedelta(hours=1)
FIRST_HOUR = datetime(2024, 12, 31, tzinfo=UTC)  # the oldest candle in the folder (README)
RIVER_FIRST = datetime(2025, 10, 17, 14, tzinfo=UTC)
SPACE_FIRST = datetime(2026, 1, 23, 11, tzinfo=UTC)
LATE = {"HYPE", "WLFI", "RIVER", "XAU", "SPACE"}

realdata = pytest.mark.realdata


def symbols(venue: ReplayVenue) -> set[str]:
    return {m.symbol for m in venue.markets()}


def hourly_file(real_data_dir: Path, base: str) -> pl.DataFrame:
    return pl.read_parquet(real_data_dir / f"{base}USDT_1h.parquet")


# --- clock and universe -----------------------------------------------------------------


@realdata
def test_the_clock_starts_250_days_into_the_data_and_advances_one_hour(
    real_data_dir: Path,
) -> None:
    venue = ReplayVenue(real_data_dir)
    assert isinstance(venue, MarketDataVenue)
    start = FIRST_HOUR + timedelta(days=250)
    assert venue.clock.now() == start
    assert venue.clock.advance() == start + HOUR
    assert venue.clock.now() == start + HOUR


@realdata
def test_advancing_the_clock_closes_exactly_one_new_hourly_candle(real_data_dir: Path) -> None:
    venue = ReplayVenue(real_data_dir)
    before_now = venue.clock.now()
    window = (before_now - 24 * HOUR, before_now + 24 * HOUR)
    before = venue.ohlcv("BTC/USD:USD", "1h", *window)
    venue.clock.advance()
    after = venue.ohlcv("BTC/USD:USD", "1h", *window)
    assert after.height == before.height + 1 == 25
    assert after.head(before.height).equals(before)
    assert after["ts"][-1] == before_now


@realdata
def test_at_the_default_start_only_markets_whose_data_began_are_listed(
    real_data_dir: Path,
) -> None:
    venue = ReplayVenue(real_data_dir)  # 2025-09-07
    listed = {m.base for m in venue.markets()}
    assert {"BTC", "ETH", "SOL", "DOGE", "BNB", "XRP", "HYPE", "WLFI"} <= listed
    assert not {"RIVER", "XAU", "SPACE"} & listed
    assert set(venue.tickers()) == symbols(venue)


@realdata
@pytest.mark.parametrize(("base", "first"), [("RIVER", RIVER_FIRST), ("SPACE", SPACE_FIRST)])
def test_a_late_market_appears_once_its_first_candle_has_closed(
    real_data_dir: Path, base: str, first: datetime
) -> None:
    symbol = f"{base}/USD:USD"
    venue = ReplayVenue(real_data_dir, start=first)
    assert symbol not in symbols(venue)
    assert symbol not in venue.tickers()
    assert venue.ohlcv(symbol, "1h", first - 48 * HOUR, first).is_empty()

    venue.clock.advance()
    assert symbol in symbols(venue)
    assert symbol in venue.tickers()
    candles = venue.ohlcv(symbol, "1h", first - 48 * HOUR, venue.clock.now())
    assert candles["ts"].to_list() == [first]


@realdata
def test_exhausted_data_is_a_venue_error_that_says_what_to_do(real_data_dir: Path) -> None:
    last_hour = max(pl.read_parquet(f)["ts"].max() for f in real_data_dir.glob("*USDT_1h.parquet"))
    venue = ReplayVenue(real_data_dir, start=last_hour + HOUR)
    assert venue.tickers()  # the last candle has just closed: still a cycle to run
    venue.clock.advance()
    with pytest.raises(VenueError) as err:
        venue.tickers()
    assert not isinstance(err.value, VenueRetryableError)  # retrying cannot help
    message = str(err.value)
    assert str(real_data_dir) in message
    assert f"{last_hour + HOUR:%Y-%m-%d %H:%M}" in message
    assert "--db" in message and "replay_start" in message


# --- candles ----------------------------------------------------------------------------


@realdata
def test_candles_come_in_the_port_shape(real_data_dir: Path) -> None:
    venue = ReplayVenue(real_data_dir)
    now = venue.clock.now()
    for timeframe in ("1h", "4h", "1d"):
        candles = venue.ohlcv("ETH/USD:USD", timeframe, now - timedelta(days=10), now)
        assert tuple(candles.columns) == OHLCV_COLUMNS
        assert candles.schema["ts"] == pl.Datetime("us", "UTC")
        assert candles["ts"].is_sorted() and candles["ts"].is_unique().all()


@realdata
@pytest.mark.parametrize("base", ["BTC", "SPACE"])
def test_4h_candles_are_the_hourly_ones_resampled_as_the_readme_says(
    real_data_dir: Path, base: str
) -> None:
    now = datetime(2026, 2, 1, 2, tzinfo=UTC)  # mid-bucket: the 00:00 bucket is not closed
    venue = ReplayVenue(real_data_dir, start=now)
    served = venue.ohlcv(f"{base}/USD:USD", "4h", now - timedelta(days=20), now)
    # README: ts = the 4-hour bucket's open; open first, high max, low min, close last, volume sum.
    expected = (
        hourly_file(real_data_dir, base)
        .sort("ts")
        .group_by(pl.col("ts").dt.truncate("4h"))
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .filter((pl.col("ts") >= now - timedelta(days=20)) & (pl.col("ts") + 4 * HOUR <= now))
        .sort("ts")
        .with_columns(pl.col("ts").dt.cast_time_unit("us"))
    )
    assert served.height == expected.height > 0
    assert served["ts"][-1] == datetime(2026, 1, 31, 20, tzinfo=UTC)
    assert served.select("ts", "open", "high", "low", "close").equals(
        expected.select("ts", "open", "high", "low", "close")
    )
    assert served["volume"].to_list() == pytest.approx(expected["volume"].to_list(), rel=1e-12)


@realdata
def test_daily_candles_are_read_from_the_daily_file(real_data_dir: Path) -> None:
    venue = ReplayVenue(real_data_dir)
    now = venue.clock.now()
    served = venue.ohlcv("BTC/USD:USD", "1d", FIRST_HOUR, now)
    daily = pl.read_parquet(real_data_dir / "BTCUSDT_1d.parquet").filter(
        pl.col("ts") + timedelta(days=1) <= now
    )
    assert served.height == daily.height == 250
    assert served["close"].to_list() == daily["close"].to_list()


# --- a folder that is wrong -----------------------------------------------------------------


def good_hourly(hours: int = 48) -> pl.DataFrame:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": pl.datetime_range(
                start, start + (hours - 1) * HOUR, "1h", eager=True, time_zone="UTC"
            ),
            "open": [100.0] * hours,
            "high": [101.0] * hours,
            "low": [99.0] * hours,
            "close": [100.5] * hours,
            "volume": [5.0] * hours,
        }
    )


def folder_with(tmp_path: Path, name: str, write: Callable[[Path], object]) -> Path:
    """A replay folder with one good market and one file written by `write`."""
    good_hourly().write_parquet(tmp_path / "GOODUSDT_1h.parquet")
    write(tmp_path / name)
    return tmp_path


def test_a_missing_folder_is_a_replay_data_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ReplayDataError, match="no-such-folder") as err:
        ReplayVenue(missing)
    assert "--data-dir" in str(err.value)


def test_a_folder_without_hourly_files_is_a_replay_data_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("nothing here")
    with pytest.raises(ReplayDataError, match=r"no \*USDT_1h\.parquet files") as err:
        ReplayVenue(tmp_path)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    ("name", "write", "says"),
    [
        pytest.param(
            "BADUSDT_1h.parquet",
            lambda p: p.write_bytes(b"this is not parquet"),
            "cannot read parquet",
            id="not parquet",
        ),
        pytest.param(
            "BADUSDT_1h.parquet",
            lambda p: good_hourly().drop("volume").write_parquet(p),
            "missing columns ['volume']",
            id="missing column",
        ),
        pytest.param(
            "BADUSDT_1h.parquet",
            lambda p: good_hourly().with_columns(pl.col("ts").dt.epoch("ms")).write_parquet(p),
            "ts must be a datetime",
            id="ts as integers",
        ),
        pytest.param(
            "GOODUSDT_1d.parquet",
            lambda p: p.write_bytes(b"PAR1 truncated"),
            "cannot read parquet",
            id="bad daily file",
        ),
    ],
)
def test_a_malformed_file_is_a_replay_data_error_naming_the_file(
    tmp_path: Path, name: str, write: Callable[[Path], object], says: str
) -> None:
    # one bad market never stops the others: it is left out, named with its problem
    folder = folder_with(tmp_path, name, write)
    base = name.removesuffix("USDT_1h.parquet").removesuffix("USDT_1d.parquet")
    if base == "GOOD":  # its daily file is the bad one: nothing usable is left
        with pytest.raises(ReplayDataError, match="no usable market") as err:
            ReplayVenue(folder)
        assert str(folder / name) in str(err.value) and says in str(err.value)
        return
    venue = ReplayVenue(folder)
    message = venue.problems[base]
    assert str(folder / name) in message
    assert says in message
    symbols = {m.symbol for m in venue.all_markets()}
    assert f"{base}/USD:USD" not in symbols and "GOOD/USD:USD" in symbols
    # and a folder with nothing usable is one error naming the file
    (folder / "GOODUSDT_1h.parquet").unlink()
    with pytest.raises(ReplayDataError, match="no usable market") as err:
        ReplayVenue(folder)
    assert str(folder / name) in str(err.value)


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda p: good_hourly().head(0).write_parquet(p),
            id="no rows",
        ),
        pytest.param(
            lambda p: (
                good_hourly()
                .with_columns(pl.col("close").cast(pl.String).str.replace("100.5", "n/a"))
                .write_parquet(p)
            ),
            id="text prices",
        ),
        pytest.param(
            lambda p: (
                good_hourly()
                .with_columns(
                    pl.when(pl.int_range(pl.len()) == 0)
                    .then(None)
                    .otherwise(pl.col("ts"))
                    .alias("ts")
                )
                .write_parquet(p)
            ),
            id="null ts",
        ),
    ],
)
def test_an_unusable_hourly_file_is_a_replay_data_error_naming_the_file(
    tmp_path: Path, write: Callable[[Path], object]
) -> None:
    folder = folder_with(tmp_path, "BADUSDT_1h.parquet", write)
    venue = ReplayVenue(folder)  # the good market still runs
    assert "BADUSDT_1h.parquet" in venue.problems["BAD"]
    assert {m.symbol for m in venue.all_markets()} == {"GOOD/USD:USD"}


def test_naive_timestamps_are_read_as_utc(tmp_path: Path) -> None:
    naive = good_hourly().with_columns(pl.col("ts").dt.replace_time_zone(None))
    naive.write_parquet(tmp_path / "NAIVEUSDT_1h.parquet")
    venue = ReplayVenue(tmp_path, start=datetime(2025, 1, 2, tzinfo=UTC))
    candles = venue.ohlcv(
        "NAIVE/USD:USD", "1h", datetime(2025, 1, 1, tzinfo=UTC), venue.clock.now()
    )
    assert candles["ts"][0] == datetime(2025, 1, 1, tzinfo=UTC)
    assert candles.height == 24


def test_a_small_folder_replays_with_its_own_markets_and_daily_candles_resampled(
    tmp_path: Path,
) -> None:
    good_hourly(24 * 10).write_parquet(tmp_path / "ABCUSDT_1h.parquet")  # no daily file
    venue = ReplayVenue(tmp_path, start=datetime(2025, 1, 4, tzinfo=UTC))
    assert [m.symbol for m in venue.markets()] == ["ABC/USD:USD"]
    daily = venue.ohlcv("ABC/USD:USD", "1d", datetime(2025, 1, 1, tzinfo=UTC), venue.clock.now())
    assert daily["ts"].to_list() == [datetime(2025, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    assert daily["volume"].to_list() == [5.0 * 24] * 3
