"""A backtest = one Prefect flow run (not one per bar): prepare -> simulate -> store -> report.

The simulation is the live cycle's own engine (core/engine/backtest.py); the flow only
wires its steps as task runs so the UI shows them, their timing and the report artifacts.
`trader backtest` runs the same steps without Prefect (`run_pipeline`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from core.backtest_result import BacktestResult, BacktestRun, IntrabarOrder
from core.cycle import parse_utc
from store.backtests import BACKTEST_DB, fail_run, finish_run, publish_results, start_run
from store.db import open_store
from tasks.backtest import (
    BacktestRequest,
    Prepared,
    describe_run,
    market_candles,
    new_run_id,
    prepare,
    run_backtest,
)
from tasks.logs import backtest_log_file, setup_logging
from tasks.settings import load_config

log = logging.getLogger("smc_trader.backtest")


def run_pipeline(
    request: BacktestRequest,
    db: Path,
    html: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    steps: Callable[[str, Callable, tuple], object] | None = None,
) -> BacktestResult:
    """Prepare, record the run RUNNING, simulate, store everything (COMPLETE), write the HTML.
    A failure after the run is recorded marks it FAILED with the error, then re-raises.
    `steps(name, fn, args)` runs each step (the flow passes Prefect tasks)."""
    call = steps or (lambda _name, fn, args: fn(*args))
    prepared: Prepared = call("prepare", prepare, (request,))  # type: ignore[assignment]
    run: BacktestRun = describe_run(request, prepared, new_run_id())
    with open_store(db) as con:
        start_run(con, run, datetime.now(UTC))
    try:
        result: BacktestResult = call(
            "simulate", _simulate, (request, prepared, run, progress)
        )  # type: ignore[assignment]
        call("store", _store, (db, result))
    except BaseException as exc:
        with open_store(db) as con:
            fail_run(con, run.run_id, f"{type(exc).__name__}: {exc}", datetime.now(UTC))
            publish_results(con, db)
        raise
    if html is not None:
        call("html_report", _html, (result, request, html))
    return result


def _simulate(
    request: BacktestRequest,
    prepared: Prepared,
    run: BacktestRun,
    progress: Callable[[int, int], None] | None,
) -> BacktestResult:
    return run_backtest(request, progress, prepared=prepared, run=run)


def _store(db: Path, result: BacktestResult) -> None:
    with open_store(db) as con:
        finish_run(con, result, datetime.now(UTC))
        publish_results(con, db)


def _html(result: BacktestResult, request: BacktestRequest, path: Path) -> Path:
    from reports.backtest_html import write_backtest_html

    return write_backtest_html(result, path, market_candles(request, "4h"))


def _artifacts(result: BacktestResult) -> None:
    from reports.backtest_text import render_backtest_text
    from reports.charts import equity_drawdown_png

    text = render_backtest_text(result)
    png = base64.b64encode(equity_drawdown_png(result)).decode()
    create_markdown_artifact(
        key="backtest-report",
        markdown=f"```\n{text}\n```\n\n![equity and drawdown](data:image/png;base64,{png})",
        description=f"backtest {result.run.run_id}",
    )


@flow(name="backtest", log_prints=True, validate_parameters=True)
def backtest(
    data_dir: str,
    start: str | None = None,
    end: str | None = None,
    config_dir: str = "configs",
    markets: list[str] | None = None,
    equity: float | None = None,
    db: str = str(BACKTEST_DB),
    html: str | None = None,
    intrabar: str = "stop_first",
) -> str:
    """One backtest run; returns the terminal report (also an artifact)."""
    from reports.backtest_text import render_backtest_text

    setup_logging(log_file=backtest_log_file())
    request = BacktestRequest(
        data_dir=Path(data_dir),
        config=load_config(Path(config_dir)),
        start=_when(start),
        end=_when(end),
        markets=tuple(markets or ()),
        equity=equity,
        intrabar=IntrabarOrder(intrabar),
    )

    def as_task(name: str, fn: Callable, args: tuple) -> object:
        return task(name=name, cache_policy=NO_CACHE)(fn)(*args)

    result = run_pipeline(request, Path(db), Path(html) if html else None, steps=as_task)
    _artifacts(result)
    return render_backtest_text(result)


def _when(text: str | None) -> datetime | None:
    return None if text is None else parse_utc(text)
