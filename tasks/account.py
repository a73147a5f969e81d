"""The account as the venue reports it, plus the persisted high-water mark and system state."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from core.cycle import CycleContext
from core.invariants import AccountSnapshot
from core.orders import OrderVenue, PositionReport
from core.system_state import SystemStateRecord
from store.db import open_store
from store.operator_requests import apply_pending
from store.safety import current_record, high_water
from tasks.execution import account_snapshot
from tasks.retry import retry_on_transient_venue_errors


@dataclass(frozen=True)
class AccountView:
    snapshot: AccountSnapshot
    positions: list[PositionReport]
    high_water: float
    state: SystemStateRecord


def read_account(ctx: CycleContext, orders: OrderVenue, markets: pl.DataFrame) -> AccountView:
    snapshot = account_snapshot(orders, markets, ctx)
    with open_store(ctx.db_path) as con:
        apply_pending(con, ctx.db_path, ctx.cycle_id)  # `trader halt` queued during a cycle
        mark = high_water(con)
        state = current_record(con, ctx.decision_time)
    return AccountView(snapshot, orders.positions(), max(mark or 0.0, snapshot.equity), state)


@task(
    name="sync_account",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=retry_on_transient_venue_errors,
    cache_policy=NO_CACHE,
)
def sync_account(ctx: CycleContext, orders: OrderVenue, markets: pl.DataFrame) -> AccountView:
    """Read-only: safe to retry."""
    return read_account(ctx, orders, markets)
