"""The kraken venue parses what unmodified ccxt returns from a Kraken-Futures-shaped server,
and the OHLCV refresh runs on it unchanged."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import ccxt
import polars as pl
import pytest

from core.cycle import CycleContext
from core.errors import (
    DataError,
    DuplicateClientIdError,
    RateLimitedError,
    VenueError,
    VenueRetryableError,
    VenueUnavailableError,
)
from schemas.config import OhlcvConfig
from store.db import open_store
from tasks.ohlcv import refresh
from venues.kraken import KrakenVenue, make_client, translate
from venues.kraken_sim import start_in_thread
from venues.replay import ReplayVenue

KEY = "venue-test-key"
SECRET = base64.b64encode(b"a secret only this test and its simulator share, 48 bytes").decode()


@pytest.fixture(scope="module")
def kraken(real_data_dir):
    feed = ReplayVenue(real_data_dir, start=datetime(2025, 12, 1, tzinfo=UTC))
    with start_in_thread(feed, KEY, SECRET) as sim:
        client = make_client(api_url=sim.url, api_key=KEY, api_secret=SECRET, rate_limit_ms=5)
        venue = KrakenVenue(client, clock=feed.clock)
        yield venue, feed, sim
        venue.close()


def test_markets_are_linear_usd_perpetuals_with_precision(kraken):
    venue, feed, _ = kraken
    markets = {m.symbol: m for m in venue.markets()}
    assert set(markets) == {m.symbol for m in feed.markets()}
    btc = markets["BTC/USD:USD"]
    assert btc.venue_symbol == "PF_XBTUSD"  # Kraken's name, ccxt's unified symbol
    assert btc.base == "BTC" and btc.settle == "USD"
    assert btc.tick_size > 0 and btc.lot_size > 0 and btc.max_leverage >= 1


def test_tickers_carry_spread_and_usd_volume(kraken):
    venue, feed, _ = kraken
    ours = venue.tickers()
    theirs = feed.tickers()
    btc = ours["BTC/USD:USD"]
    assert btc.bid < btc.ask
    assert btc.last == pytest.approx(theirs["BTC/USD:USD"].last)
    assert btc.volume_24h_usd == pytest.approx(theirs["BTC/USD:USD"].volume_24h_usd, rel=0.05)


@pytest.mark.parametrize("timeframe", ["1h", "4h", "1d"])
def test_ohlcv_pages_through_more_than_2000_candles_and_equals_the_source(kraken, timeframe):
    venue, feed, _ = kraken
    now = feed.clock.now()
    since = now - {"1h": timedelta(hours=2500), "4h": timedelta(days=300),
                   "1d": timedelta(days=200)}[timeframe]
    got = venue.ohlcv("BTC/USD:USD", timeframe, since, now)
    want = feed.ohlcv("BTC/USD:USD", timeframe, since, now)
    assert got.height == want.height > 0
    assert got["ts"].to_list() == want["ts"].to_list()
    for column in ("open", "high", "low", "close"):
        assert got[column].to_list() == pytest.approx(want[column].to_list(), rel=1e-6)
    # Only closed candles: the last one closed at or before the clock.
    step = got["ts"][1] - got["ts"][0]
    assert got["ts"][-1] + step <= now


def test_unknown_symbol_is_a_data_error_for_that_market(kraken):
    venue, feed, _ = kraken
    now = feed.clock.now()
    with pytest.raises(DataError, match="NOPE/USD:USD"):
        venue.ohlcv("NOPE/USD:USD", "1h", now - timedelta(hours=5), now)


def test_incremental_refresh_through_the_kraken_venue(kraken, tmp_path):
    venue, feed, sim = kraken
    db = tmp_path / "k.duckdb"
    config = OhlcvConfig(timeframes=("1h",), history_bars={"1h": 48, "4h": 10, "1d": 10})
    symbols = ["BTC/USD:USD", "ETH/USD:USD"]
    first = refresh(venue, symbols, CycleContext(1, "kraken", feed.clock.now(), db,
                                                 datetime.now(UTC)), config)
    assert first.errors == {} and first.candles_upserted == 2 * 48
    sim.advance()
    second = refresh(venue, symbols, CycleContext(2, "kraken", feed.clock.now(), db,
                                                  datetime.now(UTC)), config)
    assert second.candles_upserted == 2  # one new closed candle per market, nothing refetched
    with open_store(db) as con:
        stored = con.sql("SELECT symbol, count(*) AS n FROM candles GROUP BY 1").pl()
    assert stored.sort("symbol")["n"].to_list() == [49, 49]


@pytest.mark.parametrize(
    ("ccxt_error", "ours"),
    [
        (ccxt.RateLimitExceeded, RateLimitedError),
        (ccxt.DDoSProtection, RateLimitedError),
        (ccxt.OnMaintenance, VenueUnavailableError),
        (ccxt.ExchangeNotAvailable, VenueUnavailableError),
        (ccxt.RequestTimeout, VenueRetryableError),
        (ccxt.NetworkError, VenueRetryableError),
        (ccxt.DuplicateOrderId, DuplicateClientIdError),
        (ccxt.AuthenticationError, VenueError),
        (ccxt.InsufficientFunds, VenueError),
        (ccxt.InvalidOrder, VenueError),
        (ccxt.BadSymbol, VenueError),
        (ccxt.ExchangeError, VenueError),
    ],
)
def test_each_ccxt_error_translates_to_the_project_error_that_says_what_to_do(ccxt_error, ours):
    translated = translate(ccxt_error("boom"), "fetch_ohlcv BTC/USD:USD 1h")
    assert type(translated) is ours
    assert "fetch_ohlcv BTC/USD:USD 1h" in str(translated)
    retryable = ours in (RateLimitedError, VenueUnavailableError, VenueRetryableError)
    assert isinstance(translated, VenueRetryableError) is retryable


def test_frames_have_the_candles_schema(kraken):
    venue, feed, _ = kraken
    now = feed.clock.now()
    frame = venue.ohlcv("ETH/USD:USD", "1h", now - timedelta(hours=10), now)
    assert frame.schema["ts"] == pl.Datetime("us", "UTC")
    assert frame.columns == ["ts", "open", "high", "low", "close", "volume"]
