"""The sweep's steps outside the flow's wiring: the plan from a file, the jobs, the
worker-side batch of backtests, and the report from the stored results.

A job is one configuration on one window. A batch (tens of jobs) is one Prefect task run
on a Dask worker: the worker reads the data folder once per process (venues/replay's
read_folder caches it by its files' names, sizes and times), validates each configuration
once (cached by hash) and returns small WindowResult records; it never writes the store.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError, TraderError
from core.sweep_analysis import FoldWindows, Key, SweepAnalysis, Window
from core.sweep_objective import Pooled, WindowResult, summarize
from core.sweep_plan import SweepPlan, parse_plan
from core.sweep_space import ResolvedVariant, resolve_space
from reports.sweep_records import SampleFigures, SweepReport, VariantResult
from schemas.config import AppConfig
from tasks.backtest import BacktestRequest, run_backtest
from tasks.logs import quiet_decisions

log = logging.getLogger("smc_trader.sweep")
MAX_BATCH = 40
BATCHES_PER_WORKER = 3
_CONFIGS: dict[str, AppConfig] = {}  # per worker process: each configuration validated once


@dataclass(frozen=True, slots=True)
class SweepJob:
    """One backtest to run: a configuration (as its JSON dump) on one window."""

    config_hash: str
    config: Mapping[str, Any]
    start: datetime
    end: datetime

    @property
    def key(self) -> Key:
        return (self.config_hash, self.start, self.end)

    def label(self) -> str:
        return f"{self.config_hash} {self.start:%Y-%m-%d %H:%M}..{self.end:%Y-%m-%d %H:%M}"


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    results: tuple[WindowResult, ...]
    errors: Mapping[str, str] = field(default_factory=dict)  # job label -> what went wrong
    seconds: float = 0.0  # wall time of the batch inside the worker


def load_plan(path: Path, search: str | None = None) -> SweepPlan:
    """Read and parse a sweep file; ConfigError names the file on any problem."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"sweep file {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"sweep file {path}: not valid YAML ({exc})") from None
    try:
        return parse_plan(raw, search)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def resolve_variants(plan: SweepPlan, base: AppConfig) -> tuple[ResolvedVariant, ...]:
    """Every variant validated before any work (core/sweep_space.resolve_space). For Optuna
    the named variants are run and the parameters proven on seeded random samples."""
    variants = resolve_space(plan.space, base)
    if plan.optuna:
        named = {v.name for v in plan.space.variants}
        return tuple(v for v in variants if v.name in named)
    return variants


def jobs_for(variants: Sequence[ResolvedVariant], folds: Sequence[FoldWindows]) -> list[SweepJob]:
    """Every (configuration, window) the report needs, each once, in variant then fold order."""
    windows: list[Window] = []
    for fold in folds:
        windows += [fold.train] + ([fold.test] if fold.test else [])
    jobs: dict[Key, SweepJob] = {}
    for v in variants:
        dump = v.config.model_dump(mode="json")
        for start, end in dict.fromkeys(windows):
            jobs.setdefault((v.config_hash, start, end), SweepJob(v.config_hash, dump, start, end))
    return list(jobs.values())


def batch_size(jobs: int, workers: int, requested: int | None = None) -> int:
    """Jobs per task: a few tasks per worker (load balance, little lost to a dead worker),
    at most MAX_BATCH (Prefect records every task run: tens of jobs per task, not one)."""
    if requested:
        return requested
    return max(1, min(MAX_BATCH, math.ceil(jobs / max(1, workers * BATCHES_PER_WORKER))))


def batches(jobs: Sequence[SweepJob], size: int) -> list[list[SweepJob]]:
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def evaluate_jobs(data_dir: str, markets: Sequence[str], jobs: Sequence[SweepJob]) -> BatchOutcome:
    """Run a batch of backtests in this worker (in memory, no store). One failing job is
    named in the errors and the others still run."""
    started = time.perf_counter()
    results, errors = [], {}
    with quiet_decisions():
        for job in jobs:
            try:
                results.append(run_job(Path(data_dir), tuple(markets), job))
            except (TraderError, ValueError) as exc:
                errors[job.label()] = f"{type(exc).__name__}: {exc}"
    return BatchOutcome(tuple(results), errors, time.perf_counter() - started)


def run_job(data_dir: Path, markets: tuple[str, ...], job: SweepJob) -> WindowResult:
    """One configuration on one window, exactly as `trader backtest --from --to` runs it."""
    config = _CONFIGS.get(job.config_hash)
    if config is None:
        config = _CONFIGS.setdefault(job.config_hash, AppConfig.model_validate(job.config))
    request = BacktestRequest(
        data_dir=data_dir, config=config, start=job.start, end=job.end, markets=markets
    )
    result = run_backtest(request)
    return summarize(result, job.config_hash, len(result.run.markets))


def _figures(sample: Pooled | None) -> SampleFigures | None:
    return None if sample is None else sample.figures()


def build_report(
    title: str,
    plan: SweepPlan,
    variants: Sequence[ResolvedVariant],
    analysis: SweepAnalysis,
    extra_notes: Sequence[str] = (),
) -> SweepReport:
    """The SweepReport of reports/ from the analysis of the stored results."""
    by_hash = {v.config_hash: v for v in variants}
    rows = tuple(
        VariantResult(
            name=s.name,
            config_hash=s.config_hash,
            overrides=dict(by_hash[s.config_hash].overrides),
            in_sample=_figures(s.in_sample),  # type: ignore[arg-type]
            out_of_sample=_figures(s.out_of_sample),
            same_as=by_hash[s.config_hash].same_as,
        )
        for s in analysis.variants
    )
    return SweepReport(
        title=title,
        objective=f"{plan.objective} (min {plan.min_trades} trades in sample)",
        variants=rows,
        best=analysis.best,
        dsr=analysis.dsr,
        pbo=analysis.pbo,
        folds=plan.walk_forward.describe() if plan.walk_forward else "in sample only (no folds)",
        notes=(*_fold_notes(analysis), *analysis.notes, *extra_notes),
    )


def _fold_notes(analysis: SweepAnalysis) -> list[str]:
    lines = []
    for c in analysis.folds:
        if c.chosen is None:
            lines.append(
                f"fold {c.index + 1}: no variant qualified in sample (under the minimum "
                "trades, or the objective is undefined, e.g. no trade)"
            )
            continue
        oos = c.out_of_sample
        shown = "" if oos is None else (
            f"; out of sample {oos.trades} trades, expectancy "
            f"{_usd(oos.expectancy_usd)}, return {oos.net_return:+.2%}"
        )
        lines.append(f"fold {c.index + 1}: chose {c.chosen} in sample{shown}")
    w = analysis.walk_forward
    if w is not None:
        lines.append(
            f"walk-forward (each fold's in-sample choice on its test window): {w.trades} trades, "
            f"expectancy {_usd(w.expectancy_usd)}, return {w.net_return:+.2%}, "
            f"max drawdown {(w.max_drawdown_pct or 0):.1%}"
        )
    return lines


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+,.2f} USD"
