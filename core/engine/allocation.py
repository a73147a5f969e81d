"""Stages 4–5 as engine code: the auction selects, the risk manager sizes and gates.

The live cycle stores what this returns (tasks/allocation.py); a backtest keeps it in
memory. One function, so both make the same decisions from the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from core.auction import AuctionResult, run_auction
from core.engine.account import contract_sizes, position_notional
from core.orders import PositionReport
from core.risk import AccountState, OpenPosition, apply_risk
from schemas.config import AppConfig


@dataclass(frozen=True)
class AllocationResult:
    auction: AuctionResult
    intents: pl.DataFrame

    @property
    def approved(self) -> int:
        return self.intents.filter(pl.col("status") == "approved").height


def open_positions(
    reports: list[PositionReport], markets: pl.DataFrame, default_leverage: float
) -> list[OpenPosition]:
    """Venue positions as the auction's candidates, margin at the leverage we size with."""
    sizes = contract_sizes(markets)
    leverages = dict(zip(markets["symbol"], markets["max_leverage"], strict=True))
    out = []
    for p in reports:
        if p.size <= 0:
            continue
        leverage = min(default_leverage, leverages.get(p.symbol) or default_leverage)
        notional = position_notional(p, sizes.get(p.symbol))
        out.append(
            OpenPosition(p.symbol, p.side, p.size, p.entry_price, p.mark_price, notional / leverage)
        )
    return out


def allocate(
    signals: pl.DataFrame,
    markets: pl.DataFrame,
    positions: list[OpenPosition],
    account: AccountState,
    config: AppConfig,
    *,
    cycle_id: int,
    ts: datetime,
) -> AllocationResult:
    """Winners within the margin budget, then sized, clamped and gated order intents."""
    auction = run_auction(signals, positions, markets, account, config.safety, config.risk)
    intents = apply_risk(
        auction.allocations,
        markets,
        account,
        config.safety,
        config.risk,
        positions,
        cycle_id=str(cycle_id),
        ts=ts,
    )
    return AllocationResult(auction, intents)
