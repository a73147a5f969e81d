"""The search space of a sweep: parameters by dotted config name, variants, folds, hashes.

A space is read from a YAML-loaded mapping (docs/METRICS.md, "Sweep space"):

    search: grid                 # grid (cartesian product) | random (seeded samples)
    samples: 40                  # random only
    seed: 7                      # random only (default 0)
    parameters:
      strategy.ote_tolerance: [0, 0.02, 0.05]        # a list: choices
      strategy.allow_1h_structure: [false, true]
      strategy.atr_stop_buffer: {low: 0.3, high: 1.0, log: false}   # random only
    variants:                    # named, always included, before the generated ones
      - name: baseline
        overrides: {}

Every variant is the base AppConfig with its overrides applied and validated by the
config model. `resolve_space` proves the whole space before any backtest runs and
refuses it with one ConfigError naming each bad parameter and variant.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import ValidationError

from core.errors import ConfigError
from schemas.config import AppConfig

HASH_CHARS = 16
MAX_VARIANTS = 10_000
MAX_PROBLEMS_SHOWN = 20
SPACE_KEYS = {"search", "samples", "seed", "parameters", "variants"}


class SearchKind(StrEnum):
    GRID = "grid"
    RANDOM = "random"


@dataclass(frozen=True, slots=True)
class Choice:
    """A parameter drawn from a list of values (every one in a grid, one at random)."""

    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Range:
    """A numeric interval [low, high], sampled uniformly (log: in log space) by random search.

    Integer parameters (by their type in the base config) draw integers, both ends included.
    """

    low: float
    high: float
    log: bool = False


Domain = Choice | Range


@dataclass(frozen=True, slots=True)
class Variant:
    """One named set of overrides by dotted config name."""

    name: str
    overrides: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SearchSpace:
    search: SearchKind
    parameters: Mapping[str, Domain]
    variants: tuple[Variant, ...]
    samples: int | None = None
    seed: int = 0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> SearchSpace:
        """Parse a YAML-loaded space; refuses unknown keys and malformed entries (ConfigError)."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"sweep space must be a mapping, got {type(raw).__name__}")
        unknown = set(raw) - SPACE_KEYS
        if unknown:
            raise ConfigError(
                f"sweep space: unknown keys {sorted(unknown)}; use {sorted(SPACE_KEYS)}"
            )
        search = _search_kind(raw.get("search", SearchKind.GRID))
        parameters = {str(k): _domain(str(k), v, search) for k, v in _mapping(raw, "parameters")}
        variants = _variants(raw.get("variants") or [])
        samples = _samples(raw.get("samples"), search)
        seed = raw.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"sweep space: seed must be an integer, got {seed!r}")
        if not parameters and not variants:
            raise ConfigError("sweep space is empty: give parameters, variants or both")
        return cls(search, parameters, variants, samples, seed)


@dataclass(frozen=True, slots=True)
class ResolvedVariant:
    """A variant's effective, validated configuration and its hash."""

    name: str
    overrides: Mapping[str, Any]
    config: AppConfig
    config_hash: str
    same_as: tuple[str, ...] = field(default=())  # later variants with the same effective config


def _search_kind(value: Any) -> SearchKind:
    try:
        return SearchKind(value)
    except ValueError:
        raise ConfigError(
            f"sweep space: search {value!r} unknown; use one of {[str(k) for k in SearchKind]}"
        ) from None


def _mapping(raw: Mapping[str, Any], key: str) -> list[tuple[Any, Any]]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"sweep space: {key} must be a mapping of dotted names, got {value!r}")
    return list(value.items())


def _domain(name: str, value: Any, search: SearchKind) -> Domain:
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"sweep parameter {name}: the list of values is empty")
        return Choice(tuple(value))
    if isinstance(value, Mapping):
        if search is SearchKind.GRID:
            raise ConfigError(
                f"sweep parameter {name}: a range needs search: random; a grid takes a list"
            )
        return _range(name, value)
    raise ConfigError(
        f"sweep parameter {name}: give a list of values or {{low, high, log}}, got {value!r}"
    )


def _range(name: str, value: Mapping[str, Any]) -> Range:
    extra = set(value) - {"low", "high", "log"}
    if extra or not {"low", "high"} <= set(value):
        raise ConfigError(f"sweep parameter {name}: a range is {{low, high, log}}, got {value}")
    low, high, log = value["low"], value["high"], value.get("log", False)
    for end in (low, high):
        if isinstance(end, bool) or not isinstance(end, int | float) or not math.isfinite(end):
            raise ConfigError(
                f"sweep parameter {name}: low and high must be numbers, got {end!r} "
                "(YAML reads 1e-3 as text: write 1.0e-3)"
            )
    if not low < high:
        raise ConfigError(f"sweep parameter {name}: low ({low}) must be < high ({high})")
    if not isinstance(log, bool):
        raise ConfigError(f"sweep parameter {name}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"sweep parameter {name}: a log range needs low > 0, got {low}")
    return Range(float(low), float(high), log)


def _variants(raw: Any) -> tuple[Variant, ...]:
    if not isinstance(raw, list):
        raise ConfigError(
            f"sweep space: variants must be a list of {{name, overrides}}, got {raw!r}"
        )
    variants, seen = [], set()
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or set(item) - {"name", "overrides"} or "name" not in item:
            raise ConfigError(f"sweep variant #{i + 1}: give {{name, overrides}}, got {item!r}")
        name, overrides = str(item["name"]), item.get("overrides") or {}
        if not name or name in seen:
            raise ConfigError(f"sweep variant #{i + 1}: name {name!r} is empty or used twice")
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"sweep variant {name!r}: overrides must be a mapping")
        seen.add(name)
        variants.append(Variant(name, {str(k): v for k, v in overrides.items()}))
    return tuple(variants)


def _samples(value: Any, search: SearchKind) -> int | None:
    if search is SearchKind.GRID:
        if value is not None:
            raise ConfigError("sweep space: samples applies to search: random; remove it")
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"sweep space: search: random needs samples >= 1, got {value!r}")
    return value


# -- overrides on the config model -------------------------------------------------------


def apply_overrides(base: AppConfig, overrides: Mapping[str, Any]) -> AppConfig:
    """The base configuration with dotted-name overrides applied, validated by the model.

    A mapping value on a section merges into it (other keys keep the base values).
    Refuses (ConfigError) an unknown name, suggesting the closest real ones, and any
    value or relation the model refuses, with pydantic's message on one line.
    """
    dump = base.model_dump(mode="json")
    unknown = [m for m in (_unknown_name(dump, name) for name in overrides) if m]
    if unknown:
        raise ConfigError("; ".join(unknown))
    try:
        return AppConfig.model_validate(_merged(dump, overrides))
    except ValidationError as exc:
        raise ConfigError("; ".join(f"{p}: {m}" for p, m in _refusals(exc, overrides))) from None


def _unknown_name(dump: Mapping[str, Any], name: str) -> str | None:
    """None if `name` is a key of the config; else the message with the closest real names."""
    node: Any = dump
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            hint = _closest(dump, name)
            tip = f"; did you mean {', '.join(hint)}?" if hint else ""
            return f"unknown parameter {name!r}{tip}"
        node = node[part]
    return None


def _closest(dump: Mapping[str, Any], name: str) -> list[str]:
    names = list(_dotted_names(dump))
    leaf = name.rsplit(".", 1)[-1]
    same_leaf = [n for n in names if n.rsplit(".", 1)[-1] == leaf]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return list(dict.fromkeys(same_leaf + close))[:3]


def _dotted_names(node: Mapping[str, Any], prefix: str = "") -> list[str]:
    names = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            names.extend(_dotted_names(value, dotted + "."))
        else:
            names.append(dotted)
    return names


def _merged(dump: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(dump))
    for name, value in overrides.items():
        *sections, leaf = name.split(".")
        node = merged
        for part in sections:
            node = node[part]
        if isinstance(value, Mapping) and isinstance(node[leaf], Mapping):
            node[leaf] = _deep_merge(node[leaf], value)
        else:
            node[leaf] = value
    return merged


def _deep_merge(into: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for key, value in update.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _deep_merge(out[key], value) if both else value
    return out


def _refusals(exc: ValidationError, overrides: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(the overrides a model error is about, its one-line message) for every error."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        message = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
        out.append((_blamed(loc, message, overrides), message))
    return out


def _blamed(loc: str, message: str, overrides: Mapping[str, Any]) -> str:
    """The override(s) behind an error at `loc`: the field itself, or a section's named fields."""
    exact = [n for n in overrides if n == loc or loc.startswith(n + ".")]
    under = [n for n in overrides if not loc or n.startswith(loc + ".")]
    named = [n for n in under if re.search(rf"\b{re.escape(n.rsplit('.', 1)[-1])}\b", message)]
    chosen = exact or named or under
    return ", ".join(f"{n} = {overrides[n]!r}" for n in chosen) or (loc or "the configuration")


def config_hash(config: AppConfig) -> str:
    """First 16 hex chars of sha256 over the canonical JSON of the effective configuration."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:HASH_CHARS]


def canonical_json(config: AppConfig) -> str:
    """The configuration as JSON with sorted keys and no spaces: equal configs, equal text."""
    return json.dumps(
        config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


# -- expanding and proving a space -----------------------------------------------------


def expand_space(space: SearchSpace, base: AppConfig) -> tuple[Variant, ...]:
    """Named variants first, then the grid (in parameter order) or the seeded random samples.

    The base decides whether a range draws floats or integers (the parameter's type).
    Refuses (ConfigError) a range on an unknown or non-numeric parameter.
    """
    generated: list[Variant] = []
    if space.parameters and space.search is SearchKind.GRID:
        generated = _grid(space.parameters)
    elif space.parameters:
        generated = _random(space, base.model_dump(mode="json"))
    return (*space.variants, *generated)


def _grid(parameters: Mapping[str, Domain]) -> list[Variant]:
    names = list(parameters)
    labels = _labels(names)
    choices = [d.values for d in parameters.values() if isinstance(d, Choice)]
    variants = []
    for combo in itertools.product(*choices):
        pairs = list(zip(names, combo, strict=True))
        variants.append(Variant(",".join(f"{labels[n]}={_show(v)}" for n, v in pairs), dict(pairs)))
    return variants


def _random(space: SearchSpace, dump: Mapping[str, Any]) -> list[Variant]:
    rng = np.random.default_rng(space.seed)
    names = sorted(space.parameters)  # sorted so reordering the YAML keeps the samples
    integer = {n: _is_integer(dump, n, space.parameters[n]) for n in names}
    width = len(str(space.samples))
    return [
        Variant(
            f"random-{i + 1:0{width}d}",
            {n: _draw(rng, space.parameters[n], integer[n]) for n in names},
        )
        for i in range(space.samples or 0)
    ]


def _is_integer(dump: Mapping[str, Any], name: str, domain: Domain) -> bool:
    if isinstance(domain, Choice):
        return False
    problem = _unknown_name(dump, name)
    if problem:
        raise ConfigError(f"sweep parameter: {problem}")
    value: Any = dump
    for part in name.split("."):
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"sweep parameter {name}: a range needs a numeric parameter, not {value!r}"
        )
    if isinstance(value, int) and math.ceil(domain.low) > math.floor(domain.high):
        raise ConfigError(
            f"sweep parameter {name}: integer range [{domain.low}, {domain.high}] is empty"
        )
    return isinstance(value, int)


def _draw(rng: np.random.Generator, domain: Domain, integer: bool) -> Any:
    if isinstance(domain, Choice):
        return domain.values[int(rng.integers(len(domain.values)))]
    if integer:
        low, high = math.ceil(domain.low), math.floor(domain.high)
        if domain.log:
            drawn = math.exp(rng.uniform(math.log(low), math.log(high + 1)))
            return min(int(drawn), high)
        return int(rng.integers(low, high + 1))
    if domain.log:
        return float(math.exp(rng.uniform(math.log(domain.low), math.log(domain.high))))
    return float(rng.uniform(domain.low, domain.high))


def _labels(names: Sequence[str]) -> dict[str, str]:
    """Short labels for variant names: the last segment, unless two parameters share it."""
    leaves = [n.rsplit(".", 1)[-1] for n in names]
    return {
        n: leaf if leaves.count(leaf) == 1 else n for n, leaf in zip(names, leaves, strict=True)
    }


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def resolve_space(
    space: SearchSpace, base: AppConfig, *, max_variants: int = MAX_VARIANTS
) -> tuple[ResolvedVariant, ...]:
    """Every variant of the space as a validated config, duplicates (same hash) folded.

    Proves the whole space before any work: refuses (one ConfigError listing all problems)
    unknown parameter names with the closest real ones, values or relations the model
    refuses (safety relations included), each naming the parameter and the variant, and
    a space larger than max_variants.
    """
    dump = base.model_dump(mode="json")
    problems = _unknown_names(space, dump)
    if problems:
        raise ConfigError(_problem_report(problems))
    variants = expand_space(space, base)
    if len(variants) > max_variants:
        raise ConfigError(
            f"sweep space has {len(variants)} variants, more than {max_variants}: "
            "narrow the grid or use search: random with fewer samples"
        )
    resolved: dict[str, ResolvedVariant] = {}
    refusals: dict[tuple[str, str], list[str]] = {}
    for variant in variants:
        try:
            config = AppConfig.model_validate(_merged(dump, variant.overrides))
        except ValidationError as exc:
            for blamed, message in _refusals(exc, variant.overrides):
                refusals.setdefault((blamed, message), []).append(variant.name)
            continue
        _keep(resolved, variant, config)
    if refusals:
        raise ConfigError(_problem_report(_refusal_lines(refusals)))
    return tuple(resolved.values())


def resolve_variant(base: AppConfig, name: str, overrides: Mapping[str, Any]) -> ResolvedVariant:
    """One variant (an Optuna trial, say) validated like a whole space; ConfigError names it."""
    try:
        config = apply_overrides(base, overrides)
    except ConfigError as exc:
        raise ConfigError(f"sweep variant {name!r}: {exc}") from None
    return ResolvedVariant(name, dict(overrides), config, config_hash(config))


def _unknown_names(space: SearchSpace, dump: Mapping[str, Any]) -> list[str]:
    places: dict[str, list[str]] = {}
    for name in space.parameters:
        places.setdefault(name, []).append("parameters")
    for variant in space.variants:
        for name in variant.overrides:
            places.setdefault(name, []).append(f"variant {variant.name!r}")
    lines = []
    for name, where in places.items():
        problem = _unknown_name(dump, name)
        if problem:
            lines.append(f"{problem} (in {', '.join(where)})")
    return lines


def _keep(resolved: dict[str, ResolvedVariant], variant: Variant, config: AppConfig) -> None:
    digest = config_hash(config)
    first = resolved.get(digest)
    if first is None:
        resolved[digest] = ResolvedVariant(variant.name, dict(variant.overrides), config, digest)
    else:
        same = (*first.same_as, variant.name)
        resolved[digest] = ResolvedVariant(first.name, first.overrides, first.config, digest, same)


def _refusal_lines(refusals: Mapping[tuple[str, str], list[str]]) -> list[str]:
    lines = []
    for (blamed, message), names in refusals.items():
        shown = ", ".join(repr(n) for n in names[:3])
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        label = "variant" if len(names) == 1 else "variants"
        lines.append(f"{blamed} refused in {label} {shown}{more}: {message}")
    return lines


def _problem_report(lines: Sequence[str]) -> str:
    shown = list(lines[:MAX_PROBLEMS_SHOWN])
    if len(lines) > MAX_PROBLEMS_SHOWN:
        shown.append(f"... and {len(lines) - MAX_PROBLEMS_SHOWN} more")
    return "sweep space refused before any backtest ran:\n  " + "\n  ".join(shown)


# -- walk-forward folds ----------------------------------------------------------------


class FoldScheme(StrEnum):
    ANCHORED = "anchored"  # every train window starts at the range start and grows
    ROLLING = "rolling"  # every train window has the same length, just before its test


@dataclass(frozen=True, slots=True)
class Fold:
    """One walk-forward fold: pick parameters on [train_start, train_end), score on the test."""

    index: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime


def walk_forward_folds(
    start: datetime,
    end: datetime,
    *,
    folds: int,
    test: timedelta,
    train: timedelta,
    scheme: FoldScheme = FoldScheme.ROLLING,
) -> tuple[Fold, ...]:
    """Folds over [start, end): `folds` back-to-back test windows of length `test`, the
    last ending at `end`; each train window ends where its test window starts.

    rolling: every train window is exactly `train` long (data before the first one is
    unused); anchored: every train window starts at `start`, and `train` is the least
    the first fold may have. Refuses naive datetimes, end <= start, folds < 1,
    non-positive lengths, and a range shorter than train + folds x test.
    """
    _check_fold_inputs(start, end, folds, test, train)
    first_test = end - folds * test
    if first_test - train < start:
        raise ConfigError(
            f"walk-forward needs train + folds x test = {_span(train)} + {folds} x {_span(test)}"
            f" = {_span(train + folds * test)}, but [{start.isoformat()}, {end.isoformat()}) "
            f"spans {_span(end - start)}: lower folds, test or train, or widen the range"
        )
    out = []
    for k in range(folds):
        test_start = first_test + k * test
        train_start = start if scheme is FoldScheme.ANCHORED else test_start - train
        out.append(Fold(k, train_start, test_start, test_start, test_start + test))
    return tuple(out)


def _check_fold_inputs(
    start: datetime, end: datetime, folds: int, test: timedelta, train: timedelta
) -> None:
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() != timedelta(0):
            raise ConfigError(f"walk-forward {name} {value!r} must be a timezone-aware UTC time")
    if end <= start:
        raise ConfigError(f"walk-forward range is empty: end {end} is not after start {start}")
    if folds < 1:
        raise ConfigError(f"walk-forward folds must be >= 1, got {folds}")
    if test <= timedelta(0) or train <= timedelta(0):
        raise ConfigError(
            f"walk-forward test ({_span(test)}) and train ({_span(train)}) must be positive"
        )


def _span(length: timedelta) -> str:
    """A duration as an operator writes it: 60d, 36h, else seconds."""
    seconds = length.total_seconds()
    for unit, size in (("d", 86_400), ("h", 3_600)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
