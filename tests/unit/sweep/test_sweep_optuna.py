"""Optuna ask/tell from the flow, without backtests: the evaluator is a stand-in that fills
in-sample results whose expectancy is known, so TPE's told values can be checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import optuna

from core.sweep_plan import parse_plan
from tasks.settings import load_config
from tasks.sweep import resolve_variants
from tasks.sweep_optuna import OptunaSearch, distributions
from tests.support.sweeps import window

RAW = {
    "search": "optuna",
    "variants": [{"name": "baseline"}],
    "parameters": {
        "strategy.ote_tolerance": {"low": 0.0, "high": 0.1},
        "strategy.momentum": [False, True],
        "strategy.fvg_lookback_bars": {"low": 10, "high": 40},
    },
    "window": {"from": "2025-01-01", "to": "2025-01-05"},
    "trials": 6,
    "trial_batch": 4,
}


def test_parameters_become_optuna_distributions_by_the_field_type():
    plan = parse_plan(RAW)
    spaces = distributions(plan, load_config(None))
    assert isinstance(spaces["strategy.momentum"], optuna.distributions.CategoricalDistribution)
    assert isinstance(spaces["strategy.ote_tolerance"], optuna.distributions.FloatDistribution)
    assert isinstance(spaces["strategy.fvg_lookback_bars"], optuna.distributions.IntDistribution)


def test_trials_are_asked_in_rounds_and_told_their_in_sample_objective():
    plan = parse_plan(RAW)
    base = load_config(None)
    folds = plan.folds()
    results: dict = {}
    rounds: list[int] = []

    def evaluate(variants) -> None:
        rounds.append(len(variants))
        for v in variants:
            # expectancy = 1000 x ote_tolerance: TPE is told exactly that
            pnl = (1000 * v.config.strategy.ote_tolerance,)
            start, end = folds[0].train
            r = window(v.config_hash, 0, pnl, (0.001,), days=(end - start).days + 1 / 24)
            results[(v.config_hash, start, end)] = r

    named = resolve_variants(plan, base)
    search = OptunaSearch(plan, base)
    evaluated = search.run(named, evaluate, lambda: results, folds)
    assert rounds == [1, 4, 2]  # the baseline, then 6 trials in rounds of 4
    assert evaluated[0].name == "baseline" and len(evaluated) == 7
    trials = search.study.trials
    assert len(trials) == 6
    for t in trials:
        assert t.value is not None
        assert abs(t.value - 1000 * t.params["strategy.ote_tolerance"]) < 1e-9
    assert datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=4) == plan.end
