"""The seed's outages, as regression tests that fail on the old behaviour.

(3) A start-up with an empty or stale position registry flattened real
    positions. Now: nothing is flattened; the positions are imported (PHANTOM)
    and protected.
(4) A FLATTEN action carries no side, and `action.side.value` crashed the
    gateway, which stopped all flattening. Now: every path that records or logs
    an action shows the side as 'unknown'.
"""

from __future__ import annotations

import logging

import pytest
from position_builders import SYMBOL, T0, in_state, protection, stop_order

from core.actions import Flatten, ImportPosition, PlaceStop, describe
from core.orders import Order, OrderSide, OrderStatus, OrderType, PositionReport, PositionSide
from core.positions import Position, PositionState
from core.reconcile import ReconcileResult, reconcile
from core.wal import Decision, IntentState, advance, new_intent, position_event, resolve_pending

ETH = "PF_ETHUSD"
VENUE = [
    PositionReport(SYMBOL, PositionSide.LONG, 10.0, 100.0, mark_price=101.0),
    PositionReport(ETH, PositionSide.SHORT, 0.5, 2000.0, mark_price=1990.0),
]
ETH_STOP = stop_order("eth-stop", symbol=ETH, side=OrderSide.BUY, size=0.5, trigger=2100.0)


def startup(known: list[Position]) -> ReconcileResult:
    return reconcile(
        known,
        VENUE,
        [ETH_STOP],
        startup=True,
        previously_missing=set(),
        protection=protection(),
        now=T0,
    )


def test_outage3_startup_with_an_empty_registry_imports_and_protects_never_flattens() -> None:
    result = startup([])
    kinds = [a.action_type.value for a in result.actions]
    assert "flatten" not in kinds and "cancel" not in kinds
    phantoms = [line for line in result.log_lines if "PHANTOM" in line]
    assert len(phantoms) == 2
    imported = {a.symbol: a for a in result.actions if isinstance(a, ImportPosition)}
    assert set(imported) == {SYMBOL, ETH}
    # BTC had no stop at the venue: one is placed. ETH's existing stop is adopted.
    stops = [a for a in result.actions if isinstance(a, PlaceStop)]
    assert [(s.symbol, s.side) for s in stops] == [(SYMBOL, OrderSide.SELL)]
    assert imported[ETH].stop_order_id == "eth-stop"
    assert all(p.imported and p.is_open for p in result.positions)


def test_outage3_startup_with_a_stale_registry_imports_and_closes_nothing() -> None:
    stale = [
        in_state(PositionState.CLOSED, "old-btc"),  # a past BTC trade, long closed
        in_state(PositionState.PROTECTED, "old-sol", symbol="PF_SOLUSD"),  # gone meanwhile
    ]
    result = startup(stale)
    kinds = [a.action_type.value for a in result.actions]
    assert "flatten" not in kinds and "cancel" not in kinds and "close_record" not in kinds
    assert kinds.count("import_position") == 2
    assert result.suspected_missing == {"old-sol"}  # closed only after a second check
    assert any("ORPHAN suspected" in line for line in result.log_lines)


def test_outage4_a_flatten_without_a_side_is_described_as_side_unknown() -> None:
    flatten = Flatten(SYMBOL, "kill switch")
    assert not hasattr(flatten, "side")
    assert describe(flatten)["side"] == "unknown"


def test_outage4_a_flatten_without_a_side_is_logged_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    info = describe(Flatten(SYMBOL, "kill switch"))
    with caplog.at_level(logging.INFO):
        logging.getLogger("smc_trader.gateway").info(
            "intent %s %s side=%s", info["action"], info["symbol"], info["side"]
        )
    assert "intent flatten PF_XBTUSD side=unknown" in caplog.text


def test_outage4_a_flatten_without_a_side_goes_through_the_intent_log() -> None:
    entry = new_intent(Flatten(SYMBOL, "kill switch"), at=T0, intent_id="c42-flatten-xbt")
    assert entry.side == "unknown" and entry.client_id == "c42-flatten-xbt"
    sent = advance(entry, IntentState.SENT, at=T0)
    unknown = advance(sent, IntentState.UNKNOWN, at=T0, reason="timeout")
    found = Order(
        venue_order_id="v1",
        client_id="c42-flatten-xbt",
        symbol=SYMBOL,
        side=OrderSide.SELL,
        type=OrderType.MARKET,
        size=10.0,
        filled=10.0,
        status=OrderStatus.FILLED,
    )
    (res,) = resolve_pending([unknown], {"c42-flatten-xbt": found})
    assert res.decision is Decision.ACKNOWLEDGE
    done = advance(unknown, res.to_state, at=T0, venue_order_id=res.venue_order_id)
    assert position_event(done) is None  # no position id on a flatten: nothing to assume
