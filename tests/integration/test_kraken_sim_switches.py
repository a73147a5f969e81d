"""The simulator's exchange switches, driven through unmodified ccxt and the Kraken order venue:
partial stop fills, wrong-side stops, late fill reports, the account log, stop-limit orders,
Kraken's triggerSignal enum, and changes made behind the bot's back."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import ccxt
import pytest

from core.market import MarketInfo
from core.orders import OrderRequest, OrderSide, OrderStatus, OrderType, PositionSide
from tests.support.feeds import CandleFeed, hourly_candles
from venues.kraken import KrakenRefusedError, make_client
from venues.kraken_orders import KrakenOrderVenue
from venues.kraken_sim import Faults, RunningSim, start_in_thread
from venues.paper import PaperConfig

KEY = "switch-key"
SECRET = base64.b64encode(b"the secret of the switch tests, 48 bytes long .....").decode()
START = datetime(2025, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
HISTORY = 48
BTC = MarketInfo("BTC/USD:USD", "BTCUSD", "BTC", "USD", 1.0, 0.5, 0.0001, 0.0001, 50.0)
ETH = MarketInfo("ETH/USD:USD", "ETHUSD", "ETH", "USD", 1.0, 0.05, 0.001, 0.001, 20.0)
# bar by bar after the clock's start (each opens at the previous close, wicks 5 beyond)
BTC_PATH = [59_000.0, 58_000.0, 57_500.0, 60_500.0, 61_000.0]


def feed() -> CandleFeed:
    frames = {
        BTC.symbol: hourly_candles([60_000.0] * HISTORY + BTC_PATH, 5.0, START),
        ETH.symbol: hourly_candles([3_000.0] * (HISTORY + len(BTC_PATH)), 1.0, START),
    }
    return CandleFeed([BTC, ETH], frames, START + HISTORY * H, name="switches", half_spread=0.5)


def serve(**faults_kw: object) -> RunningSim:
    faults = Faults(timeout_s=0.8, **faults_kw)  # type: ignore[arg-type]
    return start_in_thread(feed(), KEY, SECRET, faults=faults, paper=PaperConfig(initial_cash=1e5))


def venue_on(sim: RunningSim, cost_budget: int | None = 450) -> KrakenOrderVenue:
    exchange = make_client(api_url=sim.url, api_key=KEY, api_secret=SECRET, cost_budget=cost_budget)
    exchange.enableRateLimit = False
    return KrakenOrderVenue(exchange, clock=sim.exchange.feed.clock)


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    with serve() as running:
        yield running


@pytest.fixture
def venue(sim: RunningSim) -> Iterator[KrakenOrderVenue]:
    kraken = venue_on(sim)
    yield kraken
    kraken.exchange.session.close()


def market(cid: str, side: OrderSide, size: float, symbol: str = BTC.symbol, **kw) -> OrderRequest:
    return OrderRequest(symbol, side, OrderType.MARKET, size, cid, **kw)


def stop(cid: str, size: float, trigger: float, price: float | None = None) -> OrderRequest:
    return OrderRequest(BTC.symbol, OrderSide.SELL, OrderType.STOP, size, cid, price, trigger, True)


def position_size(venue: KrakenOrderVenue, symbol: str = BTC.symbol) -> float:
    return next((p.size for p in venue.positions() if p.symbol == symbol), 0.0)


# -- a triggered stop that fills only partly ------------------------------------------------------


def test_a_partly_filled_stop_keeps_working_until_it_has_filled(venue, sim):
    venue.submit(market("entry", OrderSide.BUY, 0.4))
    placed = venue.submit(stop("sl", 0.4, 59_500.0))
    sim.faults.partial_stop_fills(0.5, remainder="keep")
    sim.advance(1)  # the bar falls through 59.5k: half the stop fills
    (working,) = venue.open_orders()
    assert (working.venue_order_id, working.filled, working.size) == (
        placed.venue_order_id,
        0.2,
        0.4,
    )
    assert position_size(venue) == pytest.approx(0.2)
    sim.advance(1)  # the remainder trades at the next bar's open
    assert venue.open_orders() == [] and position_size(venue) == 0.0
    assert [f.size for f in venue.fills(since=START)] == [0.4, 0.2, 0.2]


def test_a_partly_filled_stop_has_its_remainder_cancelled_like_krakens_ioc(venue, sim):
    venue.submit(market("entry", OrderSide.BUY, 0.4))
    venue.submit(stop("sl", 0.4, 59_500.0))
    sim.faults.partial_stop_fills(0.5, remainder="cancel")
    sim.advance(1)
    assert venue.open_orders() == []  # nothing left working
    assert position_size(venue) == pytest.approx(0.2)  # while half the position is unprotected
    ended = venue.order_by_client_id("sl")  # still inside /orders/status' 5 s window
    assert (ended.status, ended.filled, ended.size) == (OrderStatus.CANCELLED, 0.2, 0.4)


# -- a stop whose trigger the mark has already passed -------------------------------------------


def test_a_wrong_side_stop_is_refused_with_krakens_word_when_switched_on(venue, sim):
    venue.submit(market("entry", OrderSide.BUY, 0.1))
    sim.faults.refuse_wrong_side_stops()
    with pytest.raises(KrakenRefusedError) as refused:
        venue.submit(stop("sl-high", 0.1, 60_500.0))  # above the 60k mark: would fire at once
    assert refused.value.reason == "invalidPrice"
    take = OrderRequest(
        BTC.symbol, OrderSide.SELL, OrderType.TAKE_PROFIT, 0.1, "tp-low", None, 59_000.0, True
    )
    with pytest.raises(KrakenRefusedError):
        venue.submit(take)
    assert [o.client_id for o in sim.engine.orders()] == ["entry"]
    assert venue.submit(stop("sl-ok", 0.1, 59_500.0)).status is OrderStatus.OPEN
    sim.faults.accept_wrong_side_stops()  # Kraken's default here: placed, fires at once
    assert venue.submit(stop("sl-high-2", 0.1, 60_500.0)).status is OrderStatus.OPEN


def test_a_wrong_side_stop_accepted_triggers_at_the_next_price(venue, sim):
    venue.submit(market("entry", OrderSide.BUY, 0.1))
    venue.submit(stop("sl-high", 0.1, 60_500.0))
    sim.advance(1)
    assert position_size(venue) == 0.0
    assert venue.fills(since=START)[-1].price == 60_000.0  # the bar's open, below the trigger


# -- fills reported late --------------------------------------------------------------------------


def test_a_fill_reported_only_after_two_more_fills_requests(venue, sim):
    sim.faults.delay_fill_reports(requests=2)
    assert venue.submit(market("late", OrderSide.BUY, 0.1)).status is OrderStatus.FILLED
    assert venue.fills() == []
    assert position_size(venue) == 0.1  # /openpositions already shows it
    assert venue.fills() == []
    (fill,) = venue.fills()
    assert (fill.client_id, fill.size) == ("late", 0.1)


def test_a_fill_reported_only_a_bar_later(venue, sim):
    sim.faults.delay_fill_reports(bars=1)
    venue.submit(market("late", OrderSide.BUY, 0.1))
    assert venue.fills() == [] and venue.fills() == []
    assert venue.order_by_client_id("late").status is OrderStatus.FILLED  # from /orders/status
    sim.advance(1)
    assert [f.client_id for f in venue.fills()] == ["late"]


# -- the account log ---------------------------------------------------------------------------


def test_an_exit_older_than_the_fills_look_back_is_found_in_the_account_log():
    with serve(rate_budget=None) as sim:
        venue = venue_on(sim, cost_budget=None)
        entry = venue.submit(market("entry", OrderSide.BUY, 0.1))
        sim.advance(1)
        exit_ = venue.submit(market("exit", OrderSide.SELL, 0.1, reduce_only=True))
        for i in range(110):  # push the exit off /fills' first page
            side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
            venue.submit(market(f"eth-{i}", side, 0.01, symbol=ETH.symbol))
        assert "exit" not in {f.client_id for f in venue.fills()}
        booked = venue.realised_pnl(BTC.symbol, since=START)
        assert [e.closed_position for e in booked] == [False, True]
        opened, closed = booked
        assert (opened.position_before, opened.position_after, opened.realised_pnl) == (0, 0.1, 0)
        engine_exit = next(
            f for f in sim.engine.fills() if f.venue_order_id == exit_.venue_order_id
        )
        assert closed.fill_id == engine_exit.fill_id
        assert closed.realised_pnl == pytest.approx(0.1 * (engine_exit.price - 60_000.0))
        assert closed.fee == pytest.approx(engine_exit.fee)
        assert entry.venue_order_id != exit_.venue_order_id
        assert venue.realised_pnl(BTC.symbol, since=sim.now() + H) == []
        ledger = venue.exchange.fetch_ledger()  # ccxt's own parser reads the same answer
        assert {e["type"] for e in ledger} == {"trade"} and len(ledger) == 112
        venue.exchange.session.close()


# -- stop-limit and take-profit-limit ----------------------------------------------------------


def test_a_stop_limit_fills_at_its_trigger_when_its_limit_allows(venue, sim):
    venue.submit(market("entry", OrderSide.BUY, 0.1))
    placed = venue.submit(stop("sl-limit", 0.1, 59_500.0, price=59_400.0))
    (listed,) = venue.open_orders()
    assert (listed.type, listed.trigger_price, listed.price) == (OrderType.STOP, 59_500.0, 59_400.0)
    assert (placed.price, placed.trigger_price) == (59_400.0, 59_500.0)
    sim.advance(1)
    assert position_size(venue) == 0.0
    assert venue.fills(since=START)[-1].price == 59_500.0


def test_a_stop_limit_that_gapped_past_its_limit_rests_until_the_price_comes_back(venue, sim):
    venue.submit(market("entry", OrderSide.BUY, 0.1))
    sim.advance(1)  # the mark is now 59k, below both prices
    venue.submit(stop("sl-gap", 0.1, 59_500.0, price=59_400.0))
    sim.advance(1)  # triggered, but the bar opened at 59k: below the limit, it rests
    assert position_size(venue) == 0.1
    assert [o.client_id for o in venue.open_orders()] == ["sl-gap"]
    sim.advance(1)  # 58k -> 57.5k: never back at 59.4k
    assert position_size(venue) == 0.1
    sim.advance(1)  # 57.5k -> 60.5k passes 59.4k: the limit fills at its price
    assert position_size(venue) == 0.0
    assert venue.fills(since=START)[-1].price == 59_400.0


def test_a_take_profit_limit_is_sent_and_read_back_with_both_prices(venue, sim):
    venue.submit(market("entry", OrderSide.BUY, 0.1))
    take = OrderRequest(
        BTC.symbol, OrderSide.SELL, OrderType.TAKE_PROFIT, 0.1, "tp-limit", 61_900.0, 62_000.0, True
    )
    venue.submit(take)
    (raw,) = venue.exchange.fetch_open_orders()
    assert (raw["info"]["orderType"], raw["info"]["stopPrice"], raw["info"]["limitPrice"]) == (
        "take_profit",
        "62000.0",
        "61900.0",
    )
    (listed,) = venue.open_orders()
    assert (listed.type, listed.trigger_price, listed.price) == (
        OrderType.TAKE_PROFIT,
        62_000.0,
        61_900.0,
    )


# -- triggerSignal ---------------------------------------------------------------------------------


def test_only_krakens_trigger_signals_are_accepted(venue, sim):
    venue.submit(market("entry", OrderSide.BUY, 0.1))
    ccxt_client = venue.exchange
    params = {"triggerPrice": 57_000.0, "reduceOnly": True}
    with pytest.raises(ccxt.BadRequest):
        ccxt_client.create_order(
            BTC.symbol, "market", "sell", 0.1, None, {**params, "triggerSignal": "spot"}
        )
    placed = ccxt_client.create_order(
        BTC.symbol, "market", "sell", 0.1, None, {**params, "triggerSignal": "index"}
    )
    (status,) = ccxt_client.fetch_orders(params={"orderIds": [placed["id"]]})
    assert status["info"]["order"]["priceTriggerOptions"]["triggerSignal"] == "SPOT_PRICE"
    assert len(sim.engine.open_orders()) == 1


# -- changes behind the bot's back -------------------------------------------------------------


def test_orders_and_positions_changed_by_hand_are_seen_by_the_venue(venue, sim):
    sim.exchange.open_position_by_hand("BTC/USD:USD", "sell", 0.2)
    (short,) = venue.positions()
    assert (short.side, short.size) == (PositionSide.SHORT, 0.2)
    rested = sim.exchange.place_by_hand("PF_ETHUSD", "buy", 1.0, order_type="lmt", limit_price=2900)
    (listed,) = venue.open_orders()
    assert (listed.client_id, listed.symbol, listed.price) == (None, ETH.symbol, 2900.0)
    assert sim.exchange.cancel_by_hand(str(rested["order_id"]))["status"] == "cancelled"
    assert venue.open_orders() == []
    venue.submit(
        OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.STOP, 0.2, "bot-sl", None, 61_000.0, True)
    )
    assert sim.exchange.cancel_all_by_hand(BTC.symbol)["status"] == "cancelled"
    assert venue.open_orders() == []
    assert sim.exchange.close_position_by_hand(BTC.symbol) is not None
    assert venue.positions() == []
    assert sim.exchange.close_position_by_hand(BTC.symbol) is None  # already flat
