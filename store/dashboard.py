"""Read the cycle dashboard (core/dashboard.py) out of the store or out of its read copy:
the same tables and views, so the same queries serve the cycle and `trader status`."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import duckdb

from core.dashboard import CycleView, EquityMark, GateFunnel, MarketError, OrderLine
from core.system_state import SystemStateRecord
from store.db import one
from store.execution import live_positions
from store.safety import current_record

# gate_trace column -> label, in the order the strategy applies them (SPEC §3).
GATES = (
    ("gate_data", "data"),
    ("gate_daily_bias", "daily bias"),
    ("gate_structure", "structure"),
    ("gate_regime", "regime"),
    ("gate_ote", "OTE"),
    ("gate_risk", "risk"),
)
MOMENTUM = ("gate_momentum", "momentum")


def state_record(con: duckdb.DuckDBPyConnection, now: datetime) -> SystemStateRecord:
    """The persisted state; a system that never changed state is NORMAL since its first
    cycle (not "since now"), with a cause that says so."""
    record = current_record(con, now)
    if record.event is not None:
        return record
    row = one(con.execute("SELECT min(clock_ts), count(*) FROM cycles"))
    if row is None or row[0] is None:
        return record
    first, count = row
    return replace(
        record,
        since=first,
        cause=f"initial state: no state change recorded in {count} cycle(s) since the first",
    )


def last_finished_cycle(con: duckdb.DuckDBPyConnection) -> int | None:
    row = one(con.execute("SELECT max(cycle_id) FROM cycles WHERE finished_at IS NOT NULL"))
    return None if row is None or row[0] is None else int(row[0])


def _funnel(con: duckdb.DuckDBPyConnection, cycle_id: int) -> GateFunnel:
    gates = list(GATES)
    momentum_on = one(con.execute(
        "SELECT count(*) FROM gate_trace WHERE cycle_id = ? AND gate_momentum <> 'off'",
        [cycle_id],
    ))
    if momentum_on and momentum_on[0]:
        gates.append(MOMENTUM)
    counts = ", ".join(f"count(*) FILTER (WHERE {column} = 'pass')" for column, _ in gates)
    row = one(con.execute(
        f"SELECT count(*), {counts}, count(*) FILTER (WHERE signal) "
        "FROM gate_trace WHERE cycle_id = ?",
        [cycle_id],
    )) or (0,) * (len(gates) + 2)
    rejections = con.execute(
        "SELECT reason, count(*) FROM gate_trace WHERE cycle_id = ? AND reason IS NOT NULL "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
        [cycle_id],
    ).fetchall()
    return GateFunnel(
        evaluated=int(row[0]),
        through=tuple((label, int(n)) for (_, label), n in zip(gates, row[1:-1], strict=True)),
        signals=int(row[-1]),
        rejections=tuple((str(r), int(n)) for r, n in rejections),
    )


def _orders(con: duckdb.DuckDBPyConnection, cycle_id: int) -> tuple[OrderLine, ...]:
    rows = con.execute(
        "SELECT action_type, symbol, side, payload, state, reason FROM wal WHERE cycle_id = ? "
        "ORDER BY created_at, intent_id",
        [cycle_id],
    ).fetchall()
    lines = []
    for action, symbol, side, payload, state, reason in rows:
        data = json.loads(payload)
        price = data.get("trigger_price") or data.get("price")
        lines.append(OrderLine(action, symbol, side, data.get("size"), price, state, reason))
    return tuple(lines)


def cycle_view(con: duckdb.DuckDBPyConnection, cycle_id: int, now: datetime) -> CycleView:
    """The dashboard of `cycle_id` as the store (or its read copy) holds it.

    Refuses (LookupError) a cycle id the store does not have."""
    row = one(con.execute(
        "SELECT venue, clock_ts, duration_s, summary, orders_placed, orders_cancelled "
        "FROM cycles WHERE cycle_id = ?",
        [cycle_id],
    ))
    if row is None:
        raise LookupError(f"cycle {cycle_id} is not in the store")
    venue, clock, duration, line, placed, cancelled = row
    account = one(con.execute(
        "SELECT equity, margin_used, margin_utilization, high_water, drawdown "
        "FROM equity_marks WHERE cycle_id = ?",
        [cycle_id],
    )) or (None,) * 5
    marks = con.execute(
        "SELECT ts, equity, high_water FROM equity_marks WHERE ts > ? AND cycle_id <= ? "
        "ORDER BY ts",
        [clock - timedelta(hours=24), cycle_id],
    ).fetchall()
    intents = dict(con.execute(
        "SELECT status, count(*) FROM order_intents WHERE cycle_id = ? GROUP BY 1", [cycle_id]
    ).fetchall())
    errors = con.execute(
        "SELECT symbol, stage, error FROM market_errors WHERE cycle_id = ? ORDER BY symbol",
        [cycle_id],
    ).fetchall()
    prices = con.execute("SELECT symbol, last FROM markets WHERE last IS NOT NULL").fetchall()
    return CycleView(
        cycle_id=cycle_id,
        venue=venue,
        clock=clock,
        duration_s=duration,
        summary_line=line,
        equity=account[0],
        margin_used=account[1],
        margin_utilization=account[2],
        high_water=account[3],
        drawdown=account[4],
        state=state_record(con, now),
        equity_24h=tuple(EquityMark(ts, e, h) for ts, e, h in marks),
        positions=tuple(live_positions(con)),
        marks=dict(prices),
        funnel=_funnel(con, cycle_id),
        intents_approved=int(intents.get("approved", 0)),
        intents_refused=int(intents.get("refused", 0)),
        orders_placed=placed,
        orders_cancelled=cancelled,
        orders=_orders(con, cycle_id),
        errors=tuple(MarketError(*e) for e in errors),
    )
