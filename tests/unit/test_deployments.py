"""prefect.yaml and the served deployments agree, never share a name, and every entrypoint
loads; the work-pool pull step refuses a missing SMC_TRADER_HOME."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from prefect.flows import Flow, load_flow_from_entrypoint

from core.errors import ConfigError
from flows.deployments import service_deployments
from store.backtests import BACKTEST_DB
from trader.workpool import enter_home

POOL_SUFFIX = "-pool"
# Research, declared for the work pool only: `trader run` serves one run at a time (the
# store's one writer), so a long backtest or sweep there would hold back the cycles.
POOL_ONLY = {"backtest-pool", "sweep-pool"}

REPO = Path(__file__).resolve().parents[2]


def declared() -> dict[str, dict]:
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    return {d["name"]: d for d in spec["deployments"]}


def test_every_declared_entrypoint_is_a_flow(monkeypatch):
    monkeypatch.chdir(REPO)
    for deployment in declared().values():
        assert isinstance(load_flow_from_entrypoint(deployment["entrypoint"]), Flow)


def test_cycle_runs_every_60_seconds_and_never_overlaps():
    cycle = declared()["cycle-pool"]
    assert cycle["schedules"] == [{"interval": 60}]
    assert cycle["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert "cron" in declared()["hourly-backfill-pool"]["schedules"][0]


def test_served_deployments_match_the_declared_ones_under_other_names():
    served = {d.name: d for d in service_deployments(60, {"config_dir": "configs"})}
    # `prefect deploy --all` must not replace what `trader run` serves (issue 12).
    assert not set(served) & set(declared())
    assert {f"{name}{POOL_SUFFIX}" for name in served} == set(declared()) - POOL_ONLY
    for name, deployment in served.items():
        assert deployment.entrypoint.endswith(declared()[f"{name}{POOL_SUFFIX}"]["entrypoint"])
    assert served["cycle"].concurrency_options.collision_strategy == "CANCEL_NEW"
    assert served["cycle"].concurrency_limit == 1


def test_the_pool_pull_step_refuses_a_missing_or_wrong_home(monkeypatch, tmp_path):
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert spec["pull"] == [{"trader.workpool.enter_home": {}}]
    monkeypatch.delenv("SMC_TRADER_HOME", raising=False)
    with pytest.raises(ConfigError, match="SMC_TRADER_HOME is not set"):
        enter_home()
    monkeypatch.setenv("SMC_TRADER_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="is not an smc-trader checkout"):
        enter_home()
    monkeypatch.setenv("SMC_TRADER_HOME", str(REPO))
    monkeypatch.chdir(tmp_path)
    assert enter_home() == {"directory": str(REPO)}
    assert Path.cwd() == REPO


def test_research_deployments_are_unscheduled_and_never_write_the_trading_store():
    for name in POOL_ONLY:
        deployment = declared()[name]
        assert not deployment.get("schedules")
        assert "research" in deployment["tags"]
        flow = load_flow_from_entrypoint(str(REPO / deployment["entrypoint"]))
        db_default = Path(inspect.signature(flow.fn).parameters["db"].default)
        assert db_default != Path("data/trading.duckdb")
    backtest = load_flow_from_entrypoint(str(REPO / declared()["backtest-pool"]["entrypoint"]))
    assert Path(inspect.signature(backtest.fn).parameters["db"].default) == BACKTEST_DB


def test_the_sweep_deployment_is_unscheduled_and_names_a_shipped_sweep_file():
    sweep = declared()["sweep-pool"]
    assert "schedules" not in sweep
    assert (REPO / sweep["parameters"]["space_file"]).is_file()
