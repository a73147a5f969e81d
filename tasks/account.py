"""The account as the venue reports it, plus the persisted high-water mark and system state."""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from core.cycle import CycleContext
from core.invariants import AccountSnapshot
from core.orders import OrderVenue, PositionReport
from core.system_state import SystemStateRecord
from store.db import open_store
from store.execution import live_positions
from store.safety import current_record, high_water, last_account
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
        mark = high_water(con)
        state = current_record(con, ctx.decision_time)
        unprotected = max(
            (p.unprotected_cycles for p in live_positions(con) if p.is_open), default=0
        )
    snapshot = replace(snapshot, unprotected_cycles=unprotected)
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


def last_known_account(ctx: CycleContext) -> AccountSnapshot | None:
    """The account as the last cycle measured it, with this cycle's count of cycles without
    a stop: what the invariant monitor checks when the venue could not be read."""
    with open_store(ctx.db_path) as con:
        account = last_account(con)
        unprotected = max(
            (p.unprotected_cycles for p in live_positions(con) if p.is_open), default=0
        )
    if account is None:
        return None
    return replace(account, ts=ctx.decision_time, unprotected_cycles=unprotected)
