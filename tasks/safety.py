"""Stage 8: the invariant monitor and the system state, persisted; operator halt/resume."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from duckdb import DuckDBPyConnection
from prefect import task
from prefect.cache_policies import NO_CACHE

from core.cycle import CycleContext
from core.dashboard import position_line
from core.dashboard import text as dashboard_text
from core.engine import account as engine
from core.engine.account import SafetyOutcome
from core.invariants import AccountSnapshot, InvariantReport, check_invariants
from core.positions import Position
from core.system_state import (
    SystemStateRecord,
    operator_resume,
    status_lines,
)
from schemas.config import SafetyConfig
from store.dashboard import cycle_view, last_finished_cycle, state_record
from store.db import StoreLockedError, connect_read_only, connect_store, open_store
from store.execution import live_positions
from store.operator_requests import HaltRequest, apply_pending, pending, queue_halt
from store.publish import PublishError, connect_read_copy, publish, published_cycle, read_copy_of
from store.safety import append_record, changed_in_cycle, current_record, last_account
from store.state import store_state

log = logging.getLogger("smc_trader.safety")

RESUME_LOCK_WAIT_S = 60.0  # a cycle holds the store for seconds; resume waits it out


def system_state(db_path: Path, now: datetime) -> SystemStateRecord:
    """The persisted state (NORMAL for a new database)."""
    with open_store(db_path) as con:
        return current_record(con, now)


def evaluate(
    ctx: CycleContext, account: AccountSnapshot | None, safety: SafetyConfig
) -> SafetyOutcome:
    """core.engine.account.evaluate on the store (see there)."""
    with store_state(ctx.db_path) as state:
        # a halt queued by the operator and applied this cycle has logged the pattern already
        announced = changed_in_cycle(state.con, ctx.cycle_id)
        return engine.evaluate(ctx, account, state, safety, announce_halt=not announced)


@task(name="check_invariants", cache_policy=NO_CACHE)
def check_invariants_task(
    ctx: CycleContext, account: AccountSnapshot | None, safety: SafetyConfig
) -> SafetyOutcome:
    """The monitor on this cycle's account, or on the latest known one; with no account
    ever read, the state holds as it is (and is logged)."""
    return evaluate(ctx, account, safety)


def _last_report(con: DuckDBPyConnection, safety: SafetyConfig, now: datetime) -> InvariantReport:
    """Checks of the account as the last cycle measured it; no checks if none has yet."""
    account = last_account(con)
    if account is None:
        return InvariantReport(ts=now, checks=(), equity_high_water=0.0)
    return check_invariants(account, safety)


def position_lines(positions: list[Position]) -> list[str]:
    """One line per position record not yet terminal: size, entry, its stop and its TPs.

    As last recorded by a cycle (reconciliation corrects it against the venue)."""
    lines = [f"positions: {len(positions)} (as last recorded by a cycle)"]
    return lines + [position_line(p) for p in positions]


@contextmanager
def _reader(db_path: Path) -> Iterator[tuple[DuckDBPyConnection, str]]:
    """The store itself when it is free this instant (a moment's read lock, which a cycle
    starting then waits out), else the read copy: never waits for a running cycle."""
    try:
        con = connect_read_only(db_path, lock_wait_s=0.0)
        source = f"{db_path}"
    except StoreLockedError:
        if not read_copy_of(db_path).views_file.exists():
            raise
        con = connect_read_copy(db_path)
        cycle, at = published_cycle(db_path)
        source = f"read copy of cycle {cycle}, published {at} (a cycle is running)"
    try:
        yield con, source
    finally:
        con.close()


def status(db_path: Path, safety: SafetyConfig) -> list[str]:
    """State (with its real since and cause), operator, pending halts, each invariant of
    the last cycle vs its thresholds, then the last cycle's dashboard: account, equity
    24 h, positions with stop and TP distances, gate funnel, orders, errored markets.
    Reads the read copy, so it never blocks (or waits for) a cycle."""
    now = datetime.now(UTC)
    with _reader(db_path) as (con, source):
        record = state_record(con, now)
        report = _last_report(con, safety, now)
        cycle = last_finished_cycle(con)
        view = cycle_view(con, cycle, now) if cycle is not None else None
        positions = live_positions(con)
    lines = status_lines(report, record)
    lines += [
        f"PENDING operator halt queued {r.requested_at} by {r.who}: {r.reason} "
        "(applied by the running cycle before its next decision)"
        for _, r in pending(db_path)
    ]
    lines.append(f"read from: {source}")
    return lines + (dashboard_text(view) if view is not None else position_lines(positions))


@dataclass(frozen=True)
class HaltOutcome:
    """A halt request and where it stands: applied here, applied by the running cycle, or
    still queued (the next cycle applies it before any decision)."""

    request: HaltRequest
    record: SystemStateRecord | None  # the state after, when this command applied it
    applied_by: str | None


def halt(db_path: Path, reason: str, who: str, wait_s: float = 60.0) -> HaltOutcome:
    """HALTED by the operator. The request is queued durably first, so it always lands:
    applied here when the store is free, else by the cycle holding the store (waited for
    up to `wait_s`), else by the next cycle. The next cycle runs the kill switch."""
    request = queue_halt(db_path, reason, who)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = connect_store(db_path, lock_wait_s=0.5)
        except StoreLockedError:
            if all(r.request_id != request.request_id for _, r in pending(db_path)):
                return HaltOutcome(request, None, "the running cycle")
            if time.monotonic() >= deadline:
                return HaltOutcome(request, None, None)
            continue
        try:
            apply_pending(con, db_path)
            record = current_record(con, datetime.now(UTC))
            _republish(con, db_path)
        finally:
            con.close()
        return HaltOutcome(request, record, "this command")


def resume(
    db_path: Path, safety: SafetyConfig, who: str, why: str, force: bool
) -> SystemStateRecord:
    """Leave HALTED (the only way out). Refuses while a halt condition holds unless forced.
    Waits up to a minute for a running cycle; queued halts are applied first."""
    now = datetime.now(UTC)
    con = connect_store(db_path, lock_wait_s=RESUME_LOCK_WAIT_S)
    try:
        apply_pending(con, db_path)
        current = current_record(con, now)
        record = operator_resume(
            current, _last_report(con, safety, now), who=who, why=why, force=force, ts=now
        )
        append_record(con, record, None, now)
        _republish(con, db_path)
    finally:
        con.close()
    return record


def _republish(con: DuckDBPyConnection, db_path: Path) -> None:
    """An operator action changes the state readers see: publish it now, not next cycle."""
    try:
        publish(con, db_path)
    except (duckdb.Error, OSError, PublishError) as exc:
        log.error("read copy not republished after the operator action: %s", exc)
