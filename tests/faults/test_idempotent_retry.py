"""Idempotency: a retried submission is recognised by its client id, never sent twice.

(a) The order is accepted but its answer is lost (HTTP 5xx after the work, the connection
    dropped, or the answer arriving after the client's timeout). The execute stage
    finishes what it can and raises VenueRetryableError; Prefect retries the task for real
    (a flow on the session's Prefect server calling `execute_task` with its own retry
    settings); the retry resolves the intent by client id: exactly one order exists.
(b) A resubmission under a client id the exchange already holds is recognised by lookup,
    never a second order: the exchange refuses the duplicate and the gateway adopts the
    order it has; the same action twice sends once; an unresolved intent whose order the
    exchange has is acknowledged, not resubmitted.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from core.actions import PlaceStop
from core.errors import VenueRetryableError
from core.orders import Order, OrderRequest, OrderSide, OrderStatus, OrderType
from core.positions import StopPlaced
from core.wal import IntentState, advance, new_intent
from store import execution as ex
from store.db import open_store
from tasks.execution import execute, execute_task
from tests.faults.conftest import BTC, context, intent_row, kraken_on, markets_frame, serve
from tests.support.stages import stage_on
from venues.kraken_orders import KrakenOrderVenue
from venues.kraken_sim import FaultKind, RunningSim


class Spy:
    """The order venue, counting submissions per client id."""

    def __init__(self, venue: KrakenOrderVenue) -> None:
        self.venue = venue
        self.submits: Counter[str] = Counter()

    def submit(self, request: OrderRequest) -> Order:
        self.submits[request.client_id] += 1
        return self.venue.submit(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.venue, name)


class FaultBefore(Spy):
    """A spy that arms a fault at the simulator just before the first order of one type is
    sent, so the fault strikes that order and not an earlier one."""

    def __init__(self, venue: KrakenOrderVenue, sim: RunningSim, kind: OrderType, fault: dict):
        super().__init__(venue)
        self.sim, self.kind, self.fault = sim, kind, fault
        self.armed = False

    def submit(self, request: OrderRequest) -> Order:
        if request.type is self.kind and not self.armed:
            self.armed = True
            self.sim.faults.inject(endpoints=["sendorder"], **self.fault)
        return super().submit(request)


FAULTS = {
    "5xx-after-accepting": {"kind": FaultKind.ACK_LOST, "status": 503},
    "dropped-after-accepting": {"kind": FaultKind.ACK_LOST, "status": 0},
    "timeout-after-accepting": {"kind": FaultKind.SLOW_ACK},
}
CLIENT_TIMEOUT_MS = 800  # the simulator holds a slow acknowledgement for 2 s


@pytest.mark.integration
@pytest.mark.parametrize("kind", [OrderType.MARKET, OrderType.STOP], ids=["entry", "stop"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_prefect_retry_after_a_lost_acknowledgement_leaves_exactly_one_order(
    prefect_server, db, cfg, kind, fault
):
    with serve(timeout_s=2.0) as sim:
        venue = FaultBefore(kraken_on(sim, timeout_ms=CLIENT_TIMEOUT_MS), sim, kind, FAULTS[fault])
        ctx = context(db, sim)
        intents = pl.DataFrame([intent_row("idem")])

        @flow(name="idempotent-retry")
        def one_cycle():
            return execute_task(ctx, venue, intents, markets_frame(), cfg, return_state=True)

        task_state = one_cycle()
        orders = sim.engine.orders()
        (held,) = sim.engine.positions()

    assert task_state.is_completed(), task_state
    with get_client(sync_client=True) as client:
        run = client.read_task_run(task_state.state_details.task_run_id)
    assert run.run_count == 2  # the first run raised, Prefect ran it again
    lost = "idem-en-0" if kind is OrderType.MARKET else "idem-sl-0"
    assert venue.submits[lost] == 1  # the retry looked it up and did not send it again
    per_client = Counter(o.client_id for o in orders)
    assert per_client[lost] == 1  # exactly one order exists at the exchange
    assert set(per_client) == {"idem-en-0", "idem-sl-0", "idem-tp1-0", "idem-tp2-0", "idem-tp3-0"}
    assert set(per_client.values()) == {1}
    assert held.size == pytest.approx(0.3)  # one entry's worth
    with open_store(db, read_only=True) as con:
        states = {r[0] for r in con.execute("SELECT state FROM wal").fetchall()}
        (position,) = ex.live_positions(con)
    assert states == {"acknowledged"}
    assert position.state.value == "protected"
    stop = next(o for o in orders if o.client_id == "idem-sl-0")
    assert position.stop_order_id == stop.venue_order_id
    assert all(position.tp_order_ids.values())


def test_the_plain_stage_called_again_acknowledges_the_unknown_entry(sim, db, cfg):
    """What the Prefect retry does, without Prefect: the stage raises VenueRetryableError
    after the unknown outcome, and the second call acknowledges the entry by client id."""
    venue = FaultBefore(kraken_on(sim), sim, OrderType.MARKET, FAULTS["5xx-after-accepting"])
    ctx = context(db, sim)
    intents = pl.DataFrame([intent_row("plain")])
    with pytest.raises(VenueRetryableError):
        execute(ctx, venue, intents, markets_frame(), cfg)
    report = execute(ctx, venue, intents, markets_frame(), cfg)
    assert report.unknown == 0 and report.placed == 0  # everything was placed the first time
    entries = [o for o in sim.engine.orders() if o.client_id == "plain-en-0"]
    assert len(entries) == 1 and entries[0].status is OrderStatus.FILLED
    assert venue.submits["plain-en-0"] == 1
    with open_store(db, read_only=True) as con:
        assert ex.intent(con, "plain-en-0").state is IntentState.ACKNOWLEDGED


# -- (b) duplicate client ids --------------------------------------------------------------


def _stop() -> PlaceStop:
    return PlaceStop("dup", BTC.symbol, OrderSide.SELL, 0.1, 57_000.0, "dup-sl-0")


def _stop_at_the_exchange(kraken: KrakenOrderVenue) -> Order:
    """A long position and its stop, placed directly: as by a process whose log is lost."""
    kraken.submit(OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.MARKET, 0.1, "dup-en-0"))
    return kraken.submit(
        OrderRequest(
            BTC.symbol,
            OrderSide.SELL,
            OrderType.STOP,
            0.1,
            "dup-sl-0",
            trigger_price=57_000.0,
            reduce_only=True,
        )
    )


def _orders_with(sim: RunningSim, client_id: str) -> int:
    return [o.client_id for o in sim.engine.orders()].count(client_id)


def test_a_client_id_the_exchange_already_has_is_adopted_never_sent_twice(sim, kraken, db):
    existing = _stop_at_the_exchange(kraken)
    venue = Spy(kraken)
    with stage_on(venue, db, 1, sim.exchange.feed.clock) as gw:
        events = gw.gateway.execute(_stop())  # the log knows nothing: it is sent, and refused
    assert venue.submits["dup-sl-0"] == 1
    assert events == [StopPlaced("dup", existing.venue_order_id, 57_000.0, 0.1)]
    assert _orders_with(sim, "dup-sl-0") == 1
    with open_store(db, read_only=True) as con:
        entry = ex.intent(con, "dup-sl-0")
    assert entry.state is IntentState.ACKNOWLEDGED
    assert entry.venue_order_id == existing.venue_order_id
    assert (gw.report.placed, gw.report.rejected) == (1, 0)


def test_the_same_action_twice_sends_one_order(sim, kraken, db):
    kraken.submit(OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.MARKET, 0.1, "dup-en-0"))
    venue = Spy(kraken)
    with stage_on(venue, db, 1, sim.exchange.feed.clock) as gw:
        first = gw.gateway.execute(_stop())
    with stage_on(venue, db, 2, sim.exchange.feed.clock) as gw:  # a later run, the same id
        again = gw.gateway.execute(_stop())
    assert first == again and isinstance(first[0], StopPlaced)
    assert venue.submits["dup-sl-0"] == 1
    assert _orders_with(sim, "dup-sl-0") == 1


@pytest.mark.parametrize("state", [IntentState.SENT, IntentState.UNKNOWN])
def test_an_unresolved_intent_the_exchange_has_is_acknowledged_not_resubmitted(
    sim, kraken, db, state
):
    """The process stopped after sending (SENT) or saw no answer (UNKNOWN) while the
    exchange took the order: resolution by client id acknowledges it."""
    at = datetime.now(UTC)
    entry = advance(new_intent(_stop(), at=at), IntentState.SENT, at=at)
    if state is IntentState.UNKNOWN:
        entry = advance(entry, IntentState.UNKNOWN, at=at, reason="timeout")
    with open_store(db) as con:
        ex.save_intent(con, entry, 1)
    placed = _stop_at_the_exchange(kraken)
    venue = Spy(kraken)
    with stage_on(venue, db, 2, sim.exchange.feed.clock) as gw:
        events = gw.gateway.resolve_unresolved()
    assert events == [StopPlaced("dup", placed.venue_order_id, 57_000.0, 0.1)]
    assert venue.submits == Counter()
    assert _orders_with(sim, "dup-sl-0") == 1
    with open_store(db, read_only=True) as con:
        assert ex.intent(con, "dup-sl-0").state is IntentState.ACKNOWLEDGED
