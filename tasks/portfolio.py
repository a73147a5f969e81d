"""The `Active Portfolio` line: every open position with its stop and take-profits."""

from __future__ import annotations

import logging
from typing import Any

from core.cycle import CycleContext
from core.summary import count_unprotected
from store.db import open_store
from store.execution import live_positions

log = logging.getLogger("smc_trader.portfolio")


def active_portfolio(ctx: CycleContext) -> list[dict[str, Any]]:
    with open_store(ctx.db_path) as con:
        positions = [p for p in live_positions(con) if p.is_open]
    rows = [
        {
            "symbol": p.symbol,
            "side": str(p.side),
            "size": p.size,
            "entry": p.entry_price,
            "state": str(p.state),
            "stop": p.stop_price,
            "stop_order": p.stop_order_id,
            "tp1": p.tp_prices[1],
            "tp1_order": p.tp_order_ids[1],
            "tp2": p.tp_prices[2],
            "tp2_order": p.tp_order_ids[2],
            "tp3": p.tp_prices[3],
            "tp3_order": p.tp_order_ids[3],
            "imported": p.imported,
        }
        for p in positions
    ]
    described = "; ".join(
        f"{r['symbol']} {r['side']} {r['size']} @ {r['entry']} stop={r['stop']}"
        f"({'working' if r['stop_order'] else 'MISSING'}) "
        f"tp={[r['tp1'], r['tp2'], r['tp3']]}"
        for r in rows
    )
    log.info("Active Portfolio: %d open: %s", len(rows), described or "none")
    return rows


def unprotected_positions(ctx: CycleContext) -> int:
    """Open position records without a working stop, as the cycle leaves them."""
    with open_store(ctx.db_path) as con:
        return count_unprotected(live_positions(con))
