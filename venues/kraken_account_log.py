"""Kraken's account log (GET /api/history/v3/account-log) read into realised-PnL records.

Every execution books two rows, sharing its `execution` id: a cash leg (asset is
the settlement currency: realized_pnl, fee, old/new balance) and a position leg
(asset is the contract: old/new balance are the signed position size). Numbers
arrive as JSON numbers; contracts are spelled in lower case (pf_xbtusd).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from core.errors import VenueError
from core.orders import RealisedPnl

Raw = dict[str, Any]
TRADE_KINDS = ("futures trade", "futures liquidation", "futures assignee", "futures assignor")


def log_ms(exchange: Any, row: Raw) -> int:
    """A row's time in ms (its `date`, ISO 8601)."""
    ms = exchange.parse8601(row.get("date"))
    if ms is None:
        raise VenueError(f"kraken account log entry {row.get('id')} has no date: {row}")
    return int(ms)


def _number(value: object) -> float | None:
    return float(value) if value not in (None, "") else None  # type: ignore[arg-type]


def _is_position_leg(row: Raw) -> bool:
    asset, contract = row.get("asset"), row.get("contract")
    return asset is not None and str(asset).lower() == str(contract or "").lower()


def entries_of(
    rows: list[Raw], symbol: str, symbol_of: Callable[[object], str]
) -> list[RealisedPnl]:
    """The realised-PnL records of `symbol` in account-log rows, oldest first: one per
    execution, from its cash leg, with the position size before and after from its
    position leg. Rows of other kinds (funding, transfers) and other markets are skipped."""
    trades = [
        r
        for r in rows
        if str(r.get("info") or "") in TRADE_KINDS
        and symbol_of(str(r.get("contract") or "")) == symbol
    ]
    positions = {r.get("execution"): r for r in trades if _is_position_leg(r)}
    out = []
    for row in trades:
        if _is_position_leg(row):
            continue
        leg = positions.get(row.get("execution")) or {}
        out.append(
            RealisedPnl(
                entry_id=str(row.get("id")),
                symbol=symbol,
                fill_id=str(row["execution"]) if row.get("execution") else None,
                ts=datetime.fromisoformat(str(row["date"]).replace("Z", "+00:00")).astimezone(UTC),
                realised_pnl=_number(row.get("realized_pnl")) or 0.0,
                fee=_number(row.get("fee")) or 0.0,
                price=_number(row.get("trade_price")),
                position_before=_number(leg.get("old_balance")),
                position_after=_number(leg.get("new_balance")),
            )
        )
    return sorted(out, key=lambda e: e.ts)
