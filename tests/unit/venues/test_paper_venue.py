"""PaperOrderVenue on a feed: orders fill as the feed's clock moves, with funding settled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.market import MarketInfo, Ticker
from core.orders import OrderRequest, OrderSide, OrderStatus, OrderType, OrderVenue
from venues.base import SimulatedClock
from venues.paper import (
    DuplicateClientIdError,
    FundingSchedule,
    PaperConfig,
    PaperOrderVenue,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
BTC = MarketInfo("BTC/USD:USD", "PF_XBTUSD", "BTC", "USD", 1.0, 0.5, 0.001, 0.001, 50.0)


class StepFeed:
    """A MarketDataVenue with one market whose closes are given bar by bar."""

    name = "step"

    def __init__(self, closes: list[float], start_bar: int = 1) -> None:
        ts = [START + i * H for i in range(len(closes))]
        opens = [closes[0], *closes[:-1]]
        self.frame = pl.DataFrame(
            {
                "ts": ts,
                "open": opens,
                "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
                "low": [min(o, c) for o, c in zip(opens, closes, strict=True)],
                "close": closes,
                "volume": [10.0] * len(closes),
            }
        ).with_columns(pl.col("ts").dt.cast_time_unit("us"))
        self.clock = SimulatedClock(START + start_bar * H, H)

    def markets(self) -> list[MarketInfo]:
        return [BTC]

    def tickers(self) -> dict[str, Ticker]:
        return {}

    def ohlcv(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> pl.DataFrame:
        until = min(until, self.clock.now())
        return self.frame.filter((pl.col("ts") >= since) & (pl.col("ts") + H <= until))

    def close(self) -> None:
        """Nothing to release."""


def test_paper_venue_is_an_order_venue():
    assert isinstance(PaperOrderVenue.on_feed(StepFeed([100.0, 100.0])), OrderVenue)


def test_orders_fill_only_when_the_feed_clock_reaches_the_bar():
    feed = StepFeed([100.0, 100.0, 96.0, 90.0, 92.0], start_bar=2)
    venue = PaperOrderVenue.on_feed(feed, PaperConfig(maker_fee=0.0, taker_fee=0.0))
    venue.submit(OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.MARKET, 1.0, "entry"))
    stop = OrderRequest(
        BTC.symbol,
        OrderSide.SELL,
        OrderType.STOP,
        1.0,
        "stop",
        trigger_price=93.0,
        reduce_only=True,
    )
    venue.submit(stop)
    feed.clock.advance()  # bar closing at 96: above the stop
    assert venue.order_by_client_id("stop").status is OrderStatus.OPEN
    feed.clock.advance()  # bar from 96 down to 90: crosses 93
    assert venue.order_by_client_id("stop").status is OrderStatus.FILLED
    assert venue.positions() == []
    (entry, exit_) = venue.fills()
    assert (entry.price, exit_.price) == (100.0, 93.0)
    assert exit_.ts == START + 4 * H  # stamped at the close of the bar that reached it


def test_duplicate_client_id_is_raised_as_a_venue_error():
    venue = PaperOrderVenue.on_feed(StepFeed([100.0, 100.0]))
    limit = OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.LIMIT, 1.0, "dup", price=90.0)
    venue.submit(limit)
    with pytest.raises(DuplicateClientIdError):
        venue.submit(limit)
    assert len(venue.open_orders()) == 1


def test_funding_is_settled_at_its_timestamp_at_that_bar_close():
    feed = StepFeed([100.0, 100.0, 110.0, 110.0])
    schedule = FundingSchedule({BTC.symbol: [(START + 3 * H, 0.001)]})
    venue = PaperOrderVenue.on_feed(
        feed, PaperConfig(maker_fee=0.0, taker_fee=0.0), funding=schedule
    )
    venue.submit(OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.MARKET, 2.0, "long"))
    feed.clock.advance(), feed.clock.advance()
    venue.balance()  # catches up
    assert venue.engine.funding_paid == pytest.approx(-2 * 110.0 * 0.001)


@pytest.mark.realdata
def test_real_binance_candles_drive_a_stop_with_their_funding(real_data_dir: Path):
    from venues.replay import ReplayVenue

    feed = ReplayVenue(real_data_dir, start=datetime(2025, 11, 1, tzinfo=UTC))
    bases = {m.symbol: m.base for m in feed.markets()}
    funding = FundingSchedule.from_binance_dir(real_data_dir, bases)
    venue = PaperOrderVenue.on_feed(feed, PaperConfig(initial_cash=100_000.0), funding=funding)
    btc = next(m for m in feed.markets() if m.base == "BTC")
    entry = venue.submit(OrderRequest(btc.symbol, OrderSide.BUY, OrderType.MARKET, 0.01, "e"))
    mark = venue.engine.mark(btc.symbol)
    assert entry.status is OrderStatus.FILLED and mark is not None
    trigger = round(mark * 0.97 / btc.tick_size) * btc.tick_size
    venue.submit(
        OrderRequest(
            btc.symbol,
            OrderSide.SELL,
            OrderType.STOP,
            0.01,
            "s",
            trigger_price=trigger,
            reduce_only=True,
        )
    )
    for _ in range(14):  # two weeks, a day at a time (the venue replays each hour), or stopped
        for _ in range(24):
            feed.clock.advance()
        if venue.order_by_client_id("s").status is not OrderStatus.OPEN:
            break
    stop_fill = venue.fills()[-1]
    assert stop_fill.client_id == "s" and stop_fill.price <= trigger  # early Nov 2025 fell 3 %
    assert venue.positions() == []
    assert venue.engine.funding_paid != 0.0  # 8-hourly Binance rates were settled
    ledger = 100_000.0 + venue.engine.realised_pnl - venue.engine.fees_paid
    assert venue.engine.cash == pytest.approx(ledger + venue.engine.funding_paid)
