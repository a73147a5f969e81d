"""Issue 9's five ways of losing control of a position, each as it happened, through real ccxt
against the Kraken simulator; after every cycle the control invariants are checked:
nothing of ours works on a flat market beyond a cycle, no position is without a working stop
beyond a cycle unless the system is DEGRADED, the record's size is the venue's, every fill
is applied once, no client order id is used twice, and the cycle completed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pytest

from core.engine.gateway import CANCEL_ATTEMPTS
from core.orders import OrderStatus, OrderType
from core.positions import PositionState
from core.system_state import SystemState
from schemas.config import AppConfig
from store import execution as ex
from store.db import open_store
from tasks.safety import status
from tests.faults.conftest import BTC, ETH, HISTORY, KEY, MARKETS, SECRET, START, H, intent_row
from tests.support.control import Account, ControlWatch, control_violations
from tests.support.feeds import CandleFeed, hourly_candles
from venues.kraken import make_client
from venues.kraken_orders import KrakenOrderVenue
from venues.kraken_sim import FaultKind, Faults, RunningSim, start_in_thread
from venues.paper import PaperConfig

PID = "reg-btc"  # the BTC long of intent_row: 0.3 @ 60k, stop 57k, TPs 61.8k / 63.6k / 65.4k


def feed(btc_after: Sequence[float], eth_after: Sequence[float] = ()) -> CandleFeed:
    """Flat history, then BTC (and ETH) bar by bar; later bars repeat the last price."""
    tail = 40
    btc = list(btc_after) + [btc_after[-1] if btc_after else 60_000.0] * tail
    eth = list(eth_after) + [eth_after[-1] if eth_after else 3_000.0] * (tail + len(btc_after))
    frames = {
        BTC.symbol: hourly_candles([60_000.0] * HISTORY + btc, 5.0, START),
        ETH.symbol: hourly_candles([3_000.0] * HISTORY + eth[: len(btc)], 0.5, START),
    }
    return CandleFeed(MARKETS, frames, START + HISTORY * H, name="regressions")


@pytest.fixture
def world(tmp_path: Path, request) -> Iterator:
    """A function (path, config=None, **venue_kw) -> (sim, account); all torn down after."""
    opened: list[tuple[RunningSim, KrakenOrderVenue]] = []

    def make(btc_after, config: AppConfig | None = None, eth_after=(), **venue_kw):
        sim = start_in_thread(
            feed(btc_after, eth_after),
            KEY,
            SECRET,
            faults=Faults(timeout_s=0.6, rate_budget=None),
            paper=PaperConfig(initial_cash=100_000.0),
        )
        client = make_client(api_url=sim.url, api_key=KEY, api_secret=SECRET, timeout_ms=3_000)
        client.enableRateLimit = False
        venue = KrakenOrderVenue(client, clock=sim.exchange.feed.clock, **venue_kw)
        opened.append((sim, venue))
        account = Account(tmp_path / "trading.duckdb", sim, venue, MARKETS, config or AppConfig())
        return sim, account

    yield make
    for sim, venue in opened:
        venue.exchange.session.close()
        sim.stop()


def intents(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows))


def run(account: Account, watch: ControlWatch, *, late_fills: bool = False, **kw) -> None:
    outcome = account.cycle(**kw)
    problems = control_violations(account, watch, outcome, late_fills=late_fills)
    assert problems == [], f"cycle {outcome.cycle_id}: {problems}"


def record(account: Account, pid: str = PID):
    with open_store(account.db, read_only=True) as con:
        return ex.position(con, pid)


def our_orders(sim: RunningSim, kind: OrderType, pid: str = PID) -> list:
    return [
        o for o in sim.engine.orders() if o.type is kind and (o.client_id or "").startswith(pid)
    ]


def working_tp_total(sim: RunningSim) -> float:
    return round(
        sum(o.size - o.filled for o in sim.engine.open_orders() if o.type is OrderType.TAKE_PROFIT),
        10,
    )


# -- 1. a partially filled stop ---------------------------------------------------------------


def test_a_partly_filled_stop_keeps_working_the_ladder_shrinks_and_nothing_stays_behind(world):
    sim, account = world([56_900.0, 56_800.0])
    watch = ControlWatch()
    run(account, watch, intents=intents(intent_row(PID)))
    assert our_orders(sim, OrderType.STOP)[0].size == pytest.approx(0.3)
    sim.faults.partial_stop_fills(0.5, remainder="keep")

    sim.advance(1)  # falls through 57k: half the stop fills, the rest keeps working
    run(account, watch)
    p = record(account)
    assert p.state is PositionState.PROTECTED and p.size == pytest.approx(0.15)
    assert len(our_orders(sim, OrderType.STOP)) == 1  # no second stop beside the working one
    assert working_tp_total(sim) == pytest.approx(0.15)  # the TP ladder covers what is held

    sim.advance(1)  # the remainder trades: flat
    run(account, watch)
    assert record(account).state is PositionState.CLOSED
    assert sim.engine.positions() == [] and sim.engine.open_orders() == []


@pytest.mark.parametrize("action", ["close", "reprice"])
def test_a_stop_whose_rest_is_cancelled_is_replaced_for_what_is_left_or_the_rest_closed(
    world, action
):
    config = AppConfig.model_validate({"execution": {"crossed_stop_action": action}})
    sim, account = world([56_900.0], config)
    watch = ControlWatch()
    run(account, watch, intents=intents(intent_row(PID)))
    sim.faults.partial_stop_fills(0.5, remainder="cancel")  # Kraken: a triggered stop is IOC

    sim.advance(1)
    run(account, watch)
    p = record(account)
    stops = our_orders(sim, OrderType.STOP)
    if action == "close":  # the mark is below the old stop: closed as the stop would have
        assert p.state is PositionState.CLOSED and sim.engine.positions() == []
        assert len(stops) == 1
    else:  # a new stop for the 0.15 left, beyond the mark; the ladder re-sized to 0.15
        assert p.is_protected and p.size == pytest.approx(0.15)
        new = [o for o in stops if o.status is OrderStatus.OPEN]
        assert [o.size for o in new] == [pytest.approx(0.15)]
        assert new[0].trigger_price < 56_900.0
        assert working_tp_total(sim) == pytest.approx(0.15)
    sim.advance(1)
    run(account, watch)


def test_a_closed_records_exit_that_survived_its_cancel_is_recognised_as_ours_and_cancelled(
    world, caplog
):
    sim, account = world([66_000.0])  # one bar through every TP
    watch = ControlWatch()
    run(account, watch, intents=intents(intent_row(PID)))
    sim.advance(1)
    # the stop's cancel fails as often as the gateway tries it at once
    sim.faults.inject(FaultKind.SERVER_ERROR, count=CANCEL_ATTEMPTS, endpoints=["cancelorder"])
    with caplog.at_level(logging.WARNING, logger="smc_trader"):
        run(account, watch)  # the last TP closes it
    assert record(account).state is PositionState.CLOSED
    messages = [r.getMessage() for r in caplog.records]
    assert any("cancel" in m and "failed" in m for m in messages)
    # reconciliation, in the same cycle, knows the stop by its client id and cancels it
    assert any("STRAY" in m and "of closed record reg-btc" in m for m in messages)
    assert not any("not ours" in m for m in messages)
    assert sim.engine.open_orders() == []
    sim.advance(1)
    run(account, watch)


# -- 2. an entry fill counted twice -------------------------------------------------------------


def test_an_entry_recovered_from_the_venue_is_not_counted_again_when_its_fill_arrives(world):
    sim, account = world([60_000.0, 56_900.0, 56_900.0])
    watch = ControlWatch()
    sim.faults.delay_fill_reports(bars=1)
    run(account, watch, intents=intents(intent_row(PID)), late_fills=True)
    p = record(account)  # rebuilt from the venue's position: the fill is not reported yet
    assert p.size == pytest.approx(0.3) and p.stop_size == pytest.approx(0.3)

    sim.advance(1)  # now /fills reports the entry
    run(account, watch, late_fills=True)
    p = record(account)
    assert p.size == pytest.approx(0.3) and p.entry_filled == pytest.approx(0.3)
    assert [o.size for o in our_orders(sim, OrderType.STOP)] == [pytest.approx(0.3)]

    for _ in range(3):  # stopped out; the stop's fill arrives a bar late
        sim.advance(1)
        run(account, watch, late_fills=True)
    assert record(account).state is PositionState.CLOSED
    assert sim.engine.positions() == [] and sim.engine.open_orders() == []


# -- 3. a refused stop --------------------------------------------------------------------------


GAPPED = {**intent_row(PID), "stop": 60_500.0}  # the signal's stop; the entry fills at 60k


@pytest.mark.parametrize("action", ["close", "reprice"])
def test_a_stop_already_through_the_mark_is_never_sent_as_is(world, action):
    config = AppConfig.model_validate({"execution": {"crossed_stop_action": action}})
    sim, account = world([60_000.0], config)
    sim.faults.refuse_wrong_side_stops("invalidPrice")
    watch = ControlWatch()
    run(account, watch, intents=intents(GAPPED))
    stops = our_orders(sim, OrderType.STOP)
    assert all(o.trigger_price != 60_500.0 for o in stops)  # the invalid price never sent
    if action == "close":
        assert stops == [] and sim.engine.positions() == []
        assert record(account).state is PositionState.CLOSED
    else:
        (stop,) = stops
        assert stop.trigger_price == pytest.approx(59_700.0)  # 0.5 % beyond the 60k mark
        assert record(account).is_protected
    sim.advance(1)
    run(account, watch)


def test_a_stop_the_venue_keeps_refusing_is_retried_twice_a_cycle_then_degrades_then_halts(
    world, tmp_path
):
    sim, account = world([60_000.0] * 8)
    watch = ControlWatch()
    run(account, watch, intents=intents(intent_row(PID)))
    (stop,) = our_orders(sim, OrderType.STOP)
    refuse = {"endpoints": ["sendorder"], "reason": "insufficientAvailableFunds"}
    sim.faults.inject(FaultKind.REJECT, count=None, **refuse)  # every order refused from now
    sim.exchange.cancel_by_hand(stop.venue_order_id)  # and someone removed the stop
    states = []
    sends = []
    for _ in range(5):
        sim.advance(1)
        outcome = account.cycle()
        states.append(outcome.state)
        assert outcome.error is None
        with open_store(account.db, read_only=True) as con:
            sends.append(ex.stop_sends(con, outcome.cycle_id).get(PID, 0))
    assert max(sends) <= 2 and min(sends) >= 1  # retried every cycle, never more than twice
    # cycle ends without a stop: 1 (NORMAL), 2 (DEGRADED), 3, 4 (HALTED)
    assert states[0] is SystemState.NORMAL
    assert states[1] is SystemState.DEGRADED and states[2] is SystemState.DEGRADED
    assert states[3] is SystemState.HALTED and states[4] is SystemState.HALTED
    p = record(account)
    assert p.stop_problem is not None and "insufficientAvailableFunds" in p.stop_problem
    assert p.stop_rejections >= 8  # two refused sends a cycle, never unbounded
    lines = status(account.db, account.config.safety)
    assert any("unprotected_cycles" in line and "HALT" in line for line in lines)
    assert any("NOT WORKING" in line for line in lines)


# -- 4. downtime --------------------------------------------------------------------------------


def test_a_position_closed_by_hand_while_down_loses_its_orders_and_its_exit_is_recorded(world):
    sim, account = world([60_000.0] * 6)
    watch = ControlWatch()
    run(account, watch, intents=intents(intent_row(PID)))
    sim.advance(2)  # down for two bars: closed by hand meanwhile
    sim.exchange.close_position_by_hand(BTC.symbol)
    run(account, watch, startup=True)  # first sighting: suspected, its orders still there
    sim.advance(1)
    run(account, watch)  # second: record closed, its stop and TPs cancelled
    p = record(account)
    assert p.state is PositionState.CLOSED and "account log" in (p.close_reason or "")
    assert p.realised_pnl is not None
    assert sim.engine.open_orders() == []


def test_a_stop_fill_buried_behind_the_fill_look_back_is_recovered_from_the_account_log(world):
    sim, account = world([60_000.0, 56_900.0, 56_900.0, 56_900.0], max_fill_pages=1,
                         fill_lookup_pages=1)
    watch = ControlWatch()
    run(account, watch, intents=intents(intent_row(PID)))
    sim.advance(2)  # down: the stop fills
    assert sim.engine.positions() == []
    for i in range(60):  # then 120 other trades bury its fill behind the last 100
        sim.exchange.place_by_hand(ETH.symbol, "buy", 0.001)
        sim.exchange.place_by_hand(ETH.symbol, "sell", 0.001)
        assert i < 60
    run(account, watch, startup=True, late_fills=True)
    sim.advance(1)
    run(account, watch, late_fills=True)
    p = record(account)
    assert p.state is PositionState.CLOSED
    assert "account log" in p.close_reason and "closed at" in p.close_reason
    expected = sum(
        e.realised_pnl - e.fill.fee
        for e in sim.engine.executions()
        if e.fill.symbol == BTC.symbol
    )
    assert p.realised_pnl == pytest.approx(expected, abs=0.01)
    assert sim.engine.open_orders() == []


# -- 5. rate limits -----------------------------------------------------------------------------


def test_cycles_complete_and_keep_control_with_30_percent_429s(world):
    sim, account = world([60_500.0, 61_900.0, 59_000.0, 56_800.0, 57_500.0, 58_000.0])
    sim.faults.inject(FaultKind.RATE_LIMIT, count=None, probability=0.3)
    watch = ControlWatch()
    eth = intent_row("reg-eth", ETH.symbol, "short", 2.0)
    run(account, watch, intents=intents(intent_row(PID), eth))
    for _ in range(6):
        sim.advance(1)
        run(account, watch)
    assert all(o.error is None for o in account.outcomes)


# -- 7. two flattens of one position in one cycle ------------------------------------------------


def test_two_flattens_of_one_position_go_out_under_two_ids_and_neither_is_overwritten(world):
    sim, account = world([60_000.0] * 3)
    watch = ControlWatch()
    run(account, watch, intents=intents(intent_row(PID)))
    sim.exchange.set_partial_fills(max_fill_fraction=0.5)  # the flatten's IOC fills half
    from core.engine.execution import apply_events, drive
    from core.position_events import CloseRequested
    from tasks.execution import open_stage

    ctx = account.context()
    with open_store(account.db) as con:
        positions = {p.position_id: p for p in ex.live_positions(con)}
    with open_stage(account.venue, ctx, account.config.execution) as stage:
        actions, applied = apply_events(
            positions, [CloseRequested(PID, "operator")], break_even_after_tp1=False
        )
        stage.save(positions, applied)
        drive(stage, positions, actions, account.config.execution, {})
    with open_store(account.db, read_only=True) as con:
        rows = con.execute(
            "SELECT client_id, state, venue_order_id FROM wal WHERE action_type = 'flatten' "
            "ORDER BY client_id"
        ).fetchall()
    assert [r[0] for r in rows][:2] == [f"{PID}-fl-0", f"{PID}-fl-1"]
    assert all(r[1] == "acknowledged" and r[2] for r in rows)
    assert len({r[2] for r in rows}) == len(rows)  # each kept its own venue order id
    sim.advance(1)
    run(account, watch)


def test_an_order_answered_429_is_settled_at_once_not_left_to_fail_the_stage(world):
    # Kraken refuses a rate-limited request before doing anything: a lookup by client id
    # settles it (absent: never placed) and the stop is retried in the same cycle.
    sim, account = world([60_000.0] * 3)
    watch = ControlWatch()
    run(account, watch, intents=intents(intent_row(PID)))
    (stop,) = our_orders(sim, OrderType.STOP)
    sim.exchange.cancel_by_hand(stop.venue_order_id)
    sim.faults.inject(FaultKind.RATE_LIMIT, count=1, endpoints=["sendorder"])
    sim.advance(1)
    run(account, watch)  # the replacement meets the 429, is settled, retried, placed
    with open_store(account.db, read_only=True) as con:
        rows = con.execute("SELECT intent_id, state, reason FROM wal").fetchall()
    assert not any(state == "unknown" for _, state, _ in rows)
    assert any("rate limited, not placed" in (reason or "") for _, _, reason in rows)
    assert record(account).is_protected
