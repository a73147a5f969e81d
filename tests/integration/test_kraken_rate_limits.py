"""Under 30 % of requests answered 429, every read of a cycle succeeds on both Kraken adapters
(retried with backoff inside the client-side cost budget); orders and cancels are never retried."""

from __future__ import annotations

import base64
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import RateLimitedError
from core.market import MarketInfo
from core.orders import OrderRequest, OrderSide, OrderStatus, OrderType
from tests.support.feeds import CandleFeed, hourly_candles
from venues.kraken import KrakenVenue, make_client
from venues.kraken_orders import KrakenOrderVenue
from venues.kraken_sim import FaultKind, Faults, start_in_thread
from venues.paper import PaperConfig

log = logging.getLogger(__name__)

KEY = "limits-key"
SECRET = base64.b64encode(b"the secret of the rate-limit tests, 48 bytes ....").decode()
START = datetime(2025, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
HISTORY = 600
MARKETS = [
    MarketInfo("BTC/USD:USD", "BTCUSD", "BTC", "USD", 1.0, 0.5, 0.0001, 0.0001, 50.0),
    MarketInfo("ETH/USD:USD", "ETHUSD", "ETH", "USD", 1.0, 0.05, 0.001, 0.001, 20.0),
    MarketInfo("SOL/USD:USD", "SOLUSD", "SOL", "USD", 1.0, 0.01, 0.01, 0.01, 20.0),
]
CYCLES = 5


def feed() -> CandleFeed:
    prices = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0}
    frames = {
        m.symbol: hourly_candles(
            [prices[m.base] * (1 + 0.001 * (i % 7)) for i in range(HISTORY + CYCLES + 2)],
            prices[m.base] * 0.001,
            START,
        )
        for m in MARKETS
    }
    return CandleFeed(MARKETS, frames, START + HISTORY * H, name="limits", half_spread="tick")


def test_every_read_of_a_cycle_succeeds_with_30_percent_429s():
    faults = Faults(seed=11)
    with start_in_thread(feed(), KEY, SECRET, faults=faults, paper=PaperConfig()) as sim:
        client = make_client(api_url=sim.url, api_key=KEY, api_secret=SECRET, rate_limit_ms=5)
        markets = KrakenVenue(client, clock=sim.exchange.feed.clock)
        orders = KrakenOrderVenue(client, clock=sim.exchange.feed.clock)
        btc = "BTC/USD:USD"
        orders.submit(OrderRequest(btc, OrderSide.BUY, OrderType.MARKET, 0.01, "entry"))
        orders.submit(
            OrderRequest(btc, OrderSide.SELL, OrderType.STOP, 0.01, "stop", None, 50_000.0, True)
        )
        faults.inject(FaultKind.RATE_LIMIT, count=None, probability=0.3)
        stats = client.read_stats
        before = (stats.calls, stats.attempts)
        started = time.perf_counter()
        for _ in range(CYCLES):
            now = sim.exchange.feed.clock.now()
            assert {m.symbol for m in markets.markets()} == {m.symbol for m in MARKETS}
            tickers = markets.tickers()
            assert all(t.problem is None and t.last for t in tickers.values())
            for m in MARKETS:
                assert markets.ohlcv(m.symbol, "1h", now - 200 * H, now).height == 200
            assert orders.balance().equity > 0
            (position,) = orders.positions()
            assert position.size == 0.01
            assert [o.client_id for o in orders.open_orders()] == ["stop"]
            assert [f.client_id for f in orders.fills(since=START)] == ["entry"]
            sim.advance(1)
        elapsed = time.perf_counter() - started
        calls, attempts = stats.calls - before[0], stats.attempts - before[1]
        refused = attempts - calls
        assert stats.failures == 0
        assert refused > 0  # the faults did strike, and every one of them was retried past
        log.warning(
            "KRAKEN_429_READS cycles=%d reads=%d attempts=%d retries=%d backoff=%.2fs "
            "elapsed=%.2fs per_cycle=%.2fs",
            CYCLES,
            calls,
            attempts,
            refused,
            stats.backoff_s,
            elapsed,
            elapsed / CYCLES,
        )
        client.session.close()


def test_orders_and_cancels_are_never_retried_by_the_adapter():
    faults = Faults(seed=3)
    with start_in_thread(feed(), KEY, SECRET, faults=faults, paper=PaperConfig()) as sim:
        client = make_client(api_url=sim.url, api_key=KEY, api_secret=SECRET, rate_limit_ms=5)
        venue = KrakenOrderVenue(client, clock=sim.exchange.feed.clock)
        limit = OrderRequest("ETH/USD:USD", OrderSide.BUY, OrderType.LIMIT, 0.1, "l-1", 2_900.0)
        faults.inject(FaultKind.RATE_LIMIT, endpoints=["sendorder"])
        with pytest.raises(RateLimitedError):
            venue.submit(limit)
        assert sim.engine.orders() == []  # one refused request, no second one behind it
        placed = venue.submit(limit)
        faults.inject(FaultKind.RATE_LIMIT, endpoints=["cancelorder"])
        with pytest.raises(RateLimitedError):
            venue.cancel(placed.venue_order_id)
        assert [o.client_id for o in sim.engine.open_orders()] == ["l-1"]  # still working
        assert venue.cancel(placed.venue_order_id).status is OrderStatus.CANCELLED
        client.session.close()
