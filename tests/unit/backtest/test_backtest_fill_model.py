"""The backtest's fill model on hand-built bars, through the engine loop itself: a stop and a
take-profit inside one bar (the stop fills first), a gap through the stop (filled at the
open, not at the stop), and fees and funding to the cent."""

from __future__ import annotations

import polars as pl
import pytest

from core.engine.backtest import HourInput, run_hours
from core.engine.state import MemoryState
from core.engine.trades import trades_of
from core.metrics import ExitReason
from core.risk import intents_frame
from schemas.config import AppConfig
from tests.support.feeds import CandleFeed
from tests.unit.backtest.hand_bars import FLAT, HISTORY, INFO, START, SYMBOL, T0, H, candle_frame
from tests.unit.risk.conftest import market, markets_frame, signal, signals_frame
from venues.paper import FundingSchedule, PaperConfig
from venues.paper.stepped import SteppedPaperVenue

SLIP, TAKER = 2.0, 0.0005  # the shipped execution.slippage_bps and taker_fee


def bars(after: list[tuple[float, float, float, float]]) -> pl.DataFrame:
    """Flat history at 100, then (open, high, low, close) bar by bar from T0."""
    return candle_frame([FLAT] * HISTORY + after + [after[-1]] * 10, START, H)


def run(after: list[tuple[float, float, float, float]], hours: int, funding=None):
    feed = CandleFeed([INFO], {SYMBOL: bars(after)}, T0, name="hand")
    config = AppConfig()
    paper = PaperConfig(
        maker_fee=0.0002, taker_fee=TAKER, slippage_bps=SLIP, initial_cash=10_000.0,
        default_leverage=config.risk.default_leverage,
    )
    venue = SteppedPaperVenue(feed, paper, funding=funding)
    state = MemoryState()
    registry = markets_frame(
        [market(SYMBOL, tick_size=0.01, lot_size=0.001, min_size=0.001, last=100.0,
                bid=99.99, ask=100.01)]
    )
    sig = signals_frame(
        [signal(SYMBOL, ts=T0, entry=100.0, stop=95.0, tp1=103.0, tp2=106.0, tp3=109.0)]
    )
    empty = sig.clear()

    def hour(n: int) -> HourInput:
        ts = T0 + (n - 1) * H
        signals = sig if n == 1 else empty
        return HourInput(ts, n, n == 1, lambda: (registry, signals))

    loop = run_hours(
        (hour(n) for n in range(1, hours + 1)), venue, state, venue.clock, config,
        cash=lambda: venue.engine.cash,
    )
    intents = intents_frame(loop.intents)  # the loop keeps OrderIntents rows
    (size,) = intents.filter(pl.col("status") == "approved")["size"].to_list()
    trades = trades_of(
        state,
        initial_stops={intents["client_intent_id"][0]: 95.0},
        contract_sizes={SYMBOL: 1.0},
        funding=venue.funding_payments,
        end=T0 + (hours - 1) * H,
        last_close={p.symbol: p.mark_price for p in venue.positions()},
    )
    return size, trades, venue, loop


ENTRY = 100.02  # the market entry at the 100 close, 2 bps slippage, on the tick grid


def test_a_stop_and_a_take_profit_in_one_bar_the_stop_fills_first():
    size, (trade,), venue, _ = run([(100.0, 104.0, 94.0, 100.0)], hours=3)
    assert trade.exit_reason is ExitReason.STOP
    assert trade.entry_price == pytest.approx(ENTRY)
    assert trade.exit_price == pytest.approx(94.98)  # 95 less 2 bps, rounded down a tick
    fees = size * ENTRY * TAKER + size * 94.98 * TAKER
    assert trade.fees == pytest.approx(fees, abs=1e-9)
    assert trade.pnl == pytest.approx(size * (94.98 - ENTRY) - fees, abs=0.005)
    assert venue.engine.open_orders() == []  # the take-profits went with the position


def test_a_gap_through_the_stop_fills_at_the_open_not_at_the_stop():
    size, (trade,), _, _ = run([(90.0, 91.0, 89.0, 90.0)], hours=3)
    assert trade.exit_reason is ExitReason.STOP
    assert trade.exit_price == pytest.approx(89.98)  # the 90 open less 2 bps, not 95
    fees = size * ENTRY * TAKER + size * 89.98 * TAKER
    assert trade.pnl == pytest.approx(size * (89.98 - ENTRY) - fees, abs=0.005)


def test_fees_and_funding_to_the_cent_on_a_held_position():
    # funding of 0.01 % falls due at T0 + 2h with the mark at 101: a long pays
    # 0.0001 x size x 101; the trade is marked at the last close (101) at the end
    due = T0 + 2 * H
    funding = FundingSchedule({SYMBOL: [(due, 0.0001)]})
    size, (trade,), venue, loop = run([(100.0, 101.0, 100.0, 101.0)] * 2, hours=4,
                                      funding=funding)
    assert trade.exit_reason is ExitReason.END_OF_DATA
    paid = 0.0001 * size * 101.0
    assert trade.funding == pytest.approx(paid, abs=1e-9)
    entry_fee = size * ENTRY * TAKER
    assert trade.fees == pytest.approx(entry_fee, abs=1e-9)
    assert round(trade.pnl, 2) == round(size * (101.0 - ENTRY) - entry_fee - paid, 2)
    # and the account agrees: cash paid the fee and the funding, equity marks the rest
    assert round(venue.engine.cash, 2) == round(10_000.0 - entry_fee - paid, 2)
    assert round(loop.marks[-1].equity, 2) == round(10_000.0 + trade.pnl, 2)
