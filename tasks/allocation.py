"""Stages 4–5: the auction selects, the risk manager sizes and gates; both stored."""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from core.auction import AuctionResult, auction_table, run_auction
from core.cycle import CycleContext
from core.orders import PositionReport
from core.risk import AccountState, OpenPosition, apply_risk
from schemas.config import AppConfig
from store.db import open_store, transaction
from store.frames import append_frame


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
    grid = {r["symbol"]: r for r in markets.iter_rows(named=True)}
    out = []
    for p in reports:
        if p.size <= 0:
            continue
        row = grid.get(p.symbol, {})
        leverage = min(default_leverage, row.get("max_leverage") or default_leverage)
        price = p.mark_price or p.entry_price
        notional = p.size * (row.get("contract_size") or 1.0) * price
        out.append(
            OpenPosition(p.symbol, p.side, p.size, p.entry_price, p.mark_price, notional / leverage)
        )
    return out


def allocate(
    ctx: CycleContext,
    signals: pl.DataFrame,
    markets: pl.DataFrame,
    positions: list[OpenPosition],
    account: AccountState,
    config: AppConfig,
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
        cycle_id=str(ctx.cycle_id),
        ts=ctx.decision_time,
    )
    with open_store(ctx.db_path) as con:
        append_frame(con, "order_intents", intents.drop("cycle_id"), cycle_id=ctx.cycle_id)
        with transaction(con):
            con.execute(
                "INSERT INTO allocations VALUES (?, ?, ?)",
                [ctx.cycle_id, ctx.decision_time, json.dumps(auction_table(auction), default=str)],
            )
    return AllocationResult(auction, intents)


@task(name="auction_and_risk", cache_policy=NO_CACHE)
def allocate_task(
    ctx: CycleContext,
    signals: pl.DataFrame,
    markets: pl.DataFrame,
    positions: list[OpenPosition],
    account: AccountState,
    config: AppConfig,
) -> AllocationResult:
    return allocate(ctx, signals, markets, positions, account, config)


__all__ = ["AllocationResult", "allocate", "allocate_task", "open_positions"]
