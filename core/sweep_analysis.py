"""Walk-forward selection and the overfitting guards over a finished sweep's windows.

Per fold the configuration with the best in-sample objective (on that fold's train
window) is chosen and scored on the fold's test window; the report shows every variant's
pooled in-sample (train windows) and out-of-sample (test windows) figures side by side.
`best` is the variant with the best pooled in-sample objective.

The guards (core/overfit.py) read the out-of-sample period: every variant's daily returns
over the test windows in fold order (each day once, no overlap between folds).
- PBO (CSCV) over that T days x N variants matrix, per-period Sharpe as the statistic,
  S = the largest even block count <= min(16, T).
- DSR of the best variant's series, the trials being every variant's per-period Sharpe
  on the same days (N = the number of variants evaluated, Optuna trials included).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from core.overfit import (
    BacktestOverfitting,
    DeflatedSharpe,
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_performance,
)
from core.sweep_objective import Objective, Pooled, WindowResult, pool, score

MAX_BLOCKS = 16

Window = tuple[datetime, datetime]  # first and last decision hour, both included
Key = tuple[str, datetime, datetime]  # (config hash, window start, window end)


@dataclass(frozen=True, slots=True)
class FoldWindows:
    index: int
    train: Window
    test: Window | None  # None: a single in-sample run, no out-of-sample


@dataclass(frozen=True, slots=True)
class VariantSamples:
    name: str
    config_hash: str
    in_sample: Pooled
    out_of_sample: Pooled | None
    score: float | None  # the in-sample objective (None: does not qualify)


@dataclass(frozen=True, slots=True)
class FoldChoice:
    index: int
    chosen: str | None  # None: no variant reached the minimum trades in this train window
    in_sample_score: float | None
    test_result: WindowResult | None  # the chosen variant on the fold's test window

    @property
    def out_of_sample(self) -> Pooled | None:
        return None if self.test_result is None else pool([self.test_result])


@dataclass(frozen=True, slots=True)
class SweepAnalysis:
    variants: tuple[VariantSamples, ...]
    best: str | None
    folds: tuple[FoldChoice, ...]
    walk_forward: Pooled | None  # the per-fold choices' test windows pooled
    dsr: DeflatedSharpe | None
    pbo: BacktestOverfitting | None
    notes: tuple[str, ...]


def analyse(
    variants: Sequence[tuple[str, str]],
    folds: Sequence[FoldWindows],
    results: Mapping[Key, WindowResult],
    objective: Objective,
    min_trades: int,
) -> SweepAnalysis:
    """Pool, choose and guard. `variants` are (name, config hash) in report order; every
    (hash, window) the folds name must be in `results` (KeyError otherwise)."""
    samples = tuple(_samples(name, digest, folds, results, objective, min_trades)
                    for name, digest in variants)
    best = _argmax([(s.name, s.score) for s in samples])
    choices = tuple(_fold_choice(f, variants, results, objective, min_trades) for f in folds)
    chosen_tests = [c.test_result for c in choices if c.test_result is not None]
    walk = pool(chosen_tests) if chosen_tests else None
    notes: list[str] = []
    dsr, pbo = _guards(samples, best, notes)
    return SweepAnalysis(samples, best, choices, walk, dsr, pbo, tuple(notes))


def _window(results: Mapping[Key, WindowResult], digest: str, window: Window) -> WindowResult:
    return results[(digest, window[0], window[1])]


def _samples(
    name: str,
    digest: str,
    folds: Sequence[FoldWindows],
    results: Mapping[Key, WindowResult],
    objective: Objective,
    min_trades: int,
) -> VariantSamples:
    train = pool([_window(results, digest, f.train) for f in folds])
    tests = [_window(results, digest, f.test) for f in folds if f.test is not None]
    oos = pool(tests) if tests else None
    return VariantSamples(name, digest, train, oos, score(train, objective, min_trades))


def _fold_choice(
    fold: FoldWindows,
    variants: Sequence[tuple[str, str]],
    results: Mapping[Key, WindowResult],
    objective: Objective,
    min_trades: int,
) -> FoldChoice:
    scores = [
        (name, score(pool([_window(results, digest, fold.train)]), objective, min_trades))
        for name, digest in variants
    ]
    chosen = _argmax(scores)
    if chosen is None or fold.test is None:
        return FoldChoice(fold.index, chosen, None, None)
    digest = dict(variants)[chosen]
    value = dict(scores)[chosen]
    return FoldChoice(fold.index, chosen, value, _window(results, digest, fold.test))


def _argmax(scores: Sequence[tuple[str, float | None]]) -> str | None:
    """The name with the highest score (the first one on a tie); None if none qualifies."""
    best: tuple[str, float] | None = None
    for name, value in scores:
        if value is not None and (best is None or value > best[1]):
            best = (name, value)
    return None if best is None else best[0]


def _guards(
    samples: Sequence[VariantSamples], best: str | None, notes: list[str]
) -> tuple[DeflatedSharpe | None, BacktestOverfitting | None]:
    series = [s.out_of_sample.daily for s in samples if s.out_of_sample is not None]
    if len(series) < 2 or len(series) != len(samples):
        notes.append("DSR and PBO need at least 2 variants scored out of sample")
        return None, None
    width = max(len(x) for x in series)
    # a ruined run stops its daily returns: it earns nothing afterwards
    matrix = np.array([list(x) + [0.0] * (width - len(x)) for x in series]).T
    pbo = _pbo(matrix, notes)
    dsr = None
    if best is None:
        notes.append("DSR not computed: no variant reached the minimum trades in sample")
    else:
        column = [s.name for s in samples].index(best)
        trials = [_per_period_sharpe(matrix[:, j]) for j in range(matrix.shape[1])]
        dsr = deflated_sharpe_ratio(matrix[:, column], trial_sharpes=trials)
        if dsr is None:
            notes.append("DSR not computed: the best variant's returns have no deviation")
    return dsr, pbo


def _pbo(matrix: np.ndarray, notes: list[str]) -> BacktestOverfitting | None:
    rows = matrix.shape[0]
    blocks = min(MAX_BLOCKS, rows - rows % 2)
    if blocks < 2:
        notes.append(f"PBO not computed: {rows} out-of-sample days, at least 2 are needed")
        return None
    return probability_of_backtest_overfitting(matrix, blocks, sharpe_performance)


def _per_period_sharpe(column: np.ndarray) -> float:
    std = float(np.std(column, ddof=1)) if len(column) > 1 else 0.0
    value = float(np.mean(column)) / std if std > 0 else 0.0
    return value if math.isfinite(value) else 0.0
