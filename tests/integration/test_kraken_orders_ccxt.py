"""KrakenOrderVenue through unmodified ccxt against the Kraken-Futures simulator on loopback."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from core.errors import (
    DuplicateClientIdError,
    RateLimitedError,
    VenueError,
    VenueRetryableError,
    VenueUnavailableError,
)
from core.market import MarketInfo
from core.orders import (
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderVenue,
    PositionSide,
)
from core.precision import round_away, round_to_step
from tests.support.feeds import CandleFeed, hourly_candles
from venues.kraken import make_client
from venues.kraken_limits import ReadRetry
from venues.kraken_orders import KrakenOrderVenue
from venues.kraken_sim import FaultKind, Faults, RunningSim, start_in_thread
from venues.paper import PaperConfig

log = logging.getLogger(__name__)

KEY = "orders-key"
SECRET = base64.b64encode(
    b"a secret the simulator and this test share, 64 bytes long ...."
).decode()
START = datetime(2025, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
HISTORY = 48
BTC = MarketInfo("BTC/USD:USD", "BTCUSD", "BTC", "USD", 1.0, 0.5, 0.0001, 0.0001, 50.0)
ETH = MarketInfo("ETH/USD:USD", "ETHUSD", "ETH", "USD", 1.0, 0.05, 0.001, 0.001, 20.0)
# BTC closes bar by bar after the clock's start: up through 62k (TP1), back below 60k (the
# break-even stop), never near 64k (TP2) or 57k (the first stop)
BTC_PATH = [60_500.0, 62_500.0, 61_500.0, 59_500.0, 59_000.0, 58_500.0]
WICK = 5.0
CASH = 100_000.0


def scripted_feed() -> CandleFeed:
    """A MarketDataVenue: flat history, then BTC follows BTC_PATH; ETH stays near 3000."""
    frames = {
        BTC.symbol: hourly_candles([60_000.0] * HISTORY + BTC_PATH, WICK, START),
        ETH.symbol: hourly_candles([3_000.0] * (HISTORY + len(BTC_PATH)), 1.0, START),
    }
    return CandleFeed([BTC, ETH], frames, START + HISTORY * H, name="scripted", half_spread=0.5)


def serve(feed, **faults_kw) -> RunningSim:
    faults = Faults(timeout_s=0.8, **faults_kw)
    return start_in_thread(feed, KEY, SECRET, faults=faults, paper=PaperConfig(initial_cash=CASH))


def venue_on(
    sim: RunningSim,
    *,
    secret: str = SECRET,
    timeout_ms: int = 3_000,
    cost_budget: int | None = 450,
    reads: ReadRetry | None = None,
) -> KrakenOrderVenue:
    """cost_budget=None for a simulator without Kraken's budget (throughput tests)."""
    exchange = make_client(
        api_url=sim.url,
        api_key=KEY,
        api_secret=secret,
        timeout_ms=timeout_ms,
        cost_budget=cost_budget,
        reads=reads,
    )
    # ccxt's own 600 ms throttle is for the real exchange; the simulator enforces Kraken's budget
    exchange.enableRateLimit = False
    return KrakenOrderVenue(exchange, clock=sim.exchange.feed.clock)


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    with serve(scripted_feed()) as running:
        yield running


@pytest.fixture
def venue(sim: RunningSim) -> Iterator[KrakenOrderVenue]:
    kraken = venue_on(sim)
    yield kraken
    kraken.exchange.session.close()


def req(
    client_id: str,
    kind: OrderType,
    side: OrderSide,
    size: float,
    *,
    symbol: str = BTC.symbol,
    price: float | None = None,
    trigger: float | None = None,
    reduce_only: bool = False,
) -> OrderRequest:
    return OrderRequest(symbol, side, kind, size, client_id, price, trigger, reduce_only)


def same_order(a: Order, b: Order) -> bool:
    """Equal in every field but ts (the submit answer and a later listing stamp differently)."""
    return replace(a, ts=None) == replace(b, ts=None)


# -- the port --------------------------------------------------------------------------------


def test_the_venue_implements_the_order_port(venue):
    assert isinstance(venue, OrderVenue)


def test_each_order_type_is_sent_as_kraken_expects_and_reads_back_the_same(venue, sim):
    entry = venue.submit(req("e-1", OrderType.MARKET, OrderSide.BUY, 0.3))
    limit = venue.submit(req("l-1", OrderType.LIMIT, OrderSide.BUY, 0.1, price=58_000.0))
    stop = venue.submit(
        req("s-1", OrderType.STOP, OrderSide.SELL, 0.3, trigger=57_000.0, reduce_only=True)
    )
    take = venue.submit(
        req("t-1", OrderType.TAKE_PROFIT, OrderSide.SELL, 0.1, trigger=64_000.0, reduce_only=True)
    )
    assert (entry.status, entry.filled, entry.type) == (OrderStatus.FILLED, 0.3, OrderType.MARKET)
    assert (limit.status, limit.price, limit.trigger_price) == (OrderStatus.OPEN, 58_000.0, None)
    assert (stop.type, stop.trigger_price, stop.reduce_only) == (OrderType.STOP, 57_000.0, True)
    assert (take.type, take.trigger_price, take.reduce_only) == (
        OrderType.TAKE_PROFIT,
        64_000.0,
        True,
    )
    # what the exchange recorded: the engine behind the simulator parsed the query strings
    engine = {o.client_id: o for o in sim.engine.orders()}
    assert engine["s-1"].type is OrderType.STOP and engine["s-1"].reduce_only
    assert engine["t-1"].type is OrderType.TAKE_PROFIT and engine["t-1"].reduce_only
    assert engine["l-1"].price == 58_000.0 and not engine["l-1"].reduce_only
    raw = {o["clientOrderId"]: o["info"] for o in venue.exchange.fetch_open_orders()}
    assert raw["s-1"]["triggerSignal"] == raw["t-1"]["triggerSignal"] == "mark_price"
    # read back through /openorders: types from Kraken's orderType, the limit from limitPrice
    listed = {o.client_id: o for o in venue.open_orders()}
    assert set(listed) == {"l-1", "s-1", "t-1"}
    for sent in (limit, stop, take):
        assert same_order(listed[sent.client_id], sent)
    assert venue.open_orders(ETH.symbol) == []
    assert {o.client_id for o in venue.open_orders(BTC.symbol)} == {"l-1", "s-1", "t-1"}


def test_a_trigger_order_asked_without_reduce_only_is_still_sent_reduce_only(venue, sim):
    venue.submit(req("e-2", OrderType.MARKET, OrderSide.BUY, 0.1))
    stop = venue.submit(req("s-2", OrderType.STOP, OrderSide.SELL, 0.1, trigger=57_000.0))
    assert stop.reduce_only
    (placed,) = sim.engine.open_orders()
    assert placed.reduce_only  # an exit can never add exposure, whatever the caller forgot


def test_a_partly_filled_market_order_reports_its_fill_and_the_cancelled_rest(venue, sim):
    sim.exchange.set_partial_fills(max_fill_fraction=0.5)
    order = venue.submit(req("p-1", OrderType.MARKET, OrderSide.BUY, 0.2))
    # ccxt says "open"; Kraken market orders are immediate-or-cancel: the rest is gone
    assert (order.status, order.filled, order.size) == (OrderStatus.CANCELLED, 0.1, 0.2)
    assert venue.open_orders() == []
    (position,) = venue.positions()
    assert position.size == 0.1


# -- looking an order up by client id ---------------------------------------------------------


def test_order_by_client_id_finds_open_recently_closed_and_long_filled_orders(venue, sim):
    resting = venue.submit(req("c-open", OrderType.LIMIT, OrderSide.BUY, 0.1, price=55_000.0))
    filled = venue.submit(req("c-market", OrderType.MARKET, OrderSide.BUY, 0.1))
    doomed = venue.submit(req("c-cancel", OrderType.LIMIT, OrderSide.BUY, 0.1, price=54_000.0))
    venue.cancel(doomed.venue_order_id)

    assert same_order(venue.order_by_client_id("c-open"), resting)  # step 1: /openorders
    recent = venue.order_by_client_id("c-cancel")  # step 2: /orders/status, same instant
    assert (recent.venue_order_id, recent.status) == (doomed.venue_order_id, OrderStatus.CANCELLED)
    found = venue.order_by_client_id("c-market")
    assert (found.venue_order_id, found.status, found.filled) == (
        filled.venue_order_id,
        OrderStatus.FILLED,
        0.1,
    )

    sim.advance(1)  # an hour later: far past Kraken's 5 s /orders/status window
    status_window = venue.exchange.fetch_orders(params={"orderIds": [], "cliOrdIds": ["c-market"]})
    assert status_window == []  # so what follows can only come from the fills (step 3)
    late = venue.order_by_client_id("c-market")
    assert (late.venue_order_id, late.client_id, late.status, late.type) == (
        filled.venue_order_id,
        "c-market",
        OrderStatus.FILLED,
        OrderType.MARKET,
    )
    assert (late.size, late.filled, late.symbol, late.side) == (0.1, 0.1, BTC.symbol, OrderSide.BUY)
    assert venue.order_by_client_id("c-open").status is OrderStatus.OPEN
    # the documented blind spot: unfilled, cancelled and out of the window looks never-sent
    assert venue.order_by_client_id("c-cancel") is None
    assert venue.order_by_client_id("never-sent") is None


def test_a_filled_orders_client_id_is_reusable_at_kraken_so_only_its_fills_prevent_a_duplicate(
    venue, sim
):
    venue.submit(req("reuse", OrderType.MARKET, OrderSide.BUY, 0.1))
    sim.advance(1)
    again = venue.submit(req("reuse", OrderType.MARKET, OrderSide.BUY, 0.1))  # accepted
    assert [o.client_id for o in sim.engine.orders()] == ["reuse", "reuse"]
    # the lookup reports the latest order carrying the id, found from its fills
    assert venue.order_by_client_id("reuse").venue_order_id == again.venue_order_id


def retry_after_unknown_outcome(
    venue: KrakenOrderVenue, request: OrderRequest
) -> tuple[Order, bool]:
    """What the gateway's retry does: look the client id up, send again only if nothing is
    found. Returns the order and whether it was sent again."""
    known = venue.order_by_client_id(request.client_id)
    if known is not None:
        return known, False
    return venue.submit(request), True


@pytest.mark.parametrize("status", [503, 0], ids=["answer-5xx", "connection-dropped"])
@pytest.mark.parametrize(
    "request_",
    [
        req("ack-market", OrderType.MARKET, OrderSide.BUY, 0.1),
        req("ack-limit", OrderType.LIMIT, OrderSide.BUY, 0.1, price=58_000.0),
        req("ack-stop", OrderType.STOP, OrderSide.SELL, 0.1, trigger=57_000.0, reduce_only=True),
    ],
    ids=lambda r: r.type.value,
)
@pytest.mark.parametrize("lookup_after_hours", [0, 2], ids=["at-once", "hours-later"])
def test_after_a_lost_acknowledgement_the_lookup_finds_exactly_the_one_order(
    venue, sim, status, request_, lookup_after_hours
):
    if request_.type is OrderType.STOP:
        venue.submit(req("pos", OrderType.MARKET, OrderSide.BUY, 0.1))
    sim.faults.inject(FaultKind.ACK_LOST, endpoints=["sendorder"], status=status)
    with pytest.raises(VenueRetryableError):
        venue.submit(request_)
    if lookup_after_hours:
        sim.advance(lookup_after_hours)
    order, resent = retry_after_unknown_outcome(venue, request_)
    assert not resent
    placed = [o for o in sim.engine.orders() if o.client_id == request_.client_id]
    assert len(placed) == 1  # exactly one order exists at the exchange
    assert order.venue_order_id == placed[0].venue_order_id
    assert (order.client_id, order.side, order.size) == (request_.client_id, request_.side, 0.1)
    if request_.type is OrderType.MARKET:
        assert (order.status, order.filled) == (OrderStatus.FILLED, 0.1)
    else:
        assert (order.status, order.type) == (OrderStatus.OPEN, request_.type)


def test_resending_an_open_order_is_refused_as_a_duplicate_client_id(venue, sim):
    venue.submit(req("dup", OrderType.LIMIT, OrderSide.BUY, 0.1, price=58_000.0))
    with pytest.raises(DuplicateClientIdError) as refused:
        venue.submit(req("dup", OrderType.LIMIT, OrderSide.BUY, 0.1, price=58_000.0))
    assert not isinstance(refused.value, VenueRetryableError)  # look up, do not retry
    assert "create_order dup" in str(refused.value)
    assert len(sim.engine.orders()) == 1


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_returns_the_cancelled_order_and_none_for_an_unknown_id(venue, sim):
    stop_pos = venue.submit(req("cx-e", OrderType.MARKET, OrderSide.BUY, 0.1))
    assert stop_pos.status is OrderStatus.FILLED
    take = venue.submit(
        req("cx-t", OrderType.TAKE_PROFIT, OrderSide.SELL, 0.1, trigger=64_000.0, reduce_only=True)
    )
    limit = venue.submit(req("cx-l", OrderType.LIMIT, OrderSide.BUY, 0.1, price=58_000.0))
    gone = venue.cancel(limit.venue_order_id)
    assert (gone.venue_order_id, gone.status, gone.type, gone.price) == (
        limit.venue_order_id,
        OrderStatus.CANCELLED,
        OrderType.LIMIT,
        58_000.0,
    )
    gone_tp = venue.cancel(take.venue_order_id)
    assert (gone_tp.status, gone_tp.type, gone_tp.trigger_price) == (
        OrderStatus.CANCELLED,
        OrderType.TAKE_PROFIT,
        64_000.0,
    )
    assert venue.open_orders() == []
    assert venue.cancel("00000000-0000-4000-8000-000000000000") is None
    sim.advance(1)
    assert venue.cancel(limit.venue_order_id) is None  # long cancelled: Kraken forgot it


def test_cancelling_an_order_that_has_already_filled_reports_it_filled(venue, sim):
    # a buy limit above the 60k mark trades at once: the cancel comes too late
    limit = venue.submit(req("late", OrderType.LIMIT, OrderSide.BUY, 0.1, price=60_200.0))
    assert (limit.status, limit.filled) == (OrderStatus.FILLED, 0.1)
    after = venue.cancel(limit.venue_order_id)
    assert (after.venue_order_id, after.status, after.filled) == (
        limit.venue_order_id,
        OrderStatus.FILLED,
        0.1,
    )
    assert len(venue.positions()) == 1


# -- account ---------------------------------------------------------------------------------


def test_positions_balance_and_fills_after_fills(venue, sim):
    assert venue.positions() == [] and venue.fills() == []
    assert venue.balance().equity == CASH and venue.balance().margin_used == 0.0
    venue.submit(req("a-long", OrderType.MARKET, OrderSide.BUY, 0.1))
    venue.submit(req("a-short", OrderType.MARKET, OrderSide.SELL, 1.0, symbol=ETH.symbol))
    sim.advance(1)  # BTC closes at 60.5k, ETH at 3k
    positions = {p.symbol: p for p in venue.positions()}
    btc, eth = positions[BTC.symbol], positions[ETH.symbol]
    assert (btc.side, btc.size, btc.entry_price, btc.mark_price) == (
        PositionSide.LONG,
        0.1,
        60_000.0,
        60_500.0,
    )
    assert btc.unrealized_pnl == pytest.approx(50.0)
    assert (eth.side, eth.size, eth.entry_price) == (PositionSide.SHORT, 1.0, 3_000.0)
    fees = 0.1 * 60_000 * 0.0005 + 1.0 * 3_000 * 0.0005
    balance = venue.balance()
    assert balance.equity == pytest.approx(CASH - fees + 50.0)
    assert balance.margin_used == pytest.approx(0.1 * 60_500 / 10 + 1.0 * 3_000 / 10)
    fills = venue.fills()
    assert [(f.client_id, f.symbol, f.side, f.size, f.price) for f in fills] == [
        ("a-long", BTC.symbol, OrderSide.BUY, 0.1, 60_000.0),
        ("a-short", ETH.symbol, OrderSide.SELL, 1.0, 3_000.0),
    ]
    assert sum(f.fee for f in fills) == pytest.approx(fees)
    venue.submit(req("a-later", OrderType.MARKET, OrderSide.SELL, 0.05))
    later = venue.fills(since=sim.now())
    assert [f.client_id for f in later] == ["a-later"]
    assert later[0].ts == sim.now() and later[0].price == 60_500.0


def test_fills_and_the_lookup_page_back_past_krakens_100_fill_page():
    with serve(scripted_feed(), rate_budget=None) as sim:
        venue = venue_on(sim, cost_budget=None)
        first_hour = sim.now()
        for i in range(60):
            side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
            venue.submit(req(f"old-{i}", OrderType.MARKET, side, 0.01, symbol=ETH.symbol))
        sim.advance(1)
        for i in range(60):
            side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
            venue.submit(req(f"new-{i}", OrderType.MARKET, side, 0.01, symbol=ETH.symbol))
        assert len(venue.fills()) == 100  # since=None: the latest page only
        every = venue.fills(since=first_hour)
        assert len(every) == 120 and len({f.fill_id for f in every}) == 120
        assert [f.client_id for f in every[:2]] == ["old-0", "old-1"]  # oldest first
        assert venue.order_by_client_id("old-0").status is OrderStatus.FILLED  # on page two
        venue.exchange.session.close()


# -- the protective lifecycle ------------------------------------------------------------------


def protect(venue: KrakenOrderVenue, market: MarketInfo, size: float, stop: float, tps):
    """A stop for the whole position and the TP ladder in equal parts (the last takes the rest)."""
    part = round_to_step(size / len(tps), market.lot_size)
    sizes = [part] * (len(tps) - 1) + [round_to_step(size - part * (len(tps) - 1), market.lot_size)]
    exit_ = {"symbol": market.symbol, "reduce_only": True}
    stop_order = venue.submit(
        req("life-sl", OrderType.STOP, OrderSide.SELL, size, trigger=stop, **exit_)
    )
    tp_orders = [
        venue.submit(
            req(f"life-tp{i}", OrderType.TAKE_PROFIT, OrderSide.SELL, s, trigger=p, **exit_)
        )
        for i, (p, s) in enumerate(zip(tps, sizes, strict=True), start=1)
    ]
    return stop_order, tp_orders


def advance_until(sim: RunningSim, venue: KrakenOrderVenue, client_id: str, limit: int) -> int:
    """Advance bar by bar until the order with client_id has filled; returns the bars used."""
    for bars in range(1, limit + 1):
        sim.advance(1)
        order = venue.order_by_client_id(client_id)
        if order is not None and order.status is OrderStatus.FILLED:
            return bars
    raise AssertionError(f"{client_id} did not fill within {limit} bars")


def run_lifecycle(venue, sim, market, size, stop, tps, breakeven, bars):
    """Entry -> stop + TP1..TP3 -> TP1 fills -> stop moved to break-even -> stop fills."""
    symbol = market.symbol
    entry = venue.submit(req("life-entry", OrderType.MARKET, OrderSide.BUY, size, symbol=symbol))
    assert entry.status is OrderStatus.FILLED
    stop_order, tp_orders = protect(venue, market, size, stop, tps)
    assert {o.client_id for o in venue.open_orders()} == {
        "life-sl",
        "life-tp1",
        "life-tp2",
        "life-tp3",
    }
    advance_until(sim, venue, "life-tp1", bars)
    (position,) = venue.positions()
    assert position.size == pytest.approx(size - tp_orders[0].size)
    # move the stop: cancel, then a new reduce-only stop at the entry for what is left
    assert venue.cancel(stop_order.venue_order_id).status is OrderStatus.CANCELLED
    moved = venue.submit(
        req(
            "life-sl-be",
            OrderType.STOP,
            OrderSide.SELL,
            position.size,
            symbol=symbol,
            trigger=breakeven,
            reduce_only=True,
        )
    )
    advance_until(sim, venue, "life-sl-be", bars)
    assert venue.positions() == []
    # no native OCO: the bot cancels the exits left behind
    for tp in tp_orders[1:]:
        assert venue.cancel(tp.venue_order_id).status is OrderStatus.CANCELLED
    assert venue.open_orders() == []
    fills = venue.fills(since=entry.ts)
    assert [f.client_id for f in fills] == ["life-entry", "life-tp1", "life-sl-be"]
    assert moved.venue_order_id == fills[-1].venue_order_id
    return fills


def test_full_lifecycle_entry_stop_and_tp_ladder_tp1_then_break_even_stop(venue, sim):
    fills = run_lifecycle(
        venue, sim, BTC, 0.3, 57_000.0, [62_000.0, 64_000.0, 66_000.0], 60_000.0, 6
    )
    assert [(f.side, f.size, f.price) for f in fills] == [
        (OrderSide.BUY, 0.3, 60_000.0),
        (OrderSide.SELL, 0.1, 62_000.0),  # TP1 at its trigger
        (OrderSide.SELL, 0.2, 60_000.0),  # the moved stop at break-even
    ]
    realised = 0.1 * 2_000.0
    fees = (0.3 * 60_000 + 0.1 * 62_000 + 0.2 * 60_000) * 0.0005
    assert venue.balance().equity == pytest.approx(CASH + realised - fees)
    assert venue.balance().margin_used == 0.0


# -- errors -------------------------------------------------------------------------------------


def test_429_5xx_and_timeout_are_retryable_and_nothing_was_placed(sim):
    venue = venue_on(sim, timeout_ms=300)
    order = req("err-1", OrderType.LIMIT, OrderSide.BUY, 0.1, price=58_000.0)
    cases = [
        (FaultKind.RATE_LIMIT, RateLimitedError),
        (FaultKind.SERVER_ERROR, VenueUnavailableError),
        (FaultKind.TIMEOUT, VenueRetryableError),
    ]
    for kind, error in cases:
        sim.faults.inject(kind, endpoints=["sendorder"])
        with pytest.raises(error) as raised:
            venue.submit(order)
        assert isinstance(raised.value, VenueRetryableError)
        assert "create_order err-1" in str(raised.value)
        assert sim.engine.orders() == []  # refused before anything was done
    assert venue.submit(order).status is OrderStatus.OPEN  # and the retry goes through
    venue.exchange.session.close()


def test_a_failed_lookup_raises_instead_of_answering_none(sim):
    # a None here would tell the gateway "never sent" and make it send a duplicate
    venue = venue_on(sim, reads=ReadRetry(attempts=3, backoff_s=0.01, backoff_max_s=0.02))
    for endpoint in ("openorders", "orders/status", "fills"):
        sim.faults.inject(FaultKind.SERVER_ERROR, count=None, endpoints=[endpoint])
        with pytest.raises(VenueUnavailableError, match="gave up after 3 attempts"):
            venue.order_by_client_id("anything")
        sim.faults.clear()
    venue.exchange.session.close()


def test_a_lookup_outlives_transient_failures_of_every_read(venue, sim):
    venue.submit(req("seen", OrderType.MARKET, OrderSide.BUY, 0.1))
    sim.advance(1)  # out of /orders/status' window: the lookup reads all three endpoints
    for endpoint in ("openorders", "orders/status", "fills"):
        sim.faults.inject(FaultKind.SERVER_ERROR, count=2, endpoints=[endpoint])
    found = venue.order_by_client_id("seen")
    assert (found.status, found.filled) == (OrderStatus.FILLED, 0.1)
    assert sim.faults.rules() == []  # every injected failure was met, and retried past


def test_krakens_cost_budget_refusal_is_a_rate_limit(sim):
    venue = venue_on(sim, cost_budget=None)  # no client-side budget: Kraken's own refuses
    for i in range(50):  # sendorder costs 10 of Kraken's 500 per 10 s
        venue.submit(req(f"b-{i}", OrderType.LIMIT, OrderSide.BUY, 0.01, price=50_000.0))
    with pytest.raises(RateLimitedError):
        venue.submit(req("b-50", OrderType.LIMIT, OrderSide.BUY, 0.01, price=50_000.0))
    assert len(sim.engine.open_orders()) == 50
    venue.exchange.session.close()


def test_the_client_side_budget_keeps_the_bot_inside_krakens_limit():
    # a 1 s window instead of Kraken's 10 s keeps the test short; the arithmetic is the same
    with serve(scripted_feed(), rate_budget=100, rate_window_s=1.0) as sim:
        exchange = make_client(
            api_url=sim.url, api_key=KEY, api_secret=SECRET, cost_budget=90, cost_window_s=1.0
        )
        exchange.enableRateLimit = False
        venue = KrakenOrderVenue(exchange, clock=sim.exchange.feed.clock)
        started = time.perf_counter()
        for i in range(25):  # 250 cost units: nearly three windows' worth at 90 a window
            venue.submit(req(f"paced-{i}", OrderType.LIMIT, OrderSide.BUY, 0.01, price=50_000.0))
        elapsed = time.perf_counter() - started
        assert len(sim.engine.open_orders()) == 25  # none refused by the exchange's budget
        stats = exchange.limiter.stats
        assert stats.cost >= 250 and stats.waits >= 1
        assert stats.waited_s >= 1.0  # 250 units at 90 a window cannot pass inside two windows
        log.warning(
            "KRAKEN_CLIENT_BUDGET orders=25 seconds=%.2f waits=%d waited=%.2fs",
            elapsed,
            stats.waits,
            stats.waited_s,
        )
        exchange.session.close()


def test_a_wrong_secret_and_a_rejection_are_not_retryable(sim):
    wrong = venue_on(sim, secret=base64.b64encode(b"some other secret").decode())
    with pytest.raises(VenueError) as refused:
        wrong.balance()
    assert not isinstance(refused.value, VenueRetryableError)
    assert "AuthenticationError" in str(refused.value)
    venue = venue_on(sim)
    sim.faults.inject(FaultKind.REJECT, reason="insufficientAvailableFunds")
    with pytest.raises(VenueError) as rejected:
        venue.submit(req("rej", OrderType.MARKET, OrderSide.BUY, 0.1))
    assert not isinstance(rejected.value, VenueRetryableError)
    assert "InsufficientFunds" in str(rejected.value)
    assert sim.engine.orders() == []


# -- throughput -----------------------------------------------------------------------------------


def test_two_hundred_limit_orders_are_each_acknowledged_once():
    with serve(scripted_feed(), rate_budget=None) as sim:
        venue = venue_on(sim, cost_budget=None)
        venue.open_orders()  # markets loaded outside the timing
        started = time.perf_counter()
        orders = [
            venue.submit(
                req(
                    f"perf-{i}",
                    OrderType.LIMIT,
                    OrderSide.BUY,
                    0.001,
                    price=50_000.0,
                    symbol=BTC.symbol,
                )
            )
            for i in range(200)
        ]
        elapsed = time.perf_counter() - started
        log.warning(
            "KRAKEN_ORDERS_THROUGHPUT orders=200 seconds=%.3f per_second=%.0f",
            elapsed,
            200 / elapsed,
        )
        assert len({o.venue_order_id for o in orders}) == 200
        assert len(sim.engine.open_orders()) == 200
        venue.exchange.session.close()


# -- real candles ---------------------------------------------------------------------------------


def ladder_on(frame: pl.DataFrame, first: int) -> tuple[int, float] | None:
    """The first start (every 24 bars from `first`) where, from the last close, +1 % is reached
    before -3 % and before +2 %, and afterwards the price comes back to that close before +2 %:
    (start bar, entry price)."""
    close, high, low = (frame[c].to_numpy() for c in ("close", "high", "low"))
    for start in range(first, len(close) - 200, 24):
        entry = close[start - 1]
        highs, lows = high[start : start + 100], low[start : start + 100]
        hit = np.flatnonzero(highs >= entry * 1.01)
        if not hit.size or lows[: hit[0] + 1].min() <= entry * 0.97:
            continue
        if highs[hit[0]] >= entry * 1.02:
            continue  # TP2 in TP1's bar
        back = np.flatnonzero(lows[hit[0] + 1 :] <= entry)
        if back.size and highs[hit[0] + 1 : hit[0] + 2 + back[0]].max() < entry * 1.02:
            return start, float(entry)
    return None


@pytest.mark.realdata
def test_full_lifecycle_on_real_btc_candles(real_data_dir):
    from venues.replay import ReplayVenue, load_folder

    frame = load_folder(real_data_dir.resolve())["BTC"]["1h"]
    first = int(frame["ts"].search_sorted(datetime(2025, 3, 1, tzinfo=UTC)))
    found = ladder_on(frame, first)
    assert found is not None, "no start in the data with TP1 first, then a return to the entry"
    start, entry = found
    feed = ReplayVenue(real_data_dir, start=frame["ts"][start])
    btc = next(m for m in feed.markets() if m.base == "BTC")
    tick = btc.tick_size
    tps = [round_away(entry * k, tick, up=False) for k in (1.01, 1.02, 1.03)]
    stop = round_away(entry * 0.97, tick, up=True)
    breakeven = round_away(entry, tick, up=True)
    with serve(feed, rate_budget=None) as sim:  # ~5 requests a bar for up to 100 bars
        venue = venue_on(sim, cost_budget=None)
        fills = run_lifecycle(venue, sim, btc, 3 * btc.lot_size, stop, tps, breakeven, 100)
        assert fills[0].price == pytest.approx(entry)
        assert fills[1].price >= tps[0]
        assert fills[2].price <= breakeven
        venue.exchange.session.close()
