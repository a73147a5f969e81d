"""Unmodified ccxt krakenfutures against the simulator: every call the bot makes, and its faults."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import ccxt
import pytest

from core.market import MarketInfo
from tests.support.feeds import CandleFeed, hourly_candles
from venues.kraken_sim import FaultKind, Faults, RunningSim, point_ccxt_at, start_in_thread
from venues.paper import PaperConfig

KEY = "sim-key"
SECRET = base64.b64encode(
    b"sixty-four bytes of secret material for the kraken simulator...."
).decode()
START = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
HISTORY = 2600  # closed bars before the clock: more than one 2000-candle page
BTC = MarketInfo("BTC/USD:USD", "BTCUSD", "BTC", "USD", 1.0, 0.5, 0.0001, 0.0001, 50.0)
ETH = MarketInfo("ETH/USD:USD", "ETHUSD", "ETH", "USD", 1.0, 0.05, 0.001, 0.001, 20.0)
# BTC after the clock's start, bar by bar: a dip to 57k, a rally to 63k, a fall to 55k
BTC_FUTURE = [60_000.0, 59_000.0, 57_000.0, 58_000.0, 61_000.0, 63_000.0, 60_000.0, 55_000.0]


def fake_feed() -> CandleFeed:
    """A MarketDataVenue: two markets, 2600 bars of history, then a scripted BTC path."""
    history = [60_000.0 + (i % 20) * 10.0 for i in range(HISTORY - 1)] + [60_000.0]
    btc, eth = history + BTC_FUTURE, [3_000.0 + (i % 10) for i in range(HISTORY + 50)]
    frames = {
        BTC.symbol: hourly_candles(btc, 5.0, START, [5.0 + i % 7 for i in range(len(btc))]),
        ETH.symbol: hourly_candles(eth, 1.0, START, [5.0 + i % 7 for i in range(len(eth))]),
    }
    return CandleFeed([BTC, ETH], frames, START + HISTORY * H, name="fake", half_spread=0.5)


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    faults = Faults(timeout_s=0.8)
    paper = PaperConfig(initial_cash=100_000.0)
    with start_in_thread(fake_feed(), KEY, SECRET, faults=faults, paper=paper) as running:
        yield running


def client(sim: RunningSim, secret: str = SECRET, timeout_ms: int = 3_000) -> ccxt.krakenfutures:
    # ccxt's own throttle (600 ms a request) is off: the simulator enforces Kraken's budget
    exchange = ccxt.krakenfutures(
        {"apiKey": KEY, "secret": secret, "enableRateLimit": False, "timeout": timeout_ms}
    )
    return point_ccxt_at(exchange, sim.url)


@pytest.fixture
def kraken(sim: RunningSim) -> ccxt.krakenfutures:
    exchange = client(sim)
    exchange.load_markets()
    return exchange


def test_sandbox_mode_then_point_keeps_every_url_local(sim):
    exchange = ccxt.krakenfutures({"apiKey": KEY, "secret": SECRET})
    exchange.set_sandbox_mode(True)
    point_ccxt_at(exchange, sim.url)
    api = exchange.urls["api"]
    assert all(api[k].startswith(sim.url) for k in ("public", "private", "charts", "history"))
    assert api["feeschedules"].startswith(sim.url)  # sandbox mode had dropped this one


# -- market data --------------------------------------------------------------------------


def test_load_markets_lists_linear_perpetuals_with_kraken_ids_and_precision(kraken):
    btc = kraken.market("BTC/USD:USD")
    assert set(kraken.symbols) == {"BTC/USD:USD", "ETH/USD:USD"}
    assert (btc["id"], btc["swap"], btc["linear"], btc["active"]) == ("PF_XBTUSD", True, True, True)
    assert btc["precision"] == {"amount": 0.0001, "price": 0.5}
    assert btc["info"]["marginLevels"][0]["initialMargin"] == pytest.approx(1 / 50)


def test_fetch_tickers_shows_the_feed_prices(kraken):
    tickers = kraken.fetch_tickers()
    assert tickers["BTC/USD:USD"]["last"] == 60_000.0
    assert tickers["ETH/USD:USD"]["bid"] < tickers["ETH/USD:USD"]["ask"]


def test_fetch_ohlcv_pages_through_more_than_2000_candles(kraken, sim):
    since = int(START.timestamp() * 1000)
    rows: list[list[float]] = []
    for _ in range(5):  # bounded: two pages are expected
        page = kraken.fetch_ohlcv("BTC/USD:USD", "1h", since, 2000)
        if not page:
            break
        rows.extend(page)
        since = int(page[-1][0]) + 3_600_000
    assert len(rows) == HISTORY
    times = [r[0] for r in rows]
    assert times == sorted(set(times))
    assert times[-1] == int((sim.now() - H).timestamp() * 1000)  # the last closed bar, no more
    assert rows[0][1:5] == [60_000.0, 60_005.0, 59_995.0, 60_000.0]


# -- account --------------------------------------------------------------------------------


def test_fetch_balance_reads_the_flex_wallet(kraken):
    usd = kraken.fetch_balance()["USD"]
    assert (usd["total"], usd["free"]) == (100_000.0, 100_000.0)


def test_market_entry_fills_and_shows_in_positions_trades_and_balance(kraken):
    order = kraken.create_order("BTC/USD:USD", "market", "buy", 0.05, params={"cliOrdId": "e-1"})
    assert (order["status"], order["filled"], order["clientOrderId"]) == ("closed", 0.05, "e-1")
    (position,) = kraken.fetch_positions()
    assert (position["symbol"], position["side"], position["contracts"]) == (
        "BTC/USD:USD",
        "long",
        0.05,
    )
    (trade,) = kraken.fetch_my_trades()
    assert (trade["order"], trade["takerOrMaker"], trade["info"]["cliOrdId"]) == (
        order["id"],
        "taker",
        "e-1",
    )
    assert trade["fee"]["cost"] == pytest.approx(0.05 * 60_000 * 0.0005)
    assert kraken.fetch_balance()["USD"]["total"] == pytest.approx(100_000 - 1.5)


def test_limit_order_rests_then_fills_when_a_bar_reaches_it(kraken, sim):
    order = kraken.create_order("BTC/USD:USD", "limit", "buy", 0.1, 58_000, {"cliOrdId": "l-1"})
    assert order["status"] == "open"
    (listed,) = kraken.fetch_open_orders()
    assert (listed["id"], listed["type"], listed["amount"]) == (order["id"], "limit", 0.1)
    # ccxt 4.5.90 leaves "price" empty for open orders: the limit is only in info
    assert (listed["price"], listed["info"]["limitPrice"]) == (None, "58000.0")  # as Kraken
    sim.advance(3)  # 60k -> 59k -> 57k: through 58k
    assert kraken.fetch_open_orders() == []
    (trade,) = kraken.fetch_my_trades()
    assert (trade["price"], trade["takerOrMaker"]) == (58_000, "maker")


# -- protective orders ------------------------------------------------------------------------


def test_stop_loss_and_take_profit_are_reduce_only_triggers_and_the_stop_fills(kraken, sim):
    kraken.create_order("BTC/USD:USD", "market", "buy", 0.1)
    stop = kraken.create_order(
        "BTC/USD:USD", "market", "sell", 0.1, params={"stopLossPrice": 56_000, "cliOrdId": "sl"}
    )
    take = kraken.create_order(
        "BTC/USD:USD", "market", "sell", 0.1, params={"takeProfitPrice": 64_000, "cliOrdId": "tp"}
    )
    also = kraken.create_order(
        "BTC/USD:USD",
        "market",
        "sell",
        0.05,
        params={"triggerPrice": 56_500, "reduceOnly": True, "triggerSignal": "mark"},
    )
    for order in (stop, take, also):
        assert order["status"] == "open" and order["reduceOnly"] is True
    listed = {o["clientOrderId"]: o for o in kraken.fetch_open_orders()}
    assert listed["sl"]["type"] == "stop" and listed["sl"]["triggerPrice"] == 56_000
    assert listed["tp"]["type"] == "take_profit" and listed["tp"]["triggerPrice"] == 64_000
    sim.advance(8)  # ... 63k (below 64k), then the fall to 55k crosses both stops
    fills = kraken.fetch_my_trades()
    assert sorted(t["price"] for t in fills[1:]) == [56_000, 56_500]  # at their triggers
    assert kraken.fetch_positions() == []
    assert [o["clientOrderId"] for o in kraken.fetch_open_orders()] == ["tp"]  # bot cancels it


def test_fetch_order_reads_orders_status(kraken):
    order = kraken.create_order("ETH/USD:USD", "limit", "buy", 1.0, 2_500, {"cliOrdId": "f-1"})
    fetched = kraken.fetch_order(order["id"])
    assert (fetched["id"], fetched["clientOrderId"], fetched["status"]) == (
        order["id"],
        "f-1",
        "open",
    )
    found = kraken.fetch_orders(params={"orderIds": [], "cliOrdIds": ["f-1"]})
    assert [o["id"] for o in found] == [order["id"]]


# -- cancels --------------------------------------------------------------------------------------


def test_cancel_by_id_by_client_ids_and_all(kraken):
    ids = [
        kraken.create_order("ETH/USD:USD", "limit", "buy", 1.0, 2_000 + i, {"cliOrdId": f"c-{i}"})[
            "id"
        ]
        for i in range(5)
    ]
    assert kraken.cancel_order(ids[0])["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        kraken.cancel_order(ids[0])  # already cancelled: Kraken answers notFound
    batch = kraken.cancel_orders([], params={"clientOrderIds": ["c-1", "c-2"]})
    assert [o["status"] for o in batch] == ["canceled", "canceled"]
    remaining = kraken.cancel_all_orders()
    # ccxt 4.5.90 parses cancelAllOrders' events with index 0 every time: N copies of the first
    assert [o["id"] for o in remaining] == [ids[3], ids[3]]
    assert kraken.fetch_open_orders() == []


def test_cancel_order_by_client_id_alone_sends_a_literal_none(kraken):
    kraken.create_order("ETH/USD:USD", "limit", "buy", 1.0, 2_000, {"cliOrdId": "n-1"})
    with pytest.raises(ccxt.OrderNotFound):
        kraken.cancel_order(None, params={"cliOrdId": "n-1"})  # order_id=None wins
    assert len(kraken.fetch_open_orders()) == 1


# -- refusals and faults ------------------------------------------------------------------------


def test_a_wrong_secret_is_refused_as_an_authentication_error(sim):
    wrong = client(sim, secret=base64.b64encode(b"not the simulator's secret").decode())
    wrong.load_markets()  # public
    with pytest.raises(ccxt.AuthenticationError):
        wrong.fetch_balance()
    assert sim.engine.orders() == []


def test_duplicate_client_id_and_off_grid_price_are_refused_like_kraken(kraken):
    kraken.create_order("ETH/USD:USD", "limit", "buy", 1.0, 2_000, {"cliOrdId": "d-1"})
    with pytest.raises(ccxt.DuplicateOrderId):
        kraken.create_order("ETH/USD:USD", "limit", "buy", 1.0, 2_000, {"cliOrdId": "d-1"})
    # ccxt rounds the price argument onto the grid; the venue's own field goes through as is
    with pytest.raises(ccxt.InvalidOrder):
        kraken.create_order("ETH/USD:USD", "limit", "buy", 1.0, 2_000, {"limitPrice": "2000.01"})


def test_injected_429_surfaces_as_a_rate_limit(kraken, sim):
    sim.faults.inject(FaultKind.RATE_LIMIT, endpoints=["openorders"])
    with pytest.raises((ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        kraken.fetch_open_orders()
    assert kraken.fetch_open_orders() == []


def test_krakens_cost_budget_refuses_the_51st_order_in_ten_seconds(kraken, sim):
    for i in range(50):
        kraken.create_order("ETH/USD:USD", "limit", "buy", 0.01, 1_000, {"cliOrdId": f"b-{i}"})
    with pytest.raises((ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        kraken.create_order("ETH/USD:USD", "limit", "buy", 0.01, 1_000, {"cliOrdId": "b-50"})
    assert len(sim.engine.open_orders()) == 50


def test_injected_5xx_and_timeout_surface_as_network_errors(sim):
    impatient = client(sim, timeout_ms=300)
    impatient.load_markets()
    sim.faults.inject(FaultKind.SERVER_ERROR, endpoints=["accounts"])
    with pytest.raises(ccxt.ExchangeNotAvailable):
        impatient.fetch_balance()
    sim.faults.inject(FaultKind.TIMEOUT, endpoints=["openpositions"])
    with pytest.raises(ccxt.RequestTimeout):
        impatient.fetch_positions()
    assert impatient.fetch_positions() == []


@pytest.mark.parametrize(
    ("status", "error"), [(503, ccxt.ExchangeNotAvailable), (0, ccxt.NetworkError)]
)
def test_lost_acknowledgement_leaves_one_order_and_a_resubmission_is_a_duplicate(
    kraken, sim, status, error
):
    sim.faults.inject(FaultKind.ACK_LOST, endpoints=["sendorder"], status=status)
    with pytest.raises(error):
        kraken.create_order("BTC/USD:USD", "limit", "buy", 0.01, 50_000, {"cliOrdId": "intent-7"})
    (placed,) = sim.engine.open_orders()  # accepted once, never resent by the client
    assert placed.client_id == "intent-7"
    with pytest.raises(ccxt.DuplicateOrderId):
        kraken.create_order("BTC/USD:USD", "limit", "buy", 0.01, 50_000, {"cliOrdId": "intent-7"})
    (listed,) = kraken.fetch_open_orders()  # what the gateway looks up instead
    assert (listed["id"], listed["clientOrderId"]) == (placed.venue_order_id, "intent-7")


def test_slow_acknowledgement_times_out_with_the_order_placed(sim):
    impatient = client(sim, timeout_ms=300)
    impatient.load_markets()
    sim.faults.inject(FaultKind.SLOW_ACK, endpoints=["sendorder"])
    with pytest.raises(ccxt.RequestTimeout):
        impatient.create_order("BTC/USD:USD", "market", "buy", 0.01, params={"cliOrdId": "s-1"})
    assert [f["info"]["cliOrdId"] for f in impatient.fetch_my_trades()] == ["s-1"]


def test_injected_rejection_and_partial_fills(kraken, sim):
    sim.faults.inject(FaultKind.REJECT, reason="insufficientAvailableFunds")
    with pytest.raises(ccxt.InsufficientFunds):
        kraken.create_order("BTC/USD:USD", "market", "buy", 0.01)
    sim.exchange.set_partial_fills(max_fill_fraction=0.5)
    order = kraken.create_order("BTC/USD:USD", "market", "buy", 0.1, params={"cliOrdId": "p-1"})
    # Kraken's sendStatus stays "placed" for an ioc remainder: ccxt reports it open
    assert (order["filled"], order["status"]) == (0.05, "open")
    assert kraken.fetch_positions()[0]["contracts"] == 0.05
