"""prefect.yaml and the served deployments agree, and every entrypoint loads."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.flows import Flow, load_flow_from_entrypoint

from flows.deployments import service_deployments

REPO = Path(__file__).resolve().parents[2]


def declared() -> dict[str, dict]:
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    return {d["name"]: d for d in spec["deployments"]}


def test_every_declared_entrypoint_is_a_flow(monkeypatch):
    monkeypatch.chdir(REPO)
    for deployment in declared().values():
        assert isinstance(load_flow_from_entrypoint(deployment["entrypoint"]), Flow)


def test_cycle_runs_every_60_seconds_and_never_overlaps():
    cycle = declared()["cycle"]
    assert cycle["schedules"] == [{"interval": 60}]
    assert cycle["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert "cron" in declared()["hourly-backfill"]["schedules"][0]


def test_served_deployments_match_the_declared_ones():
    served = {d.name: d for d in service_deployments(60, {"config_dir": "configs"})}
    assert set(served) == set(declared())
    assert served["cycle"].concurrency_options.collision_strategy == "CANCEL_NEW"
    assert served["cycle"].concurrency_limit == 1
