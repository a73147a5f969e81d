"""What the sweep report reads: per variant its in-sample and out-of-sample figures, plus the
overfitting guards of core/overfit.py. Filled in by the sweep; the reports only format them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.overfit import (
    DSR_MIN,
    PBO_MAX,
    BacktestOverfitting,
    DeflatedSharpe,
    OverfitVerdict,
    overfit_verdict,
)
from core.sweep_objective import SampleFigures


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One variant of the sweep. out_of_sample None: not scored out of sample (no folds)."""

    name: str
    config_hash: str
    overrides: Mapping[str, Any]
    in_sample: SampleFigures
    out_of_sample: SampleFigures | None
    same_as: tuple[str, ...] = ()  # later variants with the same effective configuration


@dataclass(frozen=True, slots=True)
class SweepReport:
    """The sweep a trader decides from.

    best: the variant chosen in sample by `objective` (None: no variant qualified, e.g. all
    under the minimum trade count). dsr / pbo: None when not computed (too few trials or
    periods); the verdict then says so. Refuses duplicate variant names and a best that is
    not one of them.
    """

    title: str
    objective: str
    variants: tuple[VariantResult, ...]
    best: str | None
    dsr: DeflatedSharpe | None
    pbo: BacktestOverfitting | None
    folds: str | None = None  # how in and out of sample were cut, e.g. "anchored, 2 folds"
    pbo_max: float = PBO_MAX
    dsr_min: float = DSR_MIN
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"sweep report: variant names {doubled} appear more than once")
        if self.best is not None and self.best not in names:
            raise ValueError(
                f"sweep report: best variant {self.best!r} is not among the variants {names}"
            )

    def verdict(self) -> OverfitVerdict:
        """core/overfit.overfit_verdict on this sweep's PBO and DSR."""
        return overfit_verdict(
            None if self.pbo is None else self.pbo.pbo,
            None if self.dsr is None else self.dsr.dsr,
            pbo_max=self.pbo_max,
            dsr_min=self.dsr_min,
        )
