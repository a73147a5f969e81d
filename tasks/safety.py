"""Stage 8: the invariant monitor and the system state, persisted; operator halt/resume."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from duckdb import DuckDBPyConnection
from prefect import task
from prefect.cache_policies import NO_CACHE

from core.cycle import CycleContext
from core.engine import account as engine
from core.engine.account import SafetyOutcome
from core.invariants import AccountSnapshot, InvariantReport, check_invariants
from core.positions import Position
from core.system_state import (
    SystemStateRecord,
    operator_halt,
    operator_resume,
    status_lines,
)
from schemas.config import SafetyConfig
from store.db import open_store
from store.execution import live_positions
from store.safety import append_record, current_record, last_account
from store.state import store_state

log = logging.getLogger("smc_trader.safety")


def system_state(db_path: Path, now: datetime) -> SystemStateRecord:
    """The persisted state (NORMAL for a new database)."""
    with open_store(db_path) as con:
        return current_record(con, now)


def evaluate(
    ctx: CycleContext, account: AccountSnapshot | None, safety: SafetyConfig
) -> SafetyOutcome:
    """core.engine.account.evaluate on the store (see there)."""
    with store_state(ctx.db_path) as state:
        return engine.evaluate(ctx, account, state, safety)


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
    for p in positions:
        entry = f"{p.entry_price}" if p.entry_price is not None else "pending"
        if p.stop_order_id is not None:
            stop = f"stop {p.stop_price} for {p.stop_size} (order {p.stop_order_id})"
        else:
            stop = f"stop {p.stop_price} NOT WORKING (no stop order): UNPROTECTED"
        tps = ", ".join(
            f"tp{t.level} {t.price} ({'filled' if t.filled else t.order_id or 'no order'})"
            for t in p.tps
            if t.price is not None
        )
        lines.append(
            f"position {p.symbol} {p.side} {p.size} @ {entry} [{p.state}]: {stop}; "
            f"{tps or 'no TPs'}"
        )
    return lines


def status(db_path: Path, safety: SafetyConfig) -> list[str]:
    """State, cause, operator, each invariant of the last cycle vs its thresholds, and the
    open positions with their stops."""
    now = datetime.now(UTC)
    with open_store(db_path) as con:
        record = current_record(con, now)
        report = _last_report(con, safety, now)
        positions = live_positions(con)
    return status_lines(report, record) + position_lines(positions)


def halt(db_path: Path, reason: str, who: str) -> SystemStateRecord:
    """HALTED by the operator now; the next cycle runs the kill switch."""
    now = datetime.now(UTC)
    with open_store(db_path) as con:
        record = operator_halt(current_record(con, now), reason, who, now)
        append_record(con, record, None, now)
    return record


def resume(
    db_path: Path, safety: SafetyConfig, who: str, why: str, force: bool
) -> SystemStateRecord:
    """Leave HALTED (the only way out). Refuses while a halt condition holds unless forced."""
    now = datetime.now(UTC)
    with open_store(db_path) as con:
        current = current_record(con, now)
        record = operator_resume(
            current, _last_report(con, safety, now), who=who, why=why, force=force, ts=now
        )
        append_record(con, record, None, now)
    return record
