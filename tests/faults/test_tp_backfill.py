"""The TP backfill each cycle: a missing take-profit level is placed again, each level judged
on its own (a level the price has passed is skipped with a warning, the others still placed)."""

from __future__ import annotations

import logging

import polars as pl

from core.engine.execution import apply_events
from core.orders import OrderStatus, OrderType
from core.positions import TpCancelled
from store import execution as ex
from store.db import open_store
from tasks.execution import execute
from tests.faults.conftest import BTC, context, intent_row, markets_frame


def _with_last(price: float) -> pl.DataFrame:
    return markets_frame().with_columns(pl.lit(price).alias("last"))


def _only_position(db):
    with open_store(db) as con:
        (position,) = ex.live_positions(con)
    return position


def _lose_tp(db, kraken, level: int) -> str:
    """The venue loses TP `level` (cancelled outside the bot); the record learns of it."""
    position = _only_position(db)
    order_id = position.tp_order_ids[level]
    kraken.cancel(order_id)
    positions = {position.position_id: position}
    _, applied = apply_events(
        positions,
        [TpCancelled(position.position_id, level, order_id, "cancelled at the venue")],
        break_even_after_tp1=False,
    )
    at = position.opened_at
    with open_store(db) as con:
        ex.save_positions(con, list(positions.values()), at)
        ex.record_events(con, applied, 1, at)
    return order_id


def _open_tps(kraken) -> list:
    return [
        o
        for o in kraken.open_orders(BTC.symbol)
        if o.type is OrderType.TAKE_PROFIT and o.status is OrderStatus.OPEN
    ]


def test_a_lost_take_profit_is_placed_again_next_cycle(sim, kraken, db, cfg):
    empty = pl.DataFrame(schema={"client_intent_id": pl.String})
    execute(context(db, sim), kraken, pl.DataFrame([intent_row("bf1")]), _with_last(60_000), cfg)
    assert len(_open_tps(kraken)) == 3
    lost = _lose_tp(db, kraken, 2)
    assert len(_open_tps(kraken)) == 2

    report = execute(context(db, sim, 2), kraken, empty, _with_last(60_000.0), cfg)

    position = _only_position(db)
    assert report.placed == 1
    assert position.tp_order_ids[2] not in (None, lost)
    assert {o.venue_order_id for o in _open_tps(kraken)} == set(position.tp_order_ids.values())


def test_a_passed_level_is_skipped_with_a_warning_and_the_others_still_placed(
    sim, kraken, db, cfg, caplog
):
    empty = pl.DataFrame(schema={"client_intent_id": pl.String})
    execute(context(db, sim), kraken, pl.DataFrame([intent_row("bf2")]), _with_last(60_000), cfg)
    _lose_tp(db, kraken, 1)  # TP1 at 61,800
    _lose_tp(db, kraken, 3)  # TP3 at 65,400
    # The last price has passed TP1 but not TP3.
    with caplog.at_level(logging.WARNING):
        execute(context(db, sim, 2), kraken, empty, _with_last(62_000.0), cfg)

    position = _only_position(db)
    assert position.tp_order_ids[1] is None
    assert position.tp_order_ids[3] is not None
    assert len(_open_tps(kraken)) == 2
    assert any(
        "tp1" in r.getMessage().lower() or "level 1" in r.getMessage().lower()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )
