"""The seed's outages 3 and 4, end to end through the gateway (regression tests).

(3) Start-up with a stale or empty position registry while the venue holds positions:
    the old bot flattened what it did not know. Now `reconcile_stage(startup=True)` logs
    PHANTOM, imports each position, protects it (a new stop, or the venue's existing
    reduce-only stop adopted), flattens nothing and cancels nothing. Against the
    Kraken-Futures simulator through ccxt and against the paper venue.
(4) An action without a side (core.actions.Flatten; a `None.value` on its side once
    stopped all flattening) goes through `Gateway.execute` and the intent log with side
    'unknown', whether the venue holds something on the symbol or nothing, and after a
    crash mid-flatten.

(This file is not named test_outages.py: tests/unit/risk has one, and pytest imports test
files by their base name.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core.actions import Flatten
from core.cycle import CycleContext
from core.engine.execution import apply_events
from core.engine.gateway import recordless_flatten_id
from core.orders import OrderRequest, OrderSide, OrderStatus, OrderType, OrderVenue, PositionSide
from core.positions import CloseRequested, PositionState, empty_tps
from core.positions import Position as Record
from core.wal import IntentState, advance, new_intent
from store import execution as ex
from store.db import open_store
from tasks.execution import execute, reconcile_stage
from tests.faults.conftest import (
    BTC,
    CASH,
    ETH,
    flat_feed,
    intent_row,
    kraken_on,
    markets_frame,
    serve,
)
from tests.support.stages import stage_on
from venues.kraken_sim import FaultKind
from venues.paper import PaperConfig, PaperEngine, PaperOrderVenue


@dataclass
class Venue:
    """An order venue, the engine behind it (to see what really happened) and its clock."""

    orders: OrderVenue
    engine: PaperEngine
    now: Any  # () -> datetime
    sim: Any = None  # the RunningSim, for the simulator only


@pytest.fixture(params=["kraken-simulator", "paper"])
def venue(request) -> Iterator[Venue]:
    if request.param == "paper":
        paper = PaperOrderVenue.on_feed(flat_feed(), PaperConfig(initial_cash=CASH))
        yield Venue(paper, paper.engine, paper.clock.now)
        return
    with serve() as sim:
        kraken = kraken_on(sim)
        yield Venue(kraken, sim.engine, sim.now, sim)
        kraken.exchange.session.close()


def ctx_for(db: Path, venue: Venue, cycle_id: int = 1) -> CycleContext:
    return CycleContext(cycle_id, "test", venue.now(), db, datetime.now(UTC))


def order(cid: str, symbol: str, side: OrderSide, kind: OrderType, size: float, **kw: Any):
    return OrderRequest(symbol, side, kind, size, cid, **kw)


def hold_positions(venue: Venue) -> dict[str, str]:
    """What a previous process left at the venue: a BTC long without a stop, an ETH short
    with its reduce-only stop, and a resting BTC limit order (someone's; not understood).
    Returns the venue ids of the orders left open."""
    v = venue.orders
    v.submit(order("old-btc", BTC.symbol, OrderSide.BUY, OrderType.MARKET, 0.3))
    v.submit(order("old-eth", ETH.symbol, OrderSide.SELL, OrderType.MARKET, 2.0))
    eth_stop = v.submit(
        order(
            "old-eth-stop",
            ETH.symbol,
            OrderSide.BUY,
            OrderType.STOP,
            2.0,
            trigger_price=3_150.0,
            reduce_only=True,
        )
    )
    resting = v.submit(
        order("manual-bid", BTC.symbol, OrderSide.BUY, OrderType.LIMIT, 0.01, price=50_000.0)
    )
    return {"eth_stop": eth_stop.venue_order_id, "resting": resting.venue_order_id}


def stale_records(db: Path) -> None:
    """A registry from another time: a long-closed BTC record and an open SOL position the
    venue no longer has."""
    at = datetime(2025, 1, 1, tzinfo=UTC)

    def record(pid: str, symbol: str, state: PositionState, size: float) -> Record:
        return Record(
            position_id=pid,
            symbol=symbol,
            side=PositionSide.LONG,
            state=state,
            size=size,
            requested_size=1.0,
            entry_price=100.0,
            stop_price=90.0,
            tick_size=0.01,
            lot_size=0.01,
            opened_at=at,
            tps=empty_tps(),
            entry_filled=1.0,
            entry_complete=True,
            stop_order_id="gone-stop" if size else None,
        )

    with open_store(db) as con:
        ex.save_positions(
            con,
            [
                record("old-btc-closed", BTC.symbol, PositionState.CLOSED, 0.0),
                record("old-sol-open", "SOL/USD:USD", PositionState.PROTECTED, 1.0),
            ],
            at,
        )


@pytest.mark.parametrize("registry", ["empty", "stale"])
def test_startup_imports_and_protects_unknown_positions_and_destroys_nothing(
    venue, tmp_path, cfg, caplog, registry
):
    db = tmp_path / "trading.duckdb"
    left = hold_positions(venue)
    if registry == "stale":
        stale_records(db)
    before_positions = sorted((p.symbol, p.side, p.size) for p in venue.engine.positions())
    before_orders = {o.venue_order_id for o in venue.engine.orders()}

    with caplog.at_level(logging.WARNING, logger="smc_trader"):
        report = reconcile_stage(
            ctx_for(db, venue), venue.orders, markets_frame(), cfg, startup=True
        )

    # logged, imported, protected
    phantoms = [line for line in report.log_lines if "PHANTOM" in line]
    assert len(phantoms) == 2 and all("no destructive action" in line for line in phantoms)
    assert sum("PHANTOM" in r.getMessage() for r in caplog.records) == 2
    assert report.imported == 2
    with open_store(db, read_only=True) as con:
        records = {p.symbol: p for p in ex.live_positions(con) if p.imported}
        wal = con.execute("SELECT action_type, symbol, state FROM wal").fetchall()
    assert set(records) == {BTC.symbol, ETH.symbol}
    assert all(p.state is PositionState.PROTECTED for p in records.values())
    btc, eth = records[BTC.symbol], records[ETH.symbol]
    assert (btc.side, btc.size, eth.side, eth.size) == (
        PositionSide.LONG,
        0.3,
        PositionSide.SHORT,
        2.0,
    )
    assert eth.stop_order_id == left["eth_stop"]  # the venue's own stop, adopted
    new = [o for o in venue.engine.orders() if o.venue_order_id not in before_orders]
    assert len(new) == 1  # exactly one order sent: BTC's protective stop
    (stop,) = new
    assert (stop.symbol, stop.type, stop.side, stop.reduce_only) == (
        BTC.symbol,
        OrderType.STOP,
        OrderSide.SELL,
        True,
    )
    assert stop.size == pytest.approx(0.3) and stop.trigger_price < 60_000.0
    assert btc.stop_order_id == stop.venue_order_id
    assert wal == [("place_stop", BTC.symbol, "acknowledged")]

    # nothing flattened, nothing cancelled
    after_positions = sorted((p.symbol, p.side, p.size) for p in venue.engine.positions())
    assert after_positions == before_positions
    open_ids = {o.venue_order_id for o in venue.engine.open_orders()}
    assert {left["eth_stop"], left["resting"]} <= open_ids
    assert all(o.status is not OrderStatus.CANCELLED for o in venue.engine.orders())
    assert report.execution.cancelled == 0
    assert not any(o.type is OrderType.MARKET and o.reduce_only for o in venue.engine.orders())
    if registry == "stale":  # a record the venue does not hold: suspected, left alone
        orphan = [line for line in report.log_lines if "ORPHAN suspected" in line]
        assert len(orphan) == 1 and "old-sol-open" in orphan[0]
        with open_store(db, read_only=True) as con:
            assert ex.position(con, "old-sol-open").state is PositionState.PROTECTED

    # a second start-up changes nothing: the imports are known now
    again = reconcile_stage(ctx_for(db, venue, 2), venue.orders, markets_frame(), cfg, startup=True)
    assert again.imported == 0 and not any("PHANTOM" in line for line in again.log_lines)
    assert len(venue.engine.orders()) == len(before_orders) + 1


# -- (4) an action without a side ---------------------------------------------------------------


def wal_rows(db: Path) -> list[tuple]:
    with open_store(db, read_only=True) as con:
        return con.execute(
            "SELECT action_type, symbol, side, client_id, state, reason FROM wal ORDER BY intent_id"
        ).fetchall()


def test_a_flatten_has_no_side_is_logged_unknown_and_closes_what_the_venue_holds(venue, tmp_path):
    db = tmp_path / "trading.duckdb"
    venue.orders.submit(order("held", BTC.symbol, OrderSide.BUY, OrderType.MARKET, 0.3))
    action = Flatten(BTC.symbol, "operator flatten")
    assert not hasattr(action, "side")
    with stage_on(venue.orders, db, 7, venue.orders.clock) as gw:
        events = gw.gateway.execute(action)
    assert events == []
    assert venue.engine.positions() == []  # closed by a reduce-only market sell
    cid = recordless_flatten_id(7, BTC.symbol)
    (close,) = [o for o in venue.engine.orders() if o.client_id == cid]
    assert (close.side, close.type, close.reduce_only, close.size) == (
        OrderSide.SELL,
        OrderType.MARKET,
        True,
        0.3,
    )
    assert wal_rows(db) == [
        ("flatten", BTC.symbol, "unknown", cid, "acknowledged", None)
    ]


def test_a_flatten_with_nothing_held_is_logged_unknown_and_does_not_crash(venue, tmp_path):
    db = tmp_path / "trading.duckdb"
    venue.orders.submit(order("other", BTC.symbol, OrderSide.BUY, OrderType.MARKET, 0.3))
    before = len(venue.engine.orders())
    with stage_on(venue.orders, db, 8, venue.orders.clock) as gw:
        events = gw.gateway.execute(Flatten(ETH.symbol, "kill switch flatten"))
        assert gw.report.errors == []
    assert events == []
    assert len(venue.engine.orders()) == before  # nothing sent
    ((kind, symbol, side, cid, state, reason),) = wal_rows(db)
    expected = ("flatten", ETH.symbol, "unknown", recordless_flatten_id(8, ETH.symbol))
    assert (kind, symbol, side, cid) == expected
    assert state == "rejected" and "nothing held" in reason
    assert [(p.symbol, p.size) for p in venue.engine.positions()] == [(BTC.symbol, 0.3)]


@pytest.mark.parametrize("sent", [True, False], ids=["order-at-venue", "never-reached"])
def test_a_flatten_left_unresolved_by_a_crash_is_resolved_by_client_id(venue, tmp_path, sent):
    """The process died after logging the flatten as SENT: resolution looks the client id up
    (acknowledged if the order is there, rejected if not) and never rebuilds a side."""
    db = tmp_path / "trading.duckdb"
    venue.orders.submit(order("held", BTC.symbol, OrderSide.BUY, OrderType.MARKET, 0.3))
    cid = recordless_flatten_id(3, BTC.symbol)
    at = datetime.now(UTC)
    entry = new_intent(Flatten(BTC.symbol, "crash test"), at=at, intent_id=cid)
    with open_store(db) as con:
        ex.save_intent(con, advance(entry, IntentState.SENT, at=at), 3)
    if sent:
        venue.orders.submit(
            order(cid, BTC.symbol, OrderSide.SELL, OrderType.MARKET, 0.3, reduce_only=True)
        )
    with stage_on(venue.orders, db, 4, venue.orders.clock) as gw:
        assert gw.gateway.resolve_unresolved() == []
    ((_, _, side, _, state, _),) = wal_rows(db)
    assert side == "unknown"
    assert state == ("acknowledged" if sent else "rejected")
    assert len([o for o in venue.engine.orders() if o.client_id == cid]) == int(sent)


def test_a_flatten_whose_answer_is_lost_is_not_marked_rejected(tmp_path):
    """A timeout or 5xx after the venue took the flatten: its outcome is unknown (resolved
    later by client id), not a rejection that the log would never look at again."""
    db = tmp_path / "trading.duckdb"
    with serve() as sim:
        kraken = kraken_on(sim)
        kraken.submit(order("held", BTC.symbol, OrderSide.BUY, OrderType.MARKET, 0.3))
        sim.faults.inject(FaultKind.ACK_LOST, endpoints=["sendorder"], status=503)
        with stage_on(kraken, db, 5, sim.exchange.feed.clock) as gw:
            assert gw.gateway.execute(Flatten(BTC.symbol, "operator flatten")) == []
        assert sim.engine.positions() == []  # the venue did close it
        ((_, _, side, cid, state, _),) = wal_rows(db)
        assert (side, state) == ("unknown", "unknown")
        with stage_on(kraken, db, 6, sim.exchange.feed.clock) as gw:
            gw.gateway.resolve_unresolved()
        assert wal_rows(db)[0][4] == "acknowledged"
        assert [o.client_id for o in sim.engine.orders()].count(cid) == 1
        kraken.exchange.session.close()


def test_a_flatten_of_a_position_being_closed_is_applied_to_it_and_retires_its_exits(
    venue, tmp_path, cfg
):
    """A close of a known position (CloseRequested -> CLOSING -> a side-less Flatten): the
    flatten's fill is the position's (found through the symbol, as the action names no
    position), so the record closes at once and its stop and TPs are cancelled, instead of
    waiting two cycles for ORPHAN while its exits stay at the venue."""
    db = tmp_path / "trading.duckdb"
    intents = pl.DataFrame([intent_row("fl")])
    execute(ctx_for(db, venue), venue.orders, intents, markets_frame(), cfg)
    with open_store(db) as con:
        positions = {p.position_id: p for p in ex.live_positions(con)}
    assert positions["fl"].state is PositionState.PROTECTED
    events: list = [CloseRequested("fl", "operator close")]
    with stage_on(venue.orders, db, 2, venue.orders.clock) as gw:
        for _ in range(4):  # bounded: close -> flatten -> fill -> cancels
            actions, applied = apply_events(positions, events, break_even_after_tp1=False)
            gw.save(positions, applied)
            events = [e for action in actions for e in gw.gateway.execute(action)]
            events += gw.fill_events(positions)
            if not events and not actions:
                break
        gw.save(positions, [])
    assert venue.engine.positions() == []
    assert venue.engine.open_orders() == []  # stop and TPs cancelled with the close
    with open_store(db, read_only=True) as con:
        record = ex.position(con, "fl")
        flat = con.execute(
            "SELECT position_id FROM fills WHERE client_id = ?", ["fl-fl-0"]  # the record's own
        ).fetchall()
    assert (record.state, record.close_reason) == (PositionState.CLOSED, "operator close")
    assert flat == [("fl",)]
