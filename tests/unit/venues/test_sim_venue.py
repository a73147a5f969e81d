"""The sim venue: a seeded synthetic market that is the embedded default."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from core.errors import DataError, VenueError
from core.registry import build_registry
from schemas.config import TIMEFRAME_SECONDS, MarketsConfig, Tier, VenueConfig
from venues.base import OHLCV_COLUMNS, MarketDataVenue
from venues.sim import EPOCH, HORIZON_HOURS, SimVenue, build_markets, generate_hourly

HOUR = timedelta(hours=1)
PINNED = {"BTC", "ETH", "SOL", "DOGE", "BNB"}
DEFAULT_SEED = VenueConfig().seed
DEFAULT_COUNT = VenueConfig().sim_markets


def step(timeframe: str) -> timedelta:
    return timedelta(seconds=TIMEFRAME_SECONDS[timeframe])


@pytest.fixture(scope="module")
def sim() -> SimVenue:
    """The default sim venue; tests that move its clock build their own."""
    return SimVenue(seed=DEFAULT_SEED, count=DEFAULT_COUNT)


def everything(venue: SimVenue, symbol: str, timeframe: str) -> pl.DataFrame:
    """Every candle the venue serves for this market and timeframe right now."""
    return venue.ohlcv(symbol, timeframe, EPOCH, venue.clock.now() + timedelta(days=365))


# --- determinism ------------------------------------------------------------------------


def test_the_same_seed_regenerates_identical_candles_from_scratch(sim: SimVenue) -> None:
    # Built again without the venue's cache: determinism is in the generator, not in memory.
    index = 7
    market = build_markets(DEFAULT_SEED, DEFAULT_COUNT)[index]
    regenerated = generate_hourly(market, DEFAULT_SEED, index, HORIZON_HOURS)
    served = everything(sim, market.info.symbol, "1h")
    assert served.height > 24 * 365
    assert served.equals(regenerated.head(served.height))
    assert build_markets(DEFAULT_SEED, DEFAULT_COUNT) == build_markets(DEFAULT_SEED, DEFAULT_COUNT)


def test_two_venues_with_the_same_seed_serve_the_same_market(sim: SimVenue) -> None:
    twin = SimVenue(seed=DEFAULT_SEED, count=DEFAULT_COUNT)
    assert twin.markets() == sim.markets()
    assert twin.tickers() == sim.tickers()
    for symbol in ("BTC/USD:USD", sim.markets()[-1].symbol):
        for timeframe in TIMEFRAME_SECONDS:
            assert everything(twin, symbol, timeframe).equals(everything(sim, symbol, timeframe))


def test_another_seed_gives_another_market(sim: SimVenue) -> None:
    other = SimVenue(seed=DEFAULT_SEED + 1, count=DEFAULT_COUNT)
    assert other.markets()[:5] == sim.markets()[:5]  # the majors' definitions are fixed
    assert not everything(other, "BTC/USD:USD", "1h").equals(everything(sim, "BTC/USD:USD", "1h"))
    assert other.tickers()["BTC/USD:USD"] != sim.tickers()["BTC/USD:USD"]
    assert [m.start_price for m in build_markets(DEFAULT_SEED + 1, DEFAULT_COUNT)[5:]] != [
        m.start_price for m in build_markets(DEFAULT_SEED, DEFAULT_COUNT)[5:]
    ]


# --- the universe ---------------------------------------------------------------------


def test_the_default_market_lists_56_perpetuals_with_the_pinned_majors(sim: SimVenue) -> None:
    markets = sim.markets()
    assert isinstance(sim, MarketDataVenue)
    assert len(markets) == 56
    assert len({m.symbol for m in markets}) == 56
    assert {m.base for m in markets} >= PINNED
    for m in markets:
        assert m.symbol == f"{m.base}/USD:USD"
        assert m.settle == "USD"
        assert m.tick_size > 0 and m.lot_size > 0 and m.max_leverage >= 1


@pytest.mark.parametrize("seed", [DEFAULT_SEED, DEFAULT_SEED + 1])
def test_tiers_a_b_c_and_reject_all_occur_with_the_default_thresholds(seed: int) -> None:
    venue = SimVenue(seed=seed, count=DEFAULT_COUNT)
    frame = build_registry(venue.markets(), venue.tickers(), MarketsConfig())
    counts = frame["tier"].value_counts()
    tiers = dict(zip(counts["tier"], counts["count"], strict=True))
    assert set(tiers) == {str(t) for t in Tier}, tiers
    assert set(frame.filter(pl.col("pinned"))["base"]) == PINNED


def test_tickers_quote_a_spread_around_the_last_close(sim: SimVenue) -> None:
    tickers = sim.tickers()
    assert set(tickers) == {m.symbol for m in sim.markets()}
    for symbol, t in tickers.items():
        assert t.bid is not None and t.ask is not None and t.last is not None
        assert 0 < t.bid < t.last < t.ask
        assert t.volume_24h_usd is not None and t.volume_24h_usd > 0
        last_close = everything(sim, symbol, "1h")["close"][-1]
        assert t.last == last_close


# --- candles ----------------------------------------------------------------------------


@pytest.mark.parametrize("timeframe", list(TIMEFRAME_SECONDS))
def test_only_closed_candles_are_served(timeframe: str) -> None:
    # 13:30: mid-bar for 1h, 4h and 1d alike.
    start = EPOCH + timedelta(days=430, hours=13, minutes=30)
    venue = SimVenue(seed=DEFAULT_SEED, count=DEFAULT_COUNT, start=start)
    now = venue.clock.now()
    for symbol in ("BTC/USD:USD", "XRP/USD:USD"):
        candles = venue.ohlcv(symbol, timeframe, now - 30 * step(timeframe), now + 7 * step("1d"))
        last = candles["ts"][-1]
        assert last + step(timeframe) <= now  # closed
        assert last + 2 * step(timeframe) > now  # and it is the newest closed one


def test_candles_come_in_the_port_shape(sim: SimVenue) -> None:
    candles = everything(sim, "SOL/USD:USD", "4h")
    assert tuple(candles.columns) == OHLCV_COLUMNS
    assert candles.schema["ts"] == pl.Datetime("us", "UTC")


@pytest.mark.parametrize("timeframe", list(TIMEFRAME_SECONDS))
def test_every_candle_of_every_market_is_a_valid_bar(sim: SimVenue, timeframe: str) -> None:
    frames = [
        everything(sim, m.symbol, timeframe).with_columns(pl.lit(m.symbol).alias("symbol"))
        for m in sim.markets()
    ]
    candles = pl.concat(frames)
    broken = candles.filter(
        (pl.col("high") < pl.max_horizontal("open", "close"))
        | (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("low") <= 0)
        | (pl.col("volume") < 0)
        | ~pl.all_horizontal(pl.col("open", "high", "low", "close", "volume").is_finite())
    )
    assert broken.is_empty(), broken.head()
    # One candle per step, no holes, strictly increasing, per market.
    spacing = candles.group_by("symbol").agg(pl.col("ts").diff().drop_nulls().unique())
    assert spacing["ts"].to_list() == [[step(timeframe)]] * len(frames)


@pytest.mark.parametrize("timeframe", ["4h", "1d"])
def test_higher_timeframes_are_the_hourly_candles_resampled(sim: SimVenue, timeframe: str) -> None:
    for symbol in ("ETH/USD:USD", sim.markets()[-1].symbol):
        served = everything(sim, symbol, timeframe)
        every = {"4h": "4h", "1d": "1d"}[timeframe]
        # Buckets built independently: truncate each hourly open to its bucket's open.
        expected = (
            everything(sim, symbol, "1h")
            .group_by(pl.col("ts").dt.truncate(every))
            .agg(
                pl.col("open").sort_by("ts").first(),
                pl.col("high").max(),
                pl.col("low").min(),
                pl.col("close").sort_by("ts").last(),
                pl.col("volume").sum(),
                pl.len().alias("hours"),
            )
            .sort("ts")
        )
        # A bucket still filling is not served: compare the complete ones.
        hours = TIMEFRAME_SECONDS[timeframe] // 3600
        expected = expected.filter(pl.col("hours") == hours).drop("hours")
        assert served.select("ts", "open", "high", "low", "close").equals(
            expected.select("ts", "open", "high", "low", "close")
        )
        assert served["volume"].to_list() == pytest.approx(expected["volume"].to_list(), rel=1e-12)


def test_advancing_the_clock_one_step_closes_exactly_one_new_hourly_candle() -> None:
    venue = SimVenue(seed=DEFAULT_SEED, count=DEFAULT_COUNT)
    before_now = venue.clock.now()
    window_start = before_now - 48 * HOUR
    before = {
        m.symbol: venue.ohlcv(m.symbol, "1h", window_start, before_now + HOUR * 100)
        for m in venue.markets()
    }
    after_now = venue.clock.advance()
    assert after_now == before_now + HOUR
    for symbol, old in before.items():
        new = venue.ohlcv(symbol, "1h", window_start, after_now + HOUR * 100)
        assert new.height == old.height + 1
        assert new.head(old.height).equals(old)  # closed candles never change
        assert new["ts"][-1] == before_now


def test_a_window_that_ends_before_it_starts_is_empty(sim: SimVenue) -> None:
    now = sim.clock.now()
    assert sim.ohlcv("BTC/USD:USD", "1h", now, now - HOUR).is_empty()
    assert sim.ohlcv("BTC/USD:USD", "1h", now + HOUR, now + 5 * HOUR).is_empty()


def test_an_unknown_market_or_timeframe_is_a_data_error(sim: SimVenue) -> None:
    now = sim.clock.now()
    with pytest.raises(DataError, match="NOPE/USD:USD"):
        sim.ohlcv("NOPE/USD:USD", "1h", now - HOUR, now)
    with pytest.raises(DataError, match="15m"):
        sim.ohlcv("BTC/USD:USD", "15m", now - HOUR, now)


def test_a_clock_past_the_generated_horizon_is_refused_with_the_fix() -> None:
    end = EPOCH + HORIZON_HOURS * HOUR
    venue = SimVenue(seed=DEFAULT_SEED, count=DEFAULT_COUNT, start=end)
    assert venue.tickers()  # the last hour is still served
    venue.clock.advance()
    with pytest.raises(VenueError, match=r"start a fresh database \(--db\)"):
        venue.tickers()


def test_the_default_clock_starts_after_enough_history_for_the_daily_200_ema(
    sim: SimVenue,
) -> None:
    assert isinstance(sim.clock.now(), datetime)
    assert sim.clock.now().utcoffset() == timedelta(0)
    assert len(everything(sim, "BTC/USD:USD", "1d")) >= 200
