"""Properties of the paper engine over any sequence of orders, bars, funding and cancels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.market import MarketInfo
from core.orders import OrderRequest, OrderSide, OrderType
from core.precision import round_to_step
from venues.paper import OrderRejectedError, PaperConfig, PaperEngine

T0 = datetime(2025, 3, 1, tzinfo=UTC)
BTC = MarketInfo("BTC/USD:USD", "PF_XBTUSD", "BTC", "USD", 1.0, 0.5, 0.001, 0.001, 50.0)
INITIAL_CASH = 1_000_000.0

orders = st.tuples(
    st.just("order"),
    st.sampled_from(list(OrderType)),
    st.sampled_from(list(OrderSide)),
    st.integers(1, 3000),  # lots of 0.001
    st.booleans(),  # reduce_only
    st.integers(-8, 8),  # price / trigger offset from the mark, in percent
)
bars = st.tuples(
    st.just("bar"),
    st.floats(-0.06, 0.06),  # open vs previous close
    st.floats(0.0, 0.04),  # wick up
    st.floats(0.0, 0.04),  # wick down
    st.floats(-0.06, 0.06),  # close vs open
)
funding = st.tuples(st.just("funding"), st.floats(-0.002, 0.002))
cancels = st.tuples(st.just("cancel"), st.integers(0, 30))
# orders and bars drawn more often than funding and cancels, so positions build and exits fill
# (weighted by repetition in sampled_from: st.one_of gives each distinct strategy one share)
KINDS = {"order": orders, "bar": bars, "funding": funding, "cancel": cancels}
WEIGHTED = ["order"] * 3 + ["bar"] * 2 + ["funding", "cancel"]
actions = st.lists(st.sampled_from(WEIGHTED).flatmap(KINDS.__getitem__), min_size=8, max_size=50)
configs = st.builds(
    PaperConfig,
    maker_fee=st.sampled_from([0.0, 0.0002]),
    taker_fee=st.sampled_from([0.0, 0.0005]),
    slippage_bps=st.sampled_from([0.0, 5.0]),
    initial_cash=st.just(INITIAL_CASH),
    max_fill_fraction=st.sampled_from([1.0, 0.5, 0.3]),
)


def signed_position(engine: PaperEngine) -> float:
    return sum(p.size if p.side == "long" else -p.size for p in engine.positions())


def request(action: tuple, mark: float, n: int) -> OrderRequest:
    _, kind, side, lots, reduce_only, offset = action
    level = max(round_to_step(mark * (1 + offset / 100), BTC.tick_size), BTC.tick_size)
    return OrderRequest(
        BTC.symbol,
        side,
        kind,
        round(lots * BTC.lot_size, 3),
        f"c{n}",
        price=level if kind is OrderType.LIMIT else None,
        trigger_price=level if kind in (OrderType.STOP, OrderType.TAKE_PROFIT) else None,
        reduce_only=reduce_only,
    )


def play(engine: PaperEngine, action: tuple, ts: datetime, n: int) -> list:
    """Apply one action; returns the executions it caused."""
    mark = engine.mark(BTC.symbol) or 100.0
    if action[0] == "order":
        try:
            return list(engine.submit(request(action, mark, n), ts).executions)
        except OrderRejectedError:
            return []
    if action[0] == "bar":
        _, gap, up, down, move = action
        open_ = max(mark * (1 + gap), 1.0)
        close = max(open_ * (1 + move), 1.0)
        high, low = max(open_, close) * (1 + up), min(open_, close) * (1 - down)
        return engine.on_bar(BTC.symbol, ts, open_, high, low, close)
    if action[0] == "funding":
        engine.apply_funding(BTC.symbol, action[1], ts)
        return []
    open_orders = engine.open_orders()
    if open_orders:
        engine.cancel(open_orders[action[1] % len(open_orders)].venue_order_id, ts)
    return []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, steps=actions)
def test_reduce_only_never_grows_or_flips_and_cash_matches_the_ledger(config, steps):
    engine = PaperEngine([BTC], config)
    engine.on_price(BTC.symbol, T0, 100.0)
    trade_cash = 0.0  # -sum(signed size * price): the cash the trades themselves moved
    for n, action in enumerate(steps):
        ts = T0 + timedelta(minutes=n + 1)
        before = signed_position(engine)
        position = before
        for execution in play(engine, action, ts, n):
            fill = execution.fill
            signed = fill.size if fill.side is OrderSide.BUY else -fill.size
            after = position + signed
            order = engine.order(fill.venue_order_id)
            assert order is not None
            if order.reduce_only:
                assert abs(after) < abs(position) + 1e-12, "reduce-only grew the position"
                assert after * position >= -1e-12, "reduce-only flipped the position"
            position = after
            trade_cash -= signed * fill.price
        assert signed_position(engine) == pytest.approx(position, abs=1e-9)
        for report in engine.positions():
            assert report.size > 0

        # cash moves only by realised PnL, fees and funding
        ledger = INITIAL_CASH + engine.realised_pnl - engine.fees_paid + engine.funding_paid
        assert engine.cash == pytest.approx(ledger, rel=1e-9, abs=1e-6)
        assert engine.fees_paid == pytest.approx(sum(f.fee for f in engine.fills()), abs=1e-9)
        # and equity agrees with the trades' own cash flow plus the position at the mark
        mark = engine.mark(BTC.symbol) or 0.0
        independent = (
            INITIAL_CASH + trade_cash + position * mark - engine.fees_paid + engine.funding_paid
        )
        assert engine.balance().equity == pytest.approx(independent, rel=1e-9, abs=1e-6)
