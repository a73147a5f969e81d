"""Persistence of the system state (with its history), the equity high-water mark and checks.

HALTED survives restarts because the current state is simply the last history row.
"""

from __future__ import annotations

import json
from datetime import datetime

import duckdb

from core.invariants import AccountSnapshot, InvariantReport, PositionExposure
from core.system_state import StateEvent, SystemState, SystemStateRecord, initial_record
from store.db import one, transaction


def current_record(con: duckdb.DuckDBPyConnection, now: datetime) -> SystemStateRecord:
    """The persisted state, or NORMAL since `now` for a system that has never run."""
    row = one(con.execute(
        "SELECT state, since, cause, event, state_values, who, why, forced "
        "FROM system_state_history ORDER BY seq DESC LIMIT 1"
    ))
    if row is None:
        return initial_record(now)
    state, since, cause, event, values, who, why, forced = row
    return SystemStateRecord(
        state=SystemState(state),
        since=since,
        cause=cause,
        event=StateEvent(event) if event else None,
        values=json.loads(values),
        who=who,
        why=why,
        forced=forced,
    )


def append_record(
    con: duckdb.DuckDBPyConnection,
    record: SystemStateRecord,
    cycle_id: int | None,
    at: datetime,
) -> None:
    """Append a state record, stamped `at` (the cycle's time, or an operator's wall time)."""
    with transaction(con):
        row = one(con.execute("SELECT coalesce(max(seq), 0) + 1 FROM system_state_history"))
        con.execute(
            "INSERT INTO system_state_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                row[0] if row else 1,
                at,
                cycle_id,
                str(record.state),
                record.since,
                record.cause,
                str(record.event) if record.event else None,
                json.dumps({k: float(v) for k, v in record.values.items()}),
                record.who,
                record.why,
                record.forced,
            ],
        )


def changed_in_cycle(con: duckdb.DuckDBPyConnection, cycle_id: int) -> bool:
    """True when a state record was appended during this cycle (a queued operator halt)."""
    row = one(con.execute(
        "SELECT count(*) FROM system_state_history WHERE cycle_id = ?", [cycle_id]
    ))
    return bool(row and row[0])


def high_water(con: duckdb.DuckDBPyConnection) -> float | None:
    row = one(con.execute("SELECT max(high_water) FROM equity_marks"))
    return row[0] if row else None


def record_checks(
    con: duckdb.DuckDBPyConnection, cycle_id: int, report: InvariantReport, account: AccountSnapshot
) -> None:
    """The account and every check of this cycle (what `trader status` and resume read)."""
    values = {k: float(v) for k, v in report.values.items()}
    with transaction(con):
        con.execute(
            "INSERT OR REPLACE INTO equity_marks (cycle_id, ts, equity, margin_used, "
            "margin_utilization, high_water, drawdown, open_positions, exposures, "
            "unprotected_cycles) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                cycle_id,
                report.ts,
                account.equity,
                account.margin_used,
                values.get("margin_utilization"),
                float(report.equity_high_water),
                values.get("equity_drawdown"),
                len(account.positions),
                json.dumps({p.symbol: p.notional for p in account.positions}),
                account.unprotected_cycles,
            ],
        )
        con.executemany(
            "INSERT INTO invariant_checks VALUES (?, ?, ?, ?, ?, ?)",
            [
                [
                    cycle_id,
                    report.ts,
                    str(c.name),
                    float(c.value),
                    str(c.verdict),
                    "; ".join(f"{t.verdict} {t.bound} {t.level}" for t in c.thresholds),
                ]
                for c in report.checks
            ],
        )


def last_account(con: duckdb.DuckDBPyConnection) -> AccountSnapshot | None:
    """The account as the last cycle saw it (for status and resume between cycles)."""
    row = one(con.execute(
        "SELECT equity, margin_used, high_water, exposures, ts, unprotected_cycles "
        "FROM equity_marks ORDER BY cycle_id DESC LIMIT 1"
    ))
    if row is None:
        return None
    equity, margin_used, high, exposures, ts, unprotected = row
    positions = tuple(PositionExposure(s, n) for s, n in json.loads(exposures).items())
    return AccountSnapshot(equity, margin_used, high, positions, ts, int(unprotected or 0))
