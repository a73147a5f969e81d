"""The paper matching engine: what a trader would notice about fills, fees and positions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.market import MarketInfo
from core.orders import OrderRequest, OrderSide, OrderStatus, OrderType, PositionSide
from venues.paper import (
    CancelOutcome,
    DuplicateClientIdError,
    Liquidity,
    OrderRejectedError,
    PaperConfig,
    PaperEngine,
    RejectReason,
)

T0 = datetime(2025, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
BTC = MarketInfo("BTC/USD:USD", "PF_XBTUSD", "BTC", "USD", 1.0, 0.5, 0.001, 0.001, 50.0)
ETH = MarketInfo("ETH/USD:USD", "PF_ETHUSD", "ETH", "USD", 1.0, 0.05, 0.01, 0.01, 20.0)
NO_COSTS = PaperConfig(maker_fee=0.0, taker_fee=0.0, initial_cash=100_000.0)


def engine(config: PaperConfig = NO_COSTS, price: float = 100.0) -> PaperEngine:
    e = PaperEngine([BTC, ETH], config)
    e.on_price(BTC.symbol, T0, price)
    return e


def req(
    cid: str,
    side: OrderSide,
    size: float,
    kind: OrderType = OrderType.MARKET,
    *,
    price: float | None = None,
    trigger: float | None = None,
    reduce_only: bool = False,
    symbol: str = BTC.symbol,
) -> OrderRequest:
    return OrderRequest(symbol, side, kind, size, cid, price, trigger, reduce_only)


def long_position(e: PaperEngine, size: float = 1.0) -> None:
    e.submit(req("entry", OrderSide.BUY, size), T0)


def only_position(e: PaperEngine):
    (position,) = e.positions()
    return position


# -- entries --------------------------------------------------------------------------


def test_market_buy_fills_at_once_at_the_last_price():
    e = engine()
    placed = e.submit(req("m1", OrderSide.BUY, 0.5), T0)
    assert placed.order.status is OrderStatus.FILLED
    assert [x.fill.price for x in placed.executions] == [100.0]
    position = only_position(e)
    assert (position.side, position.size, position.entry_price) == (PositionSide.LONG, 0.5, 100.0)


def test_market_order_before_any_price_is_refused():
    e = PaperEngine([BTC], NO_COSTS)
    with pytest.raises(OrderRejectedError) as err:
        e.submit(req("m1", OrderSide.BUY, 1.0), T0)
    assert err.value.reason is RejectReason.MARKET_SUSPENDED


def test_resting_limit_buy_fills_at_its_price_when_a_bar_reaches_it():
    e = engine()
    placed = e.submit(req("l1", OrderSide.BUY, 1.0, OrderType.LIMIT, price=95.0), T0)
    assert placed.order.status is OrderStatus.OPEN and not placed.executions
    assert e.on_bar(BTC.symbol, T0 + H, 100, 101, 96, 99) == []
    (fill,) = e.on_bar(BTC.symbol, T0 + 2 * H, 99, 99, 90, 92)
    assert (fill.fill.price, fill.liquidity) == (95.0, Liquidity.MAKER)
    assert e.order_by_client_id("l1").status is OrderStatus.FILLED


def test_limit_that_crosses_on_arrival_fills_as_taker_at_the_better_price():
    e = engine()
    placed = e.submit(req("l1", OrderSide.BUY, 1.0, OrderType.LIMIT, price=105.0), T0)
    (execution,) = placed.executions
    assert (execution.fill.price, execution.liquidity) == (100.0, Liquidity.TAKER)


# -- exits: stops and take-profits per bar -----------------------------------------------


def test_sell_stop_triggers_when_the_bar_low_crosses_it_and_fills_at_the_trigger():
    e = engine()
    long_position(e)
    e.submit(req("sl", OrderSide.SELL, 1.0, OrderType.STOP, trigger=95.0, reduce_only=True), T0)
    assert e.on_bar(BTC.symbol, T0 + H, 100, 102, 96, 97) == []
    (fill,) = e.on_bar(BTC.symbol, T0 + 2 * H, 97, 98, 94, 96)
    assert fill.fill.price == 95.0 and e.positions() == []


def test_stop_gapped_through_fills_at_the_open_not_the_trigger():
    e = engine()
    long_position(e)
    e.submit(req("sl", OrderSide.SELL, 1.0, OrderType.STOP, trigger=95.0, reduce_only=True), T0)
    (fill,) = e.on_bar(BTC.symbol, T0 + H, 90, 91, 88, 89)
    assert fill.fill.price == 90.0


def test_take_profit_triggers_when_the_bar_high_crosses_it():
    e = engine()
    long_position(e)
    e.submit(
        req("tp", OrderSide.SELL, 1.0, OrderType.TAKE_PROFIT, trigger=110.0, reduce_only=True), T0
    )
    (fill,) = e.on_bar(BTC.symbol, T0 + H, 100, 111, 99, 108)
    assert fill.fill.price == 110.0 and e.positions() == []


def test_stop_and_take_profit_inside_one_bar_assume_the_stop_filled_first():
    e = engine()
    long_position(e)
    e.submit(req("sl", OrderSide.SELL, 1.0, OrderType.STOP, trigger=95.0, reduce_only=True), T0)
    e.submit(
        req("tp", OrderSide.SELL, 1.0, OrderType.TAKE_PROFIT, trigger=110.0, reduce_only=True), T0
    )
    fills = e.on_bar(BTC.symbol, T0 + H, 100, 112, 93, 105)
    assert [f.fill.client_id for f in fills] == ["sl"]
    assert e.order_by_client_id("tp").status is OrderStatus.CANCELLED  # nothing left to reduce
    assert e.realised_pnl == pytest.approx(-5.0)


def test_stops_inside_one_bar_fill_in_the_order_the_price_reaches_them():
    e = engine()
    long_position(e, 1.0)
    e.submit(req("far", OrderSide.SELL, 1.0, OrderType.STOP, trigger=90.0, reduce_only=True), T0)
    e.submit(req("near", OrderSide.SELL, 0.4, OrderType.STOP, trigger=96.0, reduce_only=True), T0)
    fills = e.on_bar(BTC.symbol, T0 + H, 100, 100, 85, 86)
    assert [(f.fill.client_id, f.fill.price, f.fill.size) for f in fills] == [
        ("near", 96.0, 0.4),
        ("far", 90.0, 0.6),  # cut to what was left of the position
    ]


def test_short_stop_is_a_buy_above_the_price():
    e = engine()
    e.submit(req("short", OrderSide.SELL, 2.0), T0)
    e.submit(req("sl", OrderSide.BUY, 2.0, OrderType.STOP, trigger=104.0, reduce_only=True), T0)
    (fill,) = e.on_bar(BTC.symbol, T0 + H, 100, 105, 99, 103)
    assert fill.fill.price == 104.0 and e.realised_pnl == pytest.approx(-8.0)


# -- reduce-only ----------------------------------------------------------------------------


def test_reduce_only_larger_than_the_position_is_cut_to_it():
    e = engine()
    long_position(e, 0.4)
    placed = e.submit(req("x", OrderSide.SELL, 1.0, reduce_only=True), T0)
    assert placed.order.size == 0.4 and placed.order.status is OrderStatus.FILLED
    assert e.positions() == []


def test_reduce_only_market_order_without_a_position_is_refused():
    e = engine()
    with pytest.raises(OrderRejectedError) as err:
        e.submit(req("x", OrderSide.SELL, 1.0, reduce_only=True), T0)
    assert err.value.reason is RejectReason.WOULD_NOT_REDUCE


def test_reduce_only_in_the_direction_of_the_position_never_adds_to_it():
    e = engine()
    long_position(e, 1.0)
    e.submit(req("add", OrderSide.BUY, 1.0, OrderType.STOP, trigger=101.0, reduce_only=True), T0)
    assert e.on_bar(BTC.symbol, T0 + H, 100, 102, 99, 101) == []
    assert only_position(e).size == 1.0
    assert e.order_by_client_id("add").status is OrderStatus.CANCELLED


def test_plain_order_larger_than_the_position_flips_it():
    e = engine()
    long_position(e, 1.0)
    e.submit(req("flip", OrderSide.SELL, 3.0), T0)
    position = only_position(e)
    assert (position.side, position.size, position.entry_price) == (PositionSide.SHORT, 2.0, 100.0)


# -- costs ----------------------------------------------------------------------------------


def test_fees_taker_on_market_maker_on_resting_limits():
    e = engine(PaperConfig(maker_fee=0.0002, taker_fee=0.0005))
    taker = e.submit(req("m", OrderSide.BUY, 1.0), T0).executions[0]
    e.submit(req("l", OrderSide.SELL, 1.0, OrderType.LIMIT, price=110.0), T0)
    (maker,) = e.on_bar(BTC.symbol, T0 + H, 100, 111, 99, 110)
    assert taker.fill.fee == pytest.approx(100 * 0.0005)
    assert maker.fill.fee == pytest.approx(110 * 0.0002)
    assert e.cash == pytest.approx(10_000 + 10.0 - 0.05 - 0.022)


def test_slippage_moves_market_and_stop_fills_against_the_trader_onto_the_tick():
    e = engine(PaperConfig(maker_fee=0.0, taker_fee=0.0, slippage_bps=10.0), price=1000.0)
    buy = e.submit(req("m", OrderSide.BUY, 1.0), T0).executions[0]
    assert buy.fill.price == 1001.0  # 1000 * 1.001
    e.submit(req("sl", OrderSide.SELL, 1.0, OrderType.STOP, trigger=990.0, reduce_only=True), T0)
    (stop,) = e.on_bar(BTC.symbol, T0 + H, 1000, 1000, 980, 985)
    assert stop.fill.price == 989.0  # 990 * 0.999 = 989.01, floored to the 0.5 tick


def test_funding_long_pays_a_positive_rate_on_the_mark_notional():
    e = engine()
    long_position(e, 2.0)
    e.on_price(BTC.symbol, T0 + H, 110.0)
    paid = e.apply_funding(BTC.symbol, 0.0001, T0 + H)
    assert paid == pytest.approx(-2 * 110 * 0.0001)
    assert e.funding_paid == pytest.approx(paid)
    assert e.apply_funding(ETH.symbol, 0.01, T0 + H) == 0.0  # no position, no payment


def test_balance_is_cash_plus_unrealised_and_margin_is_notional_over_leverage():
    e = engine(PaperConfig(maker_fee=0.0, taker_fee=0.0, leverage={BTC.symbol: 5.0}))
    long_position(e, 10.0)
    e.on_price(BTC.symbol, T0 + H, 120.0)
    balance = e.balance()
    assert balance.equity == pytest.approx(10_000 + 200.0)
    assert balance.margin_used == pytest.approx(10 * 120 / 5.0)


def test_entry_beyond_free_margin_is_refused():
    e = engine(PaperConfig(initial_cash=1_000.0, default_leverage=2.0))
    with pytest.raises(OrderRejectedError) as err:
        e.submit(req("big", OrderSide.BUY, 30.0), T0)  # 3000 notional / 2 > 1000
    assert err.value.reason is RejectReason.INSUFFICIENT_FUNDS


# -- partial fills --------------------------------------------------------------------------


def test_partial_fills_fill_a_fraction_per_bar_and_keep_the_rest_open():
    e = engine(PaperConfig(maker_fee=0.0, taker_fee=0.0, max_fill_fraction=0.25))
    e.submit(req("l", OrderSide.BUY, 1.0, OrderType.LIMIT, price=95.0), T0)
    for i in range(1, 4):
        e.on_bar(BTC.symbol, T0 + i * H, 96, 97, 94, 96)
    order = e.order_by_client_id("l")
    assert (order.filled, order.status) == (0.75, OrderStatus.OPEN)
    e.on_bar(BTC.symbol, T0 + 4 * H, 96, 97, 94, 96)
    assert e.order_by_client_id("l").status is OrderStatus.FILLED


def test_partially_filled_market_order_cancels_its_remainder():
    e = engine(PaperConfig(maker_fee=0.0, taker_fee=0.0, max_fill_fraction=0.5))
    order = e.submit(req("m", OrderSide.BUY, 1.0), T0).order
    assert (order.filled, order.status) == (0.5, OrderStatus.CANCELLED)


def test_triggered_stop_keeps_filling_at_later_opens_when_liquidity_is_capped():
    e = engine(PaperConfig(maker_fee=0.0, taker_fee=0.0))
    long_position(e, 1.0)
    e.set_partial_fills(max_fill_fraction=0.5)
    e.submit(req("sl", OrderSide.SELL, 1.0, OrderType.STOP, trigger=95.0, reduce_only=True), T0)
    first = e.on_bar(BTC.symbol, T0 + H, 100, 100, 94, 94)
    second = e.on_bar(BTC.symbol, T0 + 2 * H, 93, 94, 92, 92)
    assert [f.fill.price for f in first + second] == [95.0, 93.0]
    assert e.positions() == []


def test_volume_participation_caps_a_fill_by_the_bar_volume():
    e = engine(PaperConfig(maker_fee=0.0, taker_fee=0.0, volume_participation=0.1))
    e.submit(req("l", OrderSide.BUY, 1.0, OrderType.LIMIT, price=95.0), T0)
    (fill,) = e.on_bar(BTC.symbol, T0 + H, 96, 97, 94, 96, volume=2.0)
    assert fill.fill.size == 0.2


# -- identity and lookups ---------------------------------------------------------------------


def test_duplicate_client_id_among_open_orders_is_refused_and_names_the_open_order():
    e = engine()
    first = e.submit(req("dup", OrderSide.BUY, 1.0, OrderType.LIMIT, price=90.0), T0).order
    with pytest.raises(DuplicateClientIdError) as err:
        e.submit(req("dup", OrderSide.BUY, 1.0, OrderType.LIMIT, price=90.0), T0)
    assert err.value.reason is RejectReason.DUPLICATE_CLIENT_ID
    assert err.value.open_order_id == first.venue_order_id
    assert len(e.open_orders()) == 1


def test_client_id_is_free_again_once_its_order_closed():
    e = engine()
    e.submit(req("again", OrderSide.BUY, 1.0), T0)  # filled at once: closed
    e.submit(req("again", OrderSide.BUY, 1.0), T0)
    assert only_position(e).size == 2.0


def test_lookup_by_client_id_finds_open_and_closed_orders():
    e = engine()
    e.submit(req("open", OrderSide.BUY, 1.0, OrderType.LIMIT, price=90.0), T0)
    e.submit(req("done", OrderSide.BUY, 1.0), T0)
    cancelled = e.submit(req("gone", OrderSide.BUY, 1.0, OrderType.LIMIT, price=80.0), T0).order
    e.cancel(cancelled.venue_order_id, T0)
    assert e.order_by_client_id("open").status is OrderStatus.OPEN
    assert e.order_by_client_id("done").status is OrderStatus.FILLED
    assert e.order_by_client_id("gone").status is OrderStatus.CANCELLED
    assert e.order_by_client_id("never") is None


def test_cancel_reports_filled_and_unknown_orders_without_changing_them():
    e = engine()
    filled = e.submit(req("f", OrderSide.BUY, 1.0), T0).order
    assert e.cancel(filled.venue_order_id, T0).outcome is CancelOutcome.FILLED
    assert e.cancel("no-such-id", T0).outcome is CancelOutcome.NOT_FOUND
    assert e.cancel_by_client_id("no-such-cid", T0).outcome is CancelOutcome.NOT_FOUND


@pytest.mark.parametrize(
    ("size", "price", "reason"),
    [
        (0.0015, 90.0, RejectReason.INVALID_SIZE),
        (1.0, 90.25, RejectReason.INVALID_PRICE),
    ],
)
def test_off_grid_size_or_price_is_refused(size, price, reason):
    e = engine()
    with pytest.raises(OrderRejectedError) as err:
        e.submit(req("g", OrderSide.BUY, size, OrderType.LIMIT, price=price), T0)
    assert err.value.reason is reason
    assert "core.precision" in str(err.value)  # the message names the fix
    assert e.orders() == []


def test_off_grid_trigger_and_unknown_market_are_refused():
    e = engine()
    with pytest.raises(OrderRejectedError) as err:
        e.submit(req("t", OrderSide.SELL, 1.0, OrderType.STOP, trigger=95.3), T0)
    assert err.value.reason is RejectReason.INVALID_PRICE
    with pytest.raises(OrderRejectedError) as err:
        e.submit(req("u", OrderSide.BUY, 1.0, symbol="DOGE/USD:USD"), T0)
    assert err.value.reason is RejectReason.UNKNOWN_MARKET


def test_same_inputs_give_the_same_ids():
    def run() -> list[str]:
        e = engine()
        e.submit(req("a", OrderSide.BUY, 1.0), T0)
        e.submit(req("b", OrderSide.SELL, 1.0, OrderType.LIMIT, price=120.0), T0)
        return [o.venue_order_id for o in e.orders()] + [f.fill_id for f in e.fills()]

    assert run() == run()


def test_inconsistent_bar_is_refused():
    e = engine()
    with pytest.raises(ValueError, match="do not enclose"):
        e.on_bar(BTC.symbol, T0 + H, 100, 99, 98, 101)
