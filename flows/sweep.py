"""A sweep = one Prefect flow run on a Dask cluster: plan -> batches of backtests -> store
-> report (issue 11).

The flow proves the whole space first (nothing runs on a refused variant), skips every
(configuration, window) already stored for this data and code version, sends the rest in
batches (one task run each) to a Dask cluster through prefect_dask's DaskTaskRunner (a
LocalCluster of one single-threaded worker process per core, or an existing cluster by
address), and writes each finished batch in one transaction: the flow is the only DuckDB
writer, and a killed sweep resumes from what was written. Optuna's TPE asks trials in
rounds from here and is told their in-sample objective. `trader sweep` runs this flow.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect_dask import DaskTaskRunner

from core.cycle import parse_utc
from core.sweep_analysis import FoldWindows, Key, analyse
from core.sweep_objective import WindowResult
from core.sweep_plan import SweepPlan
from core.sweep_space import ResolvedVariant
from store.db import open_store
from store.sweeps import DataKey, SweepRunRecord, done_results, finish_sweep, start_sweep
from store.sweeps import store_results as write_results
from tasks.backtest import code_version
from tasks.logs import backtest_log_file, setup_logging
from tasks.settings import load_config
from tasks.sweep import (
    BatchOutcome,
    SweepJob,
    batch_size,
    batches,
    build_report,
    evaluate_jobs,
    jobs_for,
    load_plan,
    resolve_variants,
)
from tasks.sweep_optuna import OptunaSearch

log = logging.getLogger("smc_trader.sweep")
Progress = Callable[[int, int], None]
_progress: list[Progress] = []  # set by run_sweep for the CLI's bar (not a flow parameter)


@task(name="evaluate-batch", cache_policy=NO_CACHE)
def evaluate_batch(data_dir: str, markets: tuple[str, ...], jobs: list[SweepJob]) -> BatchOutcome:
    """A batch of backtests on one Dask worker; results come back, the store is not touched."""
    return evaluate_jobs(data_dir, markets, jobs)


@dataclass
class SweepOutcome:
    sweep_id: str
    text: str
    evaluated: int  # backtests run by this sweep
    reused: int  # backtests found in the store
    stored: int  # rows this sweep wrote
    errors: dict[str, str] = field(default_factory=dict)
    report: Any = None  # reports.sweep_records.SweepReport


@dataclass
class _Context:
    con: duckdb.DuckDBPyConnection
    runner: DaskTaskRunner
    sweep_id: str
    key: DataKey
    workers: int
    batch: int | None
    results: dict[Key, WindowResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    evaluated: int = 0
    reused: int = 0
    stored: int = 0
    total: int = 0
    done: int = 0


def task_runner(workers: int | None = None, dask_address: str | None = None) -> DaskTaskRunner:
    """An existing cluster by address (its workers need PREFECT_API_URL of this flow's
    server), else a LocalCluster of single-threaded processes told this flow's server, so
    their task runs land beside the flow run instead of in a temporary server each."""
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers or os.cpu_count() or 1,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
            "env": {"PREFECT_API_URL": _api_url()},
        }
    )


def _api_url() -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url).rstrip("/")


def _evaluate(ctx: _Context, variants: Sequence[ResolvedVariant], folds: Sequence[FoldWindows]):
    """Every job these variants need that is not stored yet, in batches on the cluster."""
    jobs = jobs_for(variants, folds)
    stored = done_results(ctx.con, ctx.key, [v.config_hash for v in variants])
    fresh = [j for j in jobs if j.key not in stored and j.key not in ctx.results]
    ctx.reused += sum(1 for j in jobs if j.key in stored and j.key not in ctx.results)
    ctx.results.update({k: v for k, v in stored.items() if k in {j.key for j in jobs}})
    ctx.total += len(jobs)
    ctx.done += len(jobs) - len(fresh)
    _report_progress(ctx)
    configs = {v.config_hash: v.config.model_dump(mode="json") for v in variants}
    size = batch_size(len(fresh), ctx.workers, ctx.batch)
    futures = {}
    for chunk in batches(fresh, size):
        future = ctx.runner.submit(
            evaluate_batch,
            parameters={"data_dir": ctx.key.data_dir, "markets": ctx.key.markets, "jobs": chunk},
        )
        futures[future] = chunk
    for future in as_completed(list(futures)):
        chunk = futures[future]
        try:
            outcome: BatchOutcome = future.result()
        except Exception as exc:  # a batch lost for good (e.g. its workers kept dying)
            for job in chunk:
                ctx.errors[job.label()] = f"batch failed: {type(exc).__name__}: {exc}"
            ctx.done += len(chunk)
            _report_progress(ctx)
            continue
        ctx.stored += write_results(
            ctx.con, ctx.sweep_id, ctx.key, outcome.results, configs, datetime.now(UTC)
        )
        ctx.results.update({(r.config_hash, r.start, r.end): r for r in outcome.results})
        ctx.errors.update(outcome.errors)
        ctx.evaluated += len(outcome.results)
        ctx.done += len(chunk)
        _report_progress(ctx)


def _report_progress(ctx: _Context) -> None:
    for callback in _progress:
        callback(ctx.done, ctx.total)


def _workers(runner: DaskTaskRunner, asked: int | None) -> int:
    try:
        return max(1, len(runner.client.scheduler_info()["workers"]))
    except Exception:  # the count only sizes the batches
        return asked or 1


@flow(name="sweep", log_prints=True, validate_parameters=True)
def sweep(
    space_file: str,
    data_dir: str,
    config_dir: str = "configs",
    search: str | None = None,
    start: str | None = None,
    end: str | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    db: str = "data/sweeps.duckdb",
    html: str | None = None,
    batch: int | None = None,
) -> SweepOutcome:
    """Run the sweep file's space on a Dask cluster; the outcome's text is the report (also
    a markdown artifact)."""
    return execute(
        Path(space_file), Path(data_dir), Path(config_dir), search, _when(start), _when(end),
        workers, dask_address, Path(db), Path(html) if html else None, batch,
    )


def execute(
    space_file: Path,
    data_dir: Path,
    config_dir: Path | None,
    search: str | None,
    start: datetime | None,
    end: datetime | None,
    workers: int | None,
    dask_address: str | None,
    db: Path,
    html: Path | None,
    batch: int | None,
) -> SweepOutcome:
    """The flow's body (inside a flow run): refuse bad input, evaluate, store, report."""
    from reports.markdown import sweep_markdown
    from reports.sweep_text import render_sweep_text

    setup_logging(log_file=backtest_log_file())  # research never writes the service log
    plan, base, variants, folds = prove(space_file, config_dir, search, start, end)
    key = DataKey(str(data_dir.resolve()), plan.markets, code_version())
    sweep_id = uuid.uuid4().hex[:12]
    with open_store(db) as con, task_runner(workers, dask_address) as runner:
        ctx = _Context(con, runner, sweep_id, key, _workers(runner, workers), batch)
        start_sweep(con, _run_record(sweep_id, space_file, plan, folds, variants), key,
                    datetime.now(UTC))
        try:
            if plan.optuna:
                variants = OptunaSearch(plan, base).run(
                    variants, lambda vs: _evaluate(ctx, vs, folds), lambda: ctx.results, folds
                )
            else:
                _evaluate(ctx, variants, folds)
            report = _report(plan, variants, folds, ctx)
            text = render_sweep_text(report)
        except BaseException as exc:
            finish_sweep(con, sweep_id, status="FAILED", evaluated=ctx.evaluated,
                         reused=ctx.reused, errors={"sweep": repr(exc), **ctx.errors},
                         report=None, at=datetime.now(UTC))
            raise
        status = "COMPLETE" if not ctx.errors else "INCOMPLETE"
        finish_sweep(con, sweep_id, status=status, evaluated=ctx.evaluated, reused=ctx.reused,
                     errors=ctx.errors, report=text, at=datetime.now(UTC))
    create_markdown_artifact(key="sweep-report", markdown=sweep_markdown(report),
                             description=f"sweep {sweep_id} ({space_file.name})")
    if html is not None:
        from reports.sweep_html import write_sweep_html

        write_sweep_html(report, html)
    return SweepOutcome(sweep_id, text, ctx.evaluated, ctx.reused, ctx.stored, ctx.errors, report)


def prove(
    space_file: Path,
    config_dir: Path | None,
    search: str | None,
    start: datetime | None,
    end: datetime | None,
) -> tuple[SweepPlan, Any, tuple[ResolvedVariant, ...], tuple[FoldWindows, ...]]:
    """The plan, the base config, every variant and the folds, or a ConfigError naming the
    problem: called by the CLI before the flow starts and again inside it."""
    plan = load_plan(space_file, search).with_window(start, end)
    base = load_config(config_dir)
    variants = resolve_variants(plan, base)
    return plan, base, variants, plan.folds()


def _run_record(
    sweep_id: str,
    space_file: Path,
    plan: SweepPlan,
    folds: Sequence[FoldWindows],
    variants: Sequence[ResolvedVariant],
) -> SweepRunRecord:
    import yaml

    windows = sum(1 + (f.test is not None) for f in folds)
    count = plan.trials + len(variants) if plan.optuna else len(variants)
    return SweepRunRecord(
        sweep_id=sweep_id,
        space_file=str(space_file),
        space=yaml.safe_load(space_file.read_text()),
        data_start=plan.start,  # type: ignore[arg-type]  # proven by plan.folds()
        data_end=plan.end,  # type: ignore[arg-type]
        folds=plan.walk_forward.describe() if plan.walk_forward else "none",
        search=plan.search,
        objective=str(plan.objective),
        min_trades=plan.min_trades,
        backtests=count * windows,
    )


def _report(plan: SweepPlan, variants, folds, ctx: _Context):
    missing = [v for v in variants
               if any((v.config_hash, *w) not in ctx.results for w in _windows(folds))]
    kept = [v for v in variants if v not in missing]
    notes = [f"{v.name}: not reported, a backtest failed (see the errors)" for v in missing]
    notes += [f"error {k}: {m}" for k, m in list(ctx.errors.items())[:10]]
    notes.append(f"backtests: {ctx.evaluated} run now, {ctx.reused} reused from the store")
    analysis = analyse([(v.name, v.config_hash) for v in kept], folds, ctx.results,
                       plan.objective, plan.min_trades)
    title = (f"Sweep {ctx.sweep_id}: {len(kept)} variants, {plan.search}, "
             f"{plan.start:%Y-%m-%d}..{plan.end:%Y-%m-%d}")
    return build_report(title, plan, kept, analysis, notes)


def _windows(folds: Sequence[FoldWindows]) -> list[tuple[datetime, datetime]]:
    return [w for f in folds for w in (f.train, f.test) if w is not None]


def run_sweep(progress: Progress | None = None, **parameters: Any) -> SweepOutcome:
    """The `sweep` flow run in this process (the CLI's entry), with an optional progress
    callback (done, total) for the bar."""
    _progress[:] = [progress] if progress else []
    try:
        return sweep(**parameters)
    finally:
        _progress.clear()


def _when(text: str | None) -> datetime | None:
    return None if text is None else parse_utc(text)
