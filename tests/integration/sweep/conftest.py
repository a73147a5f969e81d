"""The small sweep run once on a LocalCluster and shared by the sweep tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.sweeps import SWEEP_YAML, run


@pytest.fixture(scope="session")
def sweep_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "small.yaml"
    path.write_text(SWEEP_YAML)
    return path


@pytest.fixture(scope="session")
def local_sweep(prefect_server, sweep_file, real_data_dir, tmp_path_factory):
    """The small sweep on a LocalCluster of 2 worker processes: (outcome, db)."""
    db = tmp_path_factory.mktemp("local") / "sweeps.duckdb"
    outcome = run(sweep_file, real_data_dir, db, workers=2)
    return outcome, db
