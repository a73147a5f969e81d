"""The account as the venue reports it, plus the persisted high-water mark and system state
(core/engine/account.py on the store)."""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from core.cycle import CycleContext
from core.engine import account as engine
from core.engine.account import AccountView
from core.invariants import AccountSnapshot
from core.orders import OrderVenue
from store.operator_requests import apply_pending
from store.state import store_state
from tasks.retry import retry_on_transient_venue_errors


def read_account(ctx: CycleContext, orders: OrderVenue, markets: pl.DataFrame) -> AccountView:
    with store_state(ctx.db_path) as state:
        apply_pending(state.con, ctx.db_path, ctx.cycle_id)  # `trader halt` queued meanwhile
        return engine.read_account(ctx, orders, state, markets)


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
    """See core.engine.account.last_known_account."""
    with store_state(ctx.db_path) as state:
        return engine.last_known_account(ctx, state)


__all__ = ["AccountView", "last_known_account", "read_account", "sync_account"]
