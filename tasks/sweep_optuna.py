"""Optuna's TPE driven ask/tell from the sweep flow: trials asked in rounds of
`trial_batch`, each round evaluated on the cluster like a grid (every fold's windows),
each trial told its pooled in-sample objective. A trial under the minimum trade count,
or one the config model refuses (a sampled relation), is told FAIL and named in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from core.errors import ConfigError
from core.sweep_analysis import FoldWindows, Key
from core.sweep_objective import WindowResult, pool, score
from core.sweep_plan import SweepPlan
from core.sweep_space import Choice, ResolvedVariant, resolve_variant
from schemas.config import AppConfig

log = logging.getLogger("smc_trader.sweep")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def distributions(plan: SweepPlan, base: AppConfig) -> dict[str, Any]:
    """The space's parameters as Optuna distributions (integer ranges on integer fields)."""
    dump = base.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name, domain in plan.space.parameters.items():
        if isinstance(domain, Choice):
            out[name] = optuna.distributions.CategoricalDistribution(list(domain.values))
            continue
        value: Any = dump
        for part in name.split("."):
            value = value[part]
        if isinstance(value, int) and not isinstance(value, bool):
            out[name] = optuna.distributions.IntDistribution(
                int(domain.low), int(domain.high), log=domain.log
            )
        else:
            out[name] = optuna.distributions.FloatDistribution(
                domain.low, domain.high, log=domain.log
            )
    return out


class OptunaSearch:
    def __init__(self, plan: SweepPlan, base: AppConfig) -> None:
        self.plan = plan
        self.base = base
        sampler = optuna.samplers.TPESampler(seed=plan.space.seed)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.spaces = distributions(plan, base)

    def run(
        self,
        named: Sequence[ResolvedVariant],
        evaluate: Callable[[Sequence[ResolvedVariant]], None],
        results: Callable[[], Mapping[Key, WindowResult]],
        folds: Sequence[FoldWindows],
    ) -> tuple[ResolvedVariant, ...]:
        """Evaluate the named variants, then the trials; every variant evaluated, once each."""
        seen: dict[str, ResolvedVariant] = {}
        if named:
            evaluate(named)
            seen |= {v.config_hash: v for v in named}
        left = self.plan.trials
        while left > 0:
            asked = [self.study.ask(self.spaces) for _ in range(min(left, self.plan.trial_batch))]
            left -= len(asked)
            valid = []
            for trial in asked:
                try:
                    variant = resolve_variant(self.base, f"trial-{trial.number + 1:03d}",
                                              trial.params)
                except ConfigError as exc:
                    log.warning("optuna trial %d refused: %s", trial.number + 1, exc)
                    self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    continue
                valid.append((trial, variant))
            evaluate([v for _, v in valid])
            done = results()
            for trial, variant in valid:
                keys = [(variant.config_hash, *f.train) for f in folds]
                value = None
                if all(k in done for k in keys):  # else a backtest failed (in the errors)
                    value = score(pool([done[k] for k in keys]), self.plan.objective,
                                  self.plan.min_trades)
                if value is None:
                    self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    self.study.tell(trial, value)
                seen.setdefault(variant.config_hash, variant)
        return tuple(seen.values())
