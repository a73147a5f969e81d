"""A hand-built sweep: the baseline and the four SPEC §5 relaxations, in and out of sample,
with the DSR and PBO of core/overfit computed on seeded synthetic daily returns."""

from __future__ import annotations

import numpy as np

from core.overfit import deflated_sharpe_ratio, probability_of_backtest_overfitting
from reports.sweep_records import SampleFigures, SweepReport, VariantResult


def figures(trades, per_month, win, exp_usd, exp_r, dd, sharpe) -> SampleFigures:
    return SampleFigures(trades, per_month, win, exp_usd, exp_r, dd, sharpe)


VARIANTS = (
    VariantResult(
        "baseline",
        "a1b2c3d4e5f60718",
        {},
        figures(14, 1.4, 0.357, -3.10, -0.04, 0.062, -0.21),
        figures(5, 1.25, 0.40, 2.50, 0.03, 0.031, 0.35),
    ),
    VariantResult(
        "ote_tolerance=0.05",
        "b2c3d4e5f6071829",
        {"strategy.ote_tolerance": 0.05},
        figures(41, 4.1, 0.415, 6.20, 0.09, 0.081, 0.92),
        figures(12, 3.0, 0.333, -4.80, -0.07, 0.054, -0.40),
    ),
    VariantResult(
        "allow_1h_structure=true",
        "c3d4e5f607182930",
        {"strategy.allow_1h_structure": True},
        figures(63, 6.3, 0.381, 1.10, 0.02, 0.097, 0.18),
        figures(20, 5.0, 0.35, -1.90, -0.03, 0.071, -0.12),
    ),
    VariantResult(
        "momentum=true",
        "d4e5f60718293041",
        {"strategy.momentum": True},
        figures(0, 0.0, None, None, None, 0.0, None),
        None,
    ),
    VariantResult(
        "all_relaxations_with_a_rather_long_name_for_the_table",
        "e5f6071829304152",
        {
            "strategy.ote_tolerance": 0.05,
            "strategy.allow_1h_structure": True,
            "strategy.momentum": True,
            "strategy.widen_tight_smc": True,
        },
        figures(118, 11.8, 0.39, 0.40, 0.01, 0.142, 0.05),
        figures(33, 8.25, 0.364, -2.20, -0.04, 0.118, -0.31),
        same_as=("everything",),
    ),
)


def build_sweep(variants=VARIANTS, *, best="ote_tolerance=0.05", guards=True) -> SweepReport:
    rng = np.random.default_rng(7)
    daily = rng.normal(0.0004, 0.01, size=(240, len(variants)))
    dsr = pbo = None
    if guards:
        sharpes = daily.mean(axis=0) / daily.std(axis=0, ddof=1)
        dsr = deflated_sharpe_ratio(daily[:, 1], trial_sharpes=sharpes)
        pbo = probability_of_backtest_overfitting(daily, blocks=8)
    return SweepReport(
        title="SWEEP relaxations.yaml on binance-usdm, 2025-03-01 -> 2026-02-01",
        objective="expectancy_r (min 10 trades)",
        variants=tuple(variants),
        best=best,
        dsr=dsr,
        pbo=pbo,
        folds="anchored walk-forward, 2 folds of 120 days out of sample",
    )
