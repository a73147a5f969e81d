"""Configuration: one default per parameter, safety relations proven at load, clear refusals."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from schemas.config import AppConfig, SafetyConfig
from tasks.settings import load_config
from trader.cli import main

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, config: dict | None = None, safety: dict | None = None) -> Path:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config or {}))
    (tmp_path / "safety.yaml").write_text(yaml.safe_dump(safety or {}))
    return tmp_path


def test_shipped_configuration_loads_with_the_spec_thresholds():
    config = load_config(REPO / "configs")
    s = config.safety
    assert (
        s.max_margin_utilization_pct,
        s.degraded_margin_utilization_pct,
        s.max_single_position_pct_equity,
        s.max_equity_drawdown_pct,
        s.degraded_equity_drawdown_pct,
        s.max_concurrent_positions,
        s.auction_max_margin_util,
    ) == (0.92, 0.85, 0.25, 0.15, 0.10, 10, 0.90)


@pytest.mark.parametrize(
    ("safety", "names"),
    [
        # The seed's outage: halt 0.85 below the auction's 0.90.
        (
            {"max_margin_utilization_pct": 0.85, "degraded_margin_utilization_pct": 0.80},
            ("auction_max_margin_util (0.9)", "max_margin_utilization_pct (0.85)"),
        ),
        (
            {"degraded_margin_utilization_pct": 0.91},
            ("degraded_margin_utilization_pct (0.91)", "auction_max_margin_util (0.9)"),
        ),
        (
            {"degraded_margin_utilization_pct": 0.80, "auction_max_margin_util": 0.92},
            ("auction_max_margin_util (0.92)", "max_margin_utilization_pct (0.92)"),
        ),
        (
            {"degraded_equity_drawdown_pct": 0.15},
            ("degraded_equity_drawdown_pct (0.15)", "max_equity_drawdown_pct (0.15)"),
        ),
        (
            {"degraded_equity_drawdown_pct": 0.2},
            ("degraded_equity_drawdown_pct (0.2)", "max_equity_drawdown_pct (0.15)"),
        ),
    ],
)
def test_every_threshold_relation_violation_is_refused_naming_both_parameters(
    tmp_path, safety, names
):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, safety=safety))
    message = str(err.value)
    assert "safety.yaml" in message
    for name in names:
        assert name in message


def test_a_halt_level_at_or_above_one_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="max_margin_utilization_pct"):
        load_config(write(tmp_path, safety={"max_margin_utilization_pct": 1.0}))


def test_unknown_key_is_refused_with_its_location(tmp_path):
    with pytest.raises(ConfigError, match=r"markets\.candidate_symbol"):
        load_config(write(tmp_path, config={"markets": {"candidate_symbol": ["BTC"]}}))


def test_wrong_type_is_refused_with_the_value(tmp_path):
    with pytest.raises(ConfigError, match=r"interval_seconds.*'soon'"):
        load_config(write(tmp_path, config={"cycle": {"interval_seconds": "soon"}}))


def test_safety_section_inside_config_yaml_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"belong in safety\.yaml"):
        load_config(write(tmp_path, config={"safety": {"max_concurrent_positions": 3}}))


def test_broken_yaml_and_missing_folder_are_refused(tmp_path):
    (tmp_path / "config.yaml").write_text("venue: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nowhere")


def test_deprecated_liquidity_tiers_is_normalised_with_a_warning_not_rejected(tmp_path, caplog):
    legacy = {"markets": {"liquidity_tiers": {"A": ["BTC", "ETH"], "B": ["XRP"], "C": ["OP"]}}}
    with caplog.at_level(logging.WARNING, logger="smc_trader.config"):
        config = load_config(write(tmp_path, config=legacy))
    assert config.markets.candidate_symbols == ("BTC", "ETH", "XRP", "OP")
    assert "liquidity_tiers is deprecated" in caplog.text


def test_yaml_overrides_the_model_default(tmp_path):
    config = load_config(write(tmp_path, safety={"max_concurrent_positions": 4}))
    assert config.safety.max_concurrent_positions == 4
    assert AppConfig().safety.max_concurrent_positions == 10


def _leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out |= _leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_shipped_yaml_never_restates_a_model_default():
    """One default per parameter: a shipped override equal to the default is a second copy."""
    defaults = _leaves(AppConfig().model_dump(mode="json"))
    shipped = _leaves(yaml.safe_load((REPO / "configs/config.yaml").read_text()) or {})
    shipped |= {
        f"safety.{k}": v
        for k, v in _leaves(
            yaml.safe_load((REPO / "configs/safety.yaml").read_text()) or {}
        ).items()
    }
    restated = [k for k, v in shipped.items() if defaults.get(k) == v]
    assert restated == []


def test_config_models_are_frozen():
    with pytest.raises(ValueError, match="frozen"):
        SafetyConfig().max_concurrent_positions = 3  # type: ignore[misc]


def test_check_config_exit_codes(tmp_path, capsys):
    assert main(["check-config", "--config", str(REPO / "configs")]) == 0
    assert "max_margin_utilization_pct: 0.92" in capsys.readouterr().out
    bad = write(tmp_path, safety={"max_margin_utilization_pct": 0.85})
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "auction_max_margin_util" in capsys.readouterr().err


def test_parameter_reference_document_is_generated_from_the_models():
    from trader.reference import parameter_table

    assert (REPO / "docs/CONFIG.md").read_text() == parameter_table(), (
        "docs/CONFIG.md is stale: run `make reference`"
    )


def test_the_shipped_configuration_loads_at_least_the_history_every_cycle_reads():
    config = load_config(REPO / "configs")
    for tf in config.ohlcv.timeframes:
        assert config.ohlcv.history_bars[tf] >= config.strategy.window_bars(tf)
    assert config.ohlcv.history_bars["1d"] >= config.strategy.bias_window_bars == 1200


@pytest.mark.parametrize(
    ("config", "names"),
    [
        # The old default: a new market loaded 400 days while the EMA reads 1200.
        (
            {"ohlcv": {"history_bars": {"1d": 400}}},
            ("ohlcv.history_bars['1d'] (400)", "strategy.bias_window_bars (1200"),
        ),
        # A longer EMA without the history it needs.
        (
            {"strategy": {"ema_period": 250}},
            ("ohlcv.history_bars['1d'] (1200)", "strategy.bias_window_bars (1500"),
        ),
        (
            {"ohlcv": {"history_bars": {"4h": 599}}},
            ("ohlcv.history_bars['4h'] (599)", "strategy.incremental_window_bars (600)"),
        ),
    ],
)
def test_history_shorter_than_a_cycle_reads_is_refused_at_load_naming_both_parameters(
    tmp_path, config, names
):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, config=config))
    message = str(err.value)
    assert "config.yaml" in message and "day the bot started" in message
    for name in names:
        assert name in message


def test_overriding_one_timeframes_history_keeps_the_others_defaults(tmp_path):
    config = load_config(write(tmp_path, config={"ohlcv": {"history_bars": {"1d": 1500}}}))
    assert config.ohlcv.history_bars == {"1d": 1500, "4h": 600, "1h": 1000}
