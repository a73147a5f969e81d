"""The whole order lifecycle through the gateway and unmodified ccxt, against the simulator.

One `tasks.execution.execute` per simulated cycle, the simulator's feed advanced one bar
between cycles: entry fill -> stop + TP1..TP3 placed, their venue ids stored on the
position -> TP1 fills -> the stop moves to break-even (when configured) -> the stop fills
-> the position is CLOSED and its sibling exits are cancelled (Kraken has no OCO).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.cycle import CycleContext
from core.market import MarketInfo
from core.orders import Order, OrderStatus, OrderType
from core.positions import Position, PositionState
from schemas.execution import ExecutionConfig
from store import execution as ex
from store.db import open_store
from tasks.execution import execute, reconcile_stage
from tests.support.feeds import CandleFeed, hourly_candles
from venues.kraken import make_client
from venues.kraken_orders import KrakenOrderVenue
from venues.kraken_sim import FaultKind, Faults, RunningSim, start_in_thread
from venues.paper import PaperConfig

KEY = "lifecycle-key"
SECRET = base64.b64encode(b"lifecycle through the gateway: a secret for the simulator").decode()
START = datetime(2025, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
HISTORY = 24
BTC = MarketInfo("BTC/USD:USD", "BTCUSD", "BTC", "USD", 1.0, 0.5, 0.0001, 0.0001, 50.0)
ETH = MarketInfo("ETH/USD:USD", "ETHUSD", "ETH", "USD", 1.0, 0.05, 0.001, 0.001, 20.0)
# BTC bar by bar after the start: up through TP1 (62k, bar 2), back below the entry (60k,
# bar 4: the break-even stop), then below the first stop (57k, bar 6); never near TP2 (64k)
BTC_PATH = [60_500.0, 62_500.0, 61_500.0, 59_500.0, 58_500.0, 56_500.0, 56_000.0, 56_000.0]
WICK = 5.0
INTENT = {
    "client_intent_id": "life",
    "symbol": BTC.symbol,
    "side": "long",
    "size": 0.3,
    "stop": 57_000.0,
    "tp1": 62_000.0,
    "tp2": 64_000.0,
    "tp3": 66_000.0,
    "status": "approved",
}
MAX_CYCLES = len(BTC_PATH)


def scripted_feed() -> CandleFeed:
    frames = {
        BTC.symbol: hourly_candles([60_000.0] * HISTORY + BTC_PATH, WICK, START),
        ETH.symbol: hourly_candles([3_000.0] * (HISTORY + len(BTC_PATH)), 1.0, START),
    }
    return CandleFeed([BTC, ETH], frames, START + HISTORY * H, name="lifecycle", half_spread=0.5)


MARKETS = pl.DataFrame(
    {
        "symbol": [BTC.symbol, ETH.symbol],
        "tick_size": [BTC.tick_size, ETH.tick_size],
        "lot_size": [BTC.lot_size, ETH.lot_size],
        "contract_size": [1.0, 1.0],
        "max_leverage": [BTC.max_leverage, ETH.max_leverage],
    }
)


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    faults = Faults(rate_budget=None)
    with start_in_thread(
        scripted_feed(), KEY, SECRET, faults=faults, paper=PaperConfig(initial_cash=100_000.0)
    ) as running:
        yield running


@pytest.fixture
def kraken(sim: RunningSim) -> Iterator[KrakenOrderVenue]:
    exchange = make_client(api_url=sim.url, api_key=KEY, api_secret=SECRET, timeout_ms=3_000)
    exchange.enableRateLimit = False  # the simulator enforces Kraken's budget (off here)
    venue = KrakenOrderVenue(exchange, clock=sim.exchange.feed.clock)
    yield venue
    exchange.session.close()


class Trader:
    """One execute per cycle on one DuckDB file; the simulator moves between cycles."""

    def __init__(
        self, sim: RunningSim, venue: KrakenOrderVenue, tmp: Path, *, break_even_after_tp1: bool
    ) -> None:
        self.sim, self.venue, self.db = sim, venue, tmp / "trading.duckdb"
        self.cfg = ExecutionConfig(break_even_after_tp1=break_even_after_tp1)
        self.cycle_id = 0

    def cycle(self, intents: list[dict] | None = None) -> None:
        """One execute; `intents` approved this cycle (none by default)."""
        self.cycle_id += 1
        ctx = CycleContext(self.cycle_id, "kraken", self.sim.now(), self.db, datetime.now(UTC))
        frame = pl.DataFrame([INTENT]).clear() if not intents else pl.DataFrame(intents)
        execute(ctx, self.venue, frame, MARKETS, self.cfg)

    def next_cycle(self) -> None:
        self.sim.advance(1)
        self.cycle()

    def position(self) -> Position:
        with open_store(self.db, read_only=True) as con:
            found = ex.position(con, INTENT["client_intent_id"])
        assert found is not None
        return found

    def row(self) -> dict:
        with open_store(self.db, read_only=True) as con:
            cur = con.execute(
                "SELECT state, stop_order_id, tp1_order_id, tp2_order_id, tp3_order_id, "
                "stop_price, size FROM positions WHERE position_id = ?",
                [INTENT["client_intent_id"]],
            )
            names = [d[0] for d in cur.description]
            return dict(zip(names, cur.fetchall()[0], strict=True))

    def until(self, done, what: str) -> int:  # type: ignore[no-untyped-def]
        """Cycle bar by bar until done(position) holds; returns the cycles it took."""
        for n in range(1, MAX_CYCLES + 1):
            self.next_cycle()
            if done(self.position()):
                return n
        raise AssertionError(f"{what} did not happen within {MAX_CYCLES} cycles")

    def orders(self) -> dict[str, Order]:
        return {o.client_id: o for o in self.sim.engine.orders()}


def run_to_protected(trader: Trader) -> Position:
    trader.cycle([INTENT])
    p = trader.position()
    orders = trader.orders()
    assert p.state is PositionState.PROTECTED
    assert (p.size, p.entry_price) == (0.3, 60_000.0)
    assert orders["life-en-0"].status is OrderStatus.FILLED
    stop = orders["life-sl-0"]
    assert (stop.type, stop.reduce_only, stop.trigger_price, stop.size) == (
        OrderType.STOP,
        True,
        57_000.0,
        0.3,
    )
    assert p.stop_order_id == stop.venue_order_id
    tps = [orders[f"life-tp{level}-0"] for level in (1, 2, 3)]
    assert [(o.type, o.trigger_price, o.reduce_only) for o in tps] == [
        (OrderType.TAKE_PROFIT, 62_000.0, True),
        (OrderType.TAKE_PROFIT, 64_000.0, True),
        (OrderType.TAKE_PROFIT, 66_000.0, True),
    ]
    assert [o.size for o in tps] == pytest.approx([0.12, 0.09, 0.09])  # 40/30/30 %
    assert p.tp_order_ids == {i: o.venue_order_id for i, o in enumerate(tps, start=1)}
    row = trader.row()  # the ids are in the table's own columns too
    assert (row["stop_order_id"], row["tp1_order_id"], row["tp2_order_id"]) == (
        stop.venue_order_id,
        tps[0].venue_order_id,
        tps[1].venue_order_id,
    )
    assert row["tp3_order_id"] == tps[2].venue_order_id
    assert {o.client_id for o in trader.sim.engine.open_orders()} == {
        "life-sl-0",
        "life-tp1-0",
        "life-tp2-0",
        "life-tp3-0",
    }
    return p


def assert_closed_with_siblings_cancelled(trader: Trader, stop_client_id: str) -> None:
    p = trader.position()
    orders = trader.orders()
    assert p.state is PositionState.CLOSED and p.close_reason == "stop filled"
    assert orders[stop_client_id].status is OrderStatus.FILLED
    assert orders["life-tp1-0"].status is OrderStatus.FILLED
    assert orders["life-tp2-0"].status is OrderStatus.CANCELLED
    assert orders["life-tp3-0"].status is OrderStatus.CANCELLED
    assert trader.sim.engine.open_orders() == []
    assert trader.sim.engine.positions() == []
    with open_store(trader.db, read_only=True) as con:
        fills = con.execute(
            "SELECT client_id, size, position_id FROM fills ORDER BY ts, fill_id"
        ).fetchall()
        states = {r[0] for r in con.execute("SELECT state FROM wal").fetchall()}
    assert [(c, pid) for c, _, pid in fills] == [
        ("life-en-0", "life"),
        ("life-tp1-0", "life"),
        (stop_client_id, "life"),
    ]
    assert [s for _, s, _ in fills] == pytest.approx([0.3, 0.12, 0.18])
    assert states == {"acknowledged"}
    # the next reconciliation finds nothing to correct
    ctx = CycleContext(99, "kraken", trader.sim.now(), trader.db, datetime.now(UTC))
    report = reconcile_stage(ctx, trader.venue, MARKETS, trader.cfg, startup=False)
    assert report.log_lines == [] and report.open_positions == 0


def test_lifecycle_with_the_stop_moved_to_break_even_after_tp1(sim, kraken, tmp_path):
    trader = Trader(sim, kraken, tmp_path, break_even_after_tp1=True)
    first = run_to_protected(trader)

    trader.until(lambda p: p.tps[0].filled, "TP1 fill")
    p = trader.position()
    orders = trader.orders()
    assert p.size == pytest.approx(0.18) and p.state is PositionState.PROTECTED
    moved = orders["life-mv-1"]  # placed before the old one was cancelled
    assert (moved.type, moved.trigger_price, moved.size, moved.status) == (
        OrderType.STOP,
        60_000.0,
        0.18,
        OrderStatus.OPEN,
    )
    assert (p.stop_order_id, p.stop_price) == (moved.venue_order_id, 60_000.0)
    assert orders["life-sl-0"].status is OrderStatus.CANCELLED
    assert trader.row()["stop_order_id"] == moved.venue_order_id
    assert p.tp_order_ids == first.tp_order_ids

    trader.until(lambda p: p.state is PositionState.CLOSED, "the break-even stop fill")
    fill = [f for f in sim.engine.fills() if f.client_id == "life-mv-1"]
    assert [(f.size, f.price) for f in fill] == [(0.18, 60_000.0)]
    assert_closed_with_siblings_cancelled(trader, "life-mv-1")


def test_lifecycle_with_the_stop_left_in_place_after_tp1(sim, kraken, tmp_path):
    trader = Trader(sim, kraken, tmp_path, break_even_after_tp1=False)
    first = run_to_protected(trader)

    trader.until(lambda p: p.tps[0].filled, "TP1 fill")
    p = trader.position()
    assert p.size == pytest.approx(0.18)
    assert (p.stop_order_id, p.stop_price) == (first.stop_order_id, 57_000.0)
    assert "life-mv-1" not in trader.orders()

    trader.until(lambda p: p.state is PositionState.CLOSED, "the stop fill")
    fill = [f for f in sim.engine.fills() if f.client_id == "life-sl-0"]
    assert [f.size for f in fill] == [0.18]  # reduce-only: what was left, not the 0.3 asked
    assert_closed_with_siblings_cancelled(trader, "life-sl-0")


def test_a_refused_stop_move_keeps_the_old_stop_working(sim, kraken, tmp_path):
    """The venue refuses the break-even stop: the stop it was to replace stays, named on
    the record (cancelling it first would leave the position naked)."""
    trader = Trader(sim, kraken, tmp_path, break_even_after_tp1=True)
    first = run_to_protected(trader)
    trader.next_cycle()  # bar 1: nothing triggers
    sim.faults.inject(FaultKind.REJECT, reason="wouldNotReducePosition")  # the next sendorder
    trader.next_cycle()  # bar 2: TP1 fills; the move is refused
    p = trader.position()
    orders = trader.orders()
    assert p.tps[0].filled and "life-mv-1" not in orders
    assert orders["life-sl-0"].status is OrderStatus.OPEN
    assert (p.state, p.stop_order_id) == (PositionState.PROTECTED, first.stop_order_id)
    with open_store(trader.db, read_only=True) as con:
        assert ex.intent(con, "life-mv-1").state.value == "rejected"
