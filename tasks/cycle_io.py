"""Open and close a cycle: its row in the store, the CYCLE_END line, the Prefect artifacts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.exceptions import MissingContextError

from core.cycle import CycleContext
from core.summary import CycleSummary
from store.cycles import finish_cycle, last_clock_ts, start_cycle
from store.db import one, open_store
from venues.base import MarketDataVenue, SimulatedClock

log = logging.getLogger("smc_trader.cycle")


def cycle_run_name() -> str:
    """The run's name until open_cycle knows its number (a config error stops it before)."""
    return f"cycle starting {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z"


def _name_run(ctx: CycleContext) -> None:
    """Name the flow run after its cycle and clock: "cycle 42 · 2025-02-24 03:00Z"."""
    run_id = flow_run_id()
    if run_id is None:
        return
    name = f"cycle {ctx.cycle_id} · {ctx.decision_time:%Y-%m-%d %H:%MZ}"
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, name=name)
    except (httpx.HTTPError, OSError) as exc:  # a name is not worth failing a cycle for
        log.warning("flow run %s not renamed to %r: %s", run_id, name, exc)


def flow_run_id() -> str | None:
    try:
        ctx = get_run_context()
    except MissingContextError:
        return None
    run = getattr(ctx, "flow_run", None) or getattr(ctx, "task_run", None)
    return str(getattr(run, "flow_run_id", None) or getattr(run, "id", "")) or None


@task(name="open_cycle", cache_policy=NO_CACHE)
def open_cycle(venue: MarketDataVenue, db_path: Path) -> CycleContext:
    """Resume a simulated clock after the last cycle, then record the new cycle's start."""
    with open_store(db_path) as con:
        if isinstance(venue.clock, SimulatedClock):
            venue.clock.resume_after(last_clock_ts(con, venue.name))
        started = datetime.now(UTC)
        decision_time = venue.clock.now()
        cycle_id = start_cycle(con, venue.name, decision_time, started)
    ctx = CycleContext(cycle_id, venue.name, decision_time, db_path, started)
    _name_run(ctx)
    return ctx


def is_startup(ctx: CycleContext, interval_s: int) -> bool:
    """True when no cycle finished recently: reconciliation then takes over with fresh eyes."""
    with open_store(ctx.db_path) as con:
        row = one(con.execute(
            "SELECT max(finished_at) FROM cycles WHERE venue = ? AND cycle_id < ?",
            [ctx.venue, ctx.cycle_id],
        ))
    last = row[0] if row else None
    return last is None or (ctx.started_at - last).total_seconds() > 3 * interval_s


def finish_summary(ctx: CycleContext, summary: CycleSummary) -> str:
    """Log CYCLE_END and finish the cycle row; returns the line."""
    summary.duration_s = (datetime.now(UTC) - ctx.started_at).total_seconds()
    line = summary.line()
    record = summary.as_record()
    values = {k: record[k] for k in record if k not in {"cycle_id", "venue", "clock"}}
    values |= {"finished_at": datetime.now(UTC), "summary": line, "flow_run_id": flow_run_id()}
    with open_store(ctx.db_path) as con:
        finish_cycle(con, ctx.cycle_id, values)
    log.info(line)
    return line


@task(name="summarize", cache_policy=NO_CACHE)
def summarize(ctx: CycleContext, summary: CycleSummary, tables: dict[str, list[dict]]) -> str:
    """Log CYCLE_END, finish the cycle row, publish the cycle's tables as artifacts."""
    line = finish_summary(ctx, summary)
    key = f"cycle-{ctx.venue}"
    # The "-summary" markdown artifact is the dashboard (tasks/cycle_report.py).
    for name, rows in tables.items():
        if rows:
            create_table_artifact(key=f"{key}-{name}", table=rows, description=name)
    return line
