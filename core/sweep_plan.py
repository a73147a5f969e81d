"""A sweep file: the search space (core/sweep_space.py) plus what to run it on.

    search: grid                     # grid | random | optuna (the CLI's --search wins)
    parameters: {strategy.ote_tolerance: [0, 0.02]}
    variants: [{name: baseline, overrides: {}}]
    window: {from: 2025-03-01, to: 2026-02-01}         # decisions in [from, to)
    walk_forward: {folds: 3, train_days: 90, test_days: 30, scheme: anchored}
    markets: [BTC, ETH]              # default: every market of the data folder
    objective: expectancy            # expectancy | sharpe | calmar | profit_drawdown
    min_trades: 10                   # a sample with fewer trades does not qualify
    trials: 40                       # optuna: trials in all
    trial_batch: 8                   # optuna: trials asked per round (evaluated in parallel)

Pure: parses the YAML-loaded mapping and cuts the windows; refuses (ConfigError naming
the key and the fix) anything malformed, before any backtest runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.cycle import as_utc
from core.errors import ConfigError
from core.sweep_analysis import FoldWindows
from core.sweep_objective import Objective
from core.sweep_space import SPACE_KEYS, FoldScheme, SearchKind, SearchSpace, walk_forward_folds

OPTUNA = "optuna"
PLAN_KEYS = {"window", "walk_forward", "markets", "objective", "min_trades", "trials",
             "trial_batch"}
H = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class WalkForward:
    folds: int
    train: timedelta
    test: timedelta
    scheme: FoldScheme

    def describe(self) -> str:
        return (f"{self.scheme}, {self.folds} folds, train {self.train.days} d, "
                f"test {self.test.days} d")


@dataclass(frozen=True, slots=True)
class SweepPlan:
    space: SearchSpace
    optuna: bool
    start: datetime | None
    end: datetime | None
    walk_forward: WalkForward | None
    markets: tuple[str, ...]
    objective: Objective
    min_trades: int
    trials: int
    trial_batch: int

    @property
    def search(self) -> str:
        return OPTUNA if self.optuna else str(self.space.search)

    def with_window(self, start: datetime | None, end: datetime | None) -> SweepPlan:
        return _replace(self, start=start or self.start, end=end or self.end)

    def folds(self) -> tuple[FoldWindows, ...]:
        """The windows every variant runs on: per fold its train and test decisions."""
        if self.start is None or self.end is None:
            raise ConfigError("sweep window: give window: {from, to} in the file or --from/--to")
        if self.walk_forward is None:
            return (FoldWindows(0, (self.start, self.end - H), None),)
        wf = self.walk_forward
        folds = walk_forward_folds(
            self.start, self.end, folds=wf.folds, test=wf.test, train=wf.train, scheme=wf.scheme
        )
        return tuple(
            FoldWindows(f.index, (f.train_start, f.train_end - H), (f.test_start, f.test_end - H))
            for f in folds
        )


def _replace(plan: SweepPlan, **changes: Any) -> SweepPlan:
    return replace(plan, **changes)


def parse_plan(raw: Any, search: str | None = None) -> SweepPlan:
    """The sweep file's mapping as a plan; `search` (the CLI's) overrides the file's."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"sweep file must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - SPACE_KEYS - PLAN_KEYS
    if unknown:
        raise ConfigError(
            f"sweep file: unknown keys {sorted(unknown)}; use {sorted(SPACE_KEYS | PLAN_KEYS)}"
        )
    space_raw = {k: v for k, v in raw.items() if k in SPACE_KEYS}
    kind = search or space_raw.get("search", "grid")
    optuna = kind == OPTUNA
    if optuna:
        space_raw["search"] = "random"  # ranges allowed; samples only prove the space
        space_raw["samples"] = space_raw.get("samples") or 32
    else:
        space_raw["search"] = kind
        if kind == SearchKind.GRID and search:
            space_raw.pop("samples", None)  # --search grid over a random file: samples unused
    space = SearchSpace.from_mapping(space_raw)
    if optuna and not space.parameters:
        raise ConfigError("sweep file: search: optuna needs parameters to search over")
    window = _mapping(raw, "window")
    unknown_window = set(window) - {"from", "to"}
    if unknown_window:
        raise ConfigError(f"sweep window: unknown keys {sorted(unknown_window)}; use from, to")
    return SweepPlan(
        space=space,
        optuna=optuna,
        start=_when("window.from", window.get("from")),
        end=_when("window.to", window.get("to")),
        walk_forward=_walk_forward(_mapping(raw, "walk_forward")),
        markets=_markets(raw.get("markets")),
        objective=_objective(raw.get("objective", Objective.EXPECTANCY)),
        min_trades=_count("min_trades", raw.get("min_trades", 1), low=0),
        trials=_count("trials", raw.get("trials", 20), low=1),
        trial_batch=_count("trial_batch", raw.get("trial_batch", 8), low=1),
    )


def _mapping(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"sweep file: {key} must be a mapping, got {value!r}")
    return value


def _when(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        try:
            when = datetime.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f"sweep {name}: {value!r} is not a date, e.g. 2025-03-01") from None
    return as_utc(when)


def _walk_forward(raw: Mapping[str, Any]) -> WalkForward | None:
    if not raw:
        return None
    extra = set(raw) - {"folds", "train_days", "test_days", "scheme"}
    if extra:
        raise ConfigError(
            f"sweep walk_forward: unknown keys {sorted(extra)}; "
            "use folds, train_days, test_days, scheme"
        )
    folds = _count("walk_forward.folds", raw.get("folds", 2), low=0)
    if folds == 0:
        return None
    try:
        scheme = FoldScheme(raw.get("scheme", FoldScheme.ANCHORED))
    except ValueError:
        raise ConfigError(
            f"sweep walk_forward.scheme {raw.get('scheme')!r}: use anchored or rolling"
        ) from None
    return WalkForward(
        folds,
        timedelta(days=_count("walk_forward.train_days", raw.get("train_days"), low=1)),
        timedelta(days=_count("walk_forward.test_days", raw.get("test_days"), low=1)),
        scheme,
    )


def _markets(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(m, str) and m for m in raw):
        raise ConfigError(f"sweep markets: give base assets, e.g. [BTC, ETH]; got {raw!r}")
    return tuple(sorted({m.upper().removesuffix("USDT") for m in raw}))


def _objective(raw: Any) -> Objective:
    try:
        return Objective(raw)
    except ValueError:
        raise ConfigError(
            f"sweep objective {raw!r} unknown; use one of {[str(o) for o in Objective]}"
        ) from None


def _count(name: str, raw: Any, *, low: int) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < low:
        raise ConfigError(f"sweep {name}: give an integer >= {low}, got {raw!r}")
    return raw
