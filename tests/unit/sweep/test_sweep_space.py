"""The sweep space: parsing, overrides on the config model, whole-space proof, hashes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.sweep_space import (
    Choice,
    Range,
    SearchKind,
    SearchSpace,
    apply_overrides,
    config_hash,
    expand_space,
    resolve_space,
    resolve_variant,
)
from schemas.config import AppConfig, Tier

REPO = Path(__file__).resolve().parents[3]
BASE = AppConfig()

RELAXATIONS = {
    "strategy.ote_tolerance": 0.05,
    "strategy.allow_1h_structure": True,
    "strategy.momentum": True,
    "strategy.widen_tight_smc": True,
}


def space(**raw) -> SearchSpace:
    return SearchSpace.from_mapping(raw)


def refusal(raw: dict, base: AppConfig = BASE) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve_space(SearchSpace.from_mapping(raw), base)
    return str(caught.value)


# -- parsing -------------------------------------------------------------------------


def test_a_space_parses_lists_ranges_and_named_variants():
    s = space(
        search="random",
        samples=4,
        seed=9,
        parameters={
            "strategy.ote_tolerance": [0, 0.02, 0.05],
            "strategy.atr_stop_buffer": {"low": 0.3, "high": 1.0},
            "strategy.swing_length": {"low": 2, "high": 8, "log": True},
        },
        variants=[
            {"name": "baseline"},
            {"name": "ote", "overrides": {"strategy.ote_tolerance": 0.1}},
        ],
    )
    assert s.search is SearchKind.RANDOM and (s.samples, s.seed) == (4, 9)
    assert s.parameters["strategy.ote_tolerance"] == Choice((0, 0.02, 0.05))
    assert s.parameters["strategy.atr_stop_buffer"] == Range(0.3, 1.0, log=False)
    assert s.parameters["strategy.swing_length"] == Range(2.0, 8.0, log=True)
    assert [v.name for v in s.variants] == ["baseline", "ote"]
    assert s.variants[0].overrides == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"parameter": {}}, "unknown keys ['parameter']"),
        ({"search": "optuna", "variants": [{"name": "a"}]}, "search 'optuna' unknown"),
        ({}, "space is empty"),
        ({"parameters": {"strategy.ote_tolerance": []}}, "list of values is empty"),
        ({"parameters": {"strategy.ote_tolerance": 0.02}}, "give a list of values"),
        ({"parameters": {"strategy.ote_tolerance": {"low": 0, "high": 1}}}, "needs search: random"),
        ({"search": "random", "parameters": {"strategy.momentum": [True]}}, "needs samples >= 1"),
        ({"samples": 3, "parameters": {"strategy.momentum": [True]}}, "samples applies to"),
        (
            {"search": "random", "samples": 2, "parameters": {"strategy.x": {"low": 1, "high": 1}}},
            "low (1) must be < high (1)",
        ),
        (
            {"search": "random", "samples": 2, "parameters": {"s.x": {"low": "1e-3", "high": 1}}},
            "write 1.0e-3",
        ),
        (
            {
                "search": "random",
                "samples": 2,
                "parameters": {"s.x": {"low": 0, "high": 1, "log": True}},
            },
            "log range needs low > 0",
        ),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "name 'a' is empty or used twice"),
        ({"variants": [{"overrides": {}}]}, "variant #1: give {name, overrides}"),
    ],
)
def test_a_malformed_space_is_refused_naming_the_entry(raw, message):
    with pytest.raises(ConfigError) as caught:
        SearchSpace.from_mapping(raw)
    assert message in str(caught.value)


# -- apply_overrides -------------------------------------------------------------------


def test_overrides_set_nested_keys_and_keep_everything_else():
    assert (
        apply_overrides(BASE, {}) == BASE
    )  # an empty override is the base itself (dump/validate round trip)
    changed = apply_overrides(
        BASE, {"strategy.ote_tolerance": 0.05, "safety.kill_switch_flatten": True}
    )
    assert changed.strategy.ote_tolerance == 0.05
    assert changed.safety.kill_switch_flatten is True
    assert changed.strategy.model_copy(update={"ote_tolerance": 0.0}) == BASE.strategy
    assert changed.risk == BASE.risk and changed.markets == BASE.markets


def test_overrides_build_on_a_non_default_base():
    base = apply_overrides(BASE, {"strategy.swing_length": 7})
    variant = apply_overrides(base, {"strategy.momentum": True})
    assert variant.strategy.swing_length == 7 and variant.strategy.momentum is True


def test_a_mapping_override_merges_into_its_section():
    changed = apply_overrides(BASE, {"markets.tiers": {"A": {"max_spread_bps": 4}}})
    assert changed.markets.tiers[Tier.A].max_spread_bps == 4
    assert changed.markets.tiers[Tier.A].min_volume_24h_usd == 50_000_000  # kept from the base
    assert changed.markets.tiers[Tier.B] == BASE.markets.tiers[Tier.B]


def test_an_unknown_name_is_refused_with_the_closest_real_ones():
    with pytest.raises(ConfigError) as caught:
        apply_overrides(BASE, {"strategy.ote_tolerence": 0.02})
    assert "unknown parameter 'strategy.ote_tolerence'" in str(caught.value)
    assert "did you mean strategy.ote_tolerance" in str(caught.value)
    with pytest.raises(ConfigError, match=re.escape("did you mean strategy.ote_tolerance")):
        apply_overrides(BASE, {"ote_tolerance": 0.02})  # the section left out
    with pytest.raises(ConfigError, match=re.escape("unknown parameter 'strategy.momentum.on'")):
        apply_overrides(BASE, {"strategy.momentum.on": True})  # below a value


def test_a_value_the_model_refuses_gives_pydantics_message_on_one_line():
    with pytest.raises(ConfigError) as caught:
        apply_overrides(BASE, {"strategy.ote_tolerance": 0.5})
    message = str(caught.value)
    assert message == "strategy.ote_tolerance = 0.5: Input should be less than or equal to 0.3"


def test_an_inverted_safety_relation_is_refused_naming_both_parameters():
    with pytest.raises(ConfigError) as caught:
        apply_overrides(BASE, {"safety.max_margin_utilization_pct": 0.85})
    message = str(caught.value)
    assert message.startswith("safety.max_margin_utilization_pct = 0.85: ")
    assert "auction_max_margin_util (0.9) must be < max_margin_utilization_pct (0.85)" in message
    assert "\n" not in message


# -- the whole space ------------------------------------------------------------------


def test_the_relaxations_alone_and_combined_plus_the_baseline():
    variants = [{"name": "baseline"}]
    variants += [{"name": k.split(".")[1], "overrides": {k: v}} for k, v in RELAXATIONS.items()]
    variants += [{"name": "all", "overrides": RELAXATIONS}]
    resolved = resolve_space(space(variants=variants), BASE)
    names = [v.name for v in resolved]
    assert names == [
        "baseline",
        "ote_tolerance",
        "allow_1h_structure",
        "momentum",
        "widen_tight_smc",
        "all",
    ]
    assert len({v.config_hash for v in resolved}) == 6
    by_name = {v.name: v.config for v in resolved}
    assert by_name["baseline"] == BASE
    assert by_name["momentum"].strategy.momentum is True
    assert by_name["momentum"].strategy.allow_1h_structure is False
    combined = by_name["all"].strategy
    assert (
        combined.ote_tolerance,
        combined.allow_1h_structure,
        combined.momentum,
        combined.widen_tight_smc,
    ) == (0.05, True, True, True)


def test_a_grid_is_the_cartesian_product_and_a_repeat_of_the_baseline_folds_into_it():
    s = space(
        parameters={
            "strategy.ote_tolerance": [0, 0.02, 0.05],
            "strategy.allow_1h_structure": [False, True],
        },
        variants=[{"name": "baseline"}],
    )
    expanded = expand_space(s, BASE)
    assert [v.name for v in expanded] == [
        "baseline",
        "ote_tolerance=0,allow_1h_structure=false",
        "ote_tolerance=0,allow_1h_structure=true",
        "ote_tolerance=0.02,allow_1h_structure=false",
        "ote_tolerance=0.02,allow_1h_structure=true",
        "ote_tolerance=0.05,allow_1h_structure=false",
        "ote_tolerance=0.05,allow_1h_structure=true",
    ]
    resolved = resolve_space(s, BASE)
    assert len(resolved) == 6  # 0 and false are the defaults: the same config as the baseline
    assert resolved[0].name == "baseline"
    assert resolved[0].same_as == ("ote_tolerance=0,allow_1h_structure=false",)


def test_random_samples_are_seeded_typed_and_inside_their_domains():
    raw = {
        "search": "random",
        "samples": 30,
        "seed": 5,
        "parameters": {
            "strategy.atr_stop_buffer": {"low": 0.3, "high": 1.0},
            "strategy.swing_length": {"low": 2, "high": 8},
            "strategy.min_reward_risk": {"low": 0.5, "high": 4.0, "log": True},
            "strategy.momentum": [False, True],
        },
    }
    first = expand_space(SearchSpace.from_mapping(raw), BASE)
    again = expand_space(SearchSpace.from_mapping(raw), BASE)
    reordered = {**raw, "parameters": dict(reversed(list(raw["parameters"].items())))}
    assert first == again == expand_space(SearchSpace.from_mapping(reordered), BASE)
    assert first != expand_space(SearchSpace.from_mapping({**raw, "seed": 6}), BASE)
    assert [v.name for v in first[:2]] == ["random-01", "random-02"]
    for v in first:
        o = v.overrides
        assert (
            isinstance(o["strategy.atr_stop_buffer"], float)
            and 0.3 <= o["strategy.atr_stop_buffer"] <= 1.0
        )
        assert type(o["strategy.swing_length"]) is int and 2 <= o["strategy.swing_length"] <= 8
        assert 0.5 <= o["strategy.min_reward_risk"] <= 4.0
        assert o["strategy.momentum"] in (False, True)
    assert {v.overrides["strategy.swing_length"] for v in first} >= {2, 8}  # both ends reachable
    assert len(resolve_space(SearchSpace.from_mapping(raw), BASE)) == 30


def test_a_range_on_a_non_numeric_parameter_is_refused():
    raw = {
        "search": "random",
        "samples": 2,
        "parameters": {"strategy.momentum": {"low": 0, "high": 1}},
    }
    assert "a range needs a numeric parameter" in refusal(raw)


def test_unknown_names_are_refused_before_anything_naming_where_they_appear():
    message = refusal(
        {
            "parameters": {"strategy.ote_tol": [0, 0.02]},
            "variants": [{"name": "tight", "overrides": {"safety.max_margin": 0.8}}],
        }
    )
    assert message.startswith("sweep space refused before any backtest ran:")
    assert "unknown parameter 'strategy.ote_tol'; did you mean strategy.ote_tolerance" in message
    assert "(in parameters)" in message
    assert "unknown parameter 'safety.max_margin'" in message
    assert "safety.max_margin_utilization_pct" in message and "(in variant 'tight')" in message


def test_a_refused_grid_value_is_named_once_with_the_variants_it_spoils():
    message = refusal(
        {
            "parameters": {
                "strategy.ote_tolerance": [0.02, 0.5],
                "strategy.swing_length": [3, 5, 7, 9],
            }
        }
    )
    lines = message.splitlines()[1:]
    assert len(lines) == 1
    assert lines[0].strip() == (
        "strategy.ote_tolerance = 0.5 refused in variants 'ote_tolerance=0.5,swing_length=3', "
        "'ote_tolerance=0.5,swing_length=5', 'ote_tolerance=0.5,swing_length=7' and 1 more: "
        "Input should be less than or equal to 0.3"
    )


def test_an_inverted_safety_relation_inside_a_variant_names_the_variant_and_parameter():
    message = refusal(
        {
            "variants": [
                {"name": "baseline"},
                {
                    "name": "tight",
                    "overrides": {
                        "safety.max_margin_utilization_pct": 0.85,
                        "strategy.momentum": True,
                    },
                },
            ]
        }
    )
    assert "safety.max_margin_utilization_pct = 0.85 refused in variant 'tight'" in message
    assert "auction_max_margin_util (0.9) must be < max_margin_utilization_pct (0.85)" in message
    assert "strategy.momentum" not in message  # the unrelated override is not blamed


def test_a_cross_field_strategy_relation_blames_the_override_that_breaks_it():
    message = refusal({"variants": [{"name": "deep", "overrides": {"strategy.ote_min": 0.8}}]})
    assert (
        "strategy.ote_min = 0.8 refused in variant 'deep': ote_min (0.8) must be < ote_max"
        in message
    )


def test_an_oversized_space_is_refused():
    raw = {
        "parameters": {
            "strategy.swing_length": list(range(1, 21)),
            "strategy.atr_period": list(range(2, 12)),
        }
    }
    with pytest.raises(ConfigError, match="200 variants, more than 100"):
        resolve_space(SearchSpace.from_mapping(raw), BASE, max_variants=100)


def test_one_variant_resolves_like_a_space():
    trial = resolve_variant(BASE, "trial-7", {"strategy.ote_tolerance": 0.1})
    assert trial.config.strategy.ote_tolerance == 0.1
    assert trial.config_hash == config_hash(trial.config)
    with pytest.raises(
        ConfigError, match=re.escape("sweep variant 'trial-8': strategy.ote_tolerance = 1")
    ):
        resolve_variant(BASE, "trial-8", {"strategy.ote_tolerance": 1})


# -- config hash -----------------------------------------------------------------------


def test_the_hash_is_of_the_effective_config_not_of_how_it_was_written():
    a = apply_overrides(BASE, {"strategy.ote_tolerance": 0, "strategy.momentum": True})
    b = apply_overrides(BASE, {"strategy.momentum": True, "strategy.ote_tolerance": 0.0})
    c = AppConfig(strategy=BASE.strategy.model_copy(update={"momentum": True}))
    assert config_hash(a) == config_hash(b) == config_hash(c)
    assert config_hash(a) != config_hash(BASE)
    assert config_hash(apply_overrides(BASE, {"strategy.ote_tolerance": 0.02})) != config_hash(
        apply_overrides(BASE, {"strategy.ote_tolerance": 0.05})
    )


def test_the_hash_is_sha256_of_sorted_compact_json_as_documented():
    # the documented definition (docs/METRICS.md), so a stored key can be recomputed elsewhere
    text = json.dumps(BASE.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    digest = config_hash(BASE)
    assert digest == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert len(digest) == 16 and all(ch in "0123456789abcdef" for ch in digest)


def test_the_hash_is_the_same_in_another_process():
    code = (
        "from core.sweep_space import apply_overrides, config_hash;"
        "from schemas.config import AppConfig;"
        "print(config_hash(apply_overrides(AppConfig(), {'strategy.ote_tolerance': 0.02})))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == config_hash(
        apply_overrides(BASE, {"strategy.ote_tolerance": 0.02})
    )
