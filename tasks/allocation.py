"""Stages 4–5 as a task: the engine's allocation (core/engine/allocation.py), stored."""

from __future__ import annotations

import json

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from core.auction import auction_table
from core.cycle import CycleContext
from core.engine import allocation as engine
from core.engine.allocation import AllocationResult, open_positions
from core.risk import AccountState, OpenPosition
from schemas.config import AppConfig
from store.db import open_store, transaction
from store.frames import append_frame


def allocate(
    ctx: CycleContext,
    signals: pl.DataFrame,
    markets: pl.DataFrame,
    positions: list[OpenPosition],
    account: AccountState,
    config: AppConfig,
) -> AllocationResult:
    """Winners within the margin budget, then sized, clamped and gated order intents."""
    result = engine.allocate(
        signals, markets, positions, account, config, cycle_id=ctx.cycle_id, ts=ctx.decision_time
    )
    with open_store(ctx.db_path) as con:
        append_frame(con, "order_intents", result.intents.drop("cycle_id"), cycle_id=ctx.cycle_id)
        with transaction(con):
            con.execute(
                "INSERT INTO allocations VALUES (?, ?, ?)",
                [
                    ctx.cycle_id,
                    ctx.decision_time,
                    json.dumps(auction_table(result.auction), default=str),
                ],
            )
    return result


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
