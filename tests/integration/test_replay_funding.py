"""The replay venue's paper account pays and receives the data's funding as it falls due,
and keeps it across a save/restore (a served flow run may be a fresh process)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.orders import OrderRequest, OrderSide, OrderType
from schemas.config import AppConfig
from schemas.config import VenueConfig as Venue
from tasks.execution import make_order_venue, save_order_venue
from venues.replay import ReplayVenue


def test_a_held_position_pays_funding_every_8h_and_the_account_survives_a_restore(
    real_data_dir, tmp_path
):
    db = tmp_path / "funding.duckdb"
    config = AppConfig(venue=Venue(kind="replay", data_dir=real_data_dir))
    feed = ReplayVenue(real_data_dir, start=datetime(2025, 9, 7, 1, tzinfo=UTC))
    orders = make_order_venue(config, feed, db, secrets=None, live=False)  # type: ignore[arg-type]
    orders.submit(OrderRequest("BTC/USD:USD", OrderSide.BUY, OrderType.MARKET, 0.001, "fund-1"))
    cash_after_entry = orders.engine.cash
    for _ in range(8):  # 01:00 -> 09:00 crosses the 08:00 funding time
        feed.clock.advance()
    orders.balance()  # catches up the bars and the funding since the entry
    paid = orders.engine.funding_paid
    assert paid != 0.0
    # BTC funding was positive then: a long pays it.
    assert paid < 0 and orders.engine.cash < cash_after_entry

    save_order_venue(orders, feed, db)
    restored = make_order_venue(config, feed, db, secrets=None, live=False)  # type: ignore[arg-type]
    assert restored.engine.funding_paid == paid
    assert [p.symbol for p in restored.positions()] == ["BTC/USD:USD"]
