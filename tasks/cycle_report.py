"""After CYCLE_END: the dashboard artifact and the alerts; and, as the cycle's store
session closes (flows/cycle.py), the read copy for SQL readers.

Nothing here trades: a failure is logged at ERROR and the cycle still completes, its
trading work done. The read copy is published last, after every write of the cycle,
and also after a cycle that failed (what it wrote is then visible too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.settings import get_current_settings

from core.alerts import Alert, PastCycle, cycle_alerts
from core.cycle import CycleContext
from core.dashboard import CycleView, markdown
from core.summary import CycleSummary
from schemas.operations import AlertsConfig
from store.cycles import cycles_since_clear
from store.dashboard import cycle_view
from store.db import open_store
from store.publish import Publication, PublishError, publish
from tasks.charts import data_uri, equity_png
from tasks.cycle_io import flow_run_id

log = logging.getLogger("smc_trader.report")


@dataclass(frozen=True)
class CycleReport:
    alerts: tuple[Alert, ...]
    dashboard_bytes: int


def dashboard_markdown(view: CycleView) -> str:
    png = equity_png(view.equity_24h)
    return markdown(view, data_uri(png) if png else None)


def _dashboard(ctx: CycleContext, view: CycleView) -> int:
    text = dashboard_markdown(view)
    create_markdown_artifact(
        key=f"cycle-{ctx.venue}-summary",
        markdown=text,
        description=f"Cycle {ctx.cycle_id}: account, equity 24 h, positions, funnel, orders",
    )
    return len(text.encode())


def _run_link() -> str:
    """Where this cycle's run is in the Prefect UI ("" outside a run or without a UI)."""
    run_id = flow_run_id()
    ui = get_current_settings().ui_url
    return f"\nPrefect UI: {str(ui).rstrip('/')}/runs/flow-run/{run_id}" if run_id and ui else ""


def _emit(alert: Alert, ctx: CycleContext) -> None:
    # The words after "ALERT" are stable, for operators who grep the log instead.
    log.warning("ALERT %s: %s", alert.kind, alert.subject)
    emit_event(
        event=alert.event_name,
        resource={
            "prefect.resource.id": f"smc-trader.venue.{ctx.venue}",
            "prefect.resource.name": f"smc-trader {ctx.venue}",
        },
        payload={
            "kind": str(alert.kind),
            "cycle_id": alert.cycle_id,
            "streak": alert.streak,
            "subject": alert.subject,
            "body": alert.body + _run_link(),
        },
    )


def raise_alerts(
    con: duckdb.DuckDBPyConnection, ctx: CycleContext, summary: CycleSummary,
    view: CycleView, config: AlertsConfig,
) -> list[Alert]:
    """Emit this cycle's alerts as Prefect events (the automation sends them on)."""
    history = [PastCycle(*row) for row in cycles_since_clear(con, ctx.venue)]
    alerts = cycle_alerts(summary, history, config, view.state.cause)
    for alert in alerts:
        _emit(alert, ctx)
    return alerts


@task(name="report_cycle", cache_policy=NO_CACHE)
def report_cycle(ctx: CycleContext, summary: CycleSummary, alerts: AlertsConfig) -> CycleReport:
    """Dashboard artifact and alerts. Returns what was done; never raises for a store
    problem (logged at ERROR: the cycle's trading is already recorded)."""
    raised: list[Alert] = []
    size = 0
    with open_store(ctx.db_path) as con:
        try:
            view = cycle_view(con, ctx.cycle_id, datetime.now(UTC))
            size = _dashboard(ctx, view)
            raised = raise_alerts(con, ctx, summary, view, alerts)
        except (duckdb.Error, LookupError, ValueError) as exc:
            log.error("cycle %s: dashboard or alerts not produced: %s", ctx.cycle_id, exc)
    return CycleReport(tuple(raised), size)


def publish_read_copy(con: duckdb.DuckDBPyConnection, db_path: Path) -> Publication | None:
    """Publish the read copy of `db_path`; None (logged at ERROR) when it failed."""
    try:
        done = publish(con, db_path)
    except (duckdb.Error, OSError, PublishError) as exc:
        log.error("read copy not published (readers keep the previous one): %s", exc)
        return None
    log.info(
        "read copy published: cycle %s, generation %s, %.0f ms, %d bytes in %d parts "
        "(%d unchanged parts linked)",
        done.cycle_id, done.generation, done.seconds * 1000, done.bytes_written,
        done.parts_written, done.parts_linked,
    )
    return done
