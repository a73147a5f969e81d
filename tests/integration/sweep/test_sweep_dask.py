"""The sweep flow on Dask over the real data: a LocalCluster and a scheduler + workers by
address give identical results; a worker killed mid-sweep loses nothing and stores nothing
twice; a rerun evaluates nothing; a stored result is the configuration's own backtest."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pytest

from core.sweep_objective import WindowResult, summarize
from schemas.config import AppConfig
from tests.support.sweeps import JOBS, DaskCluster, run, stored

pytestmark = [pytest.mark.integration, pytest.mark.realdata]


def test_a_local_cluster_sweep_stores_every_window_once_and_reports_both_samples(local_sweep):
    outcome, db = local_sweep
    assert (outcome.evaluated, outcome.reused, outcome.errors) == (JOBS, 0, {})
    rows = stored(db)
    assert len(rows) == JOBS == len({r[:4] for r in rows})
    con = duckdb.connect(str(db), read_only=True)
    status, evaluated = con.execute("SELECT status, evaluated FROM sweep_runs").fetchone()
    con.close()
    assert (status, evaluated) == ("COMPLETE", JOBS)
    report = outcome.report
    assert [v.name for v in report.variants] == ["baseline", "momentum"]
    assert all(v.out_of_sample is not None for v in report.variants)
    assert "IS" in outcome.text and "OOS" in outcome.text and "VERDICT" in outcome.text


def test_a_rerun_evaluates_nothing_and_reports_the_same(local_sweep, sweep_file, real_data_dir):
    outcome, db = local_sweep
    again = run(sweep_file, real_data_dir, db, workers=1)
    assert (again.evaluated, again.reused, again.stored) == (0, JOBS, 0)
    assert len(stored(db)) == JOBS
    assert again.report.variants == outcome.report.variants


def test_a_stored_result_is_the_configuration_run_alone_through_trader_backtest(
    local_sweep, real_data_dir, tmp_path
):
    from flows.backtest import run_pipeline
    from tasks.backtest import BacktestRequest

    _, db = local_sweep
    con = duckdb.connect(str(db), read_only=True)
    config, text = con.execute(
        "SELECT config, result FROM sweep_results "
        "ORDER BY trades DESC, config_hash, window_start LIMIT 1"
    ).fetchone()
    con.close()
    swept = WindowResult.from_json(json.loads(text))
    assert swept.trades > 0, "pick a window with trades so the comparison means something"
    request = BacktestRequest(
        data_dir=real_data_dir, config=AppConfig.model_validate(json.loads(config)),
        start=swept.start, end=swept.end, markets=("BTC", "ETH"),
    )
    alone = run_pipeline(request, tmp_path / "backtest.duckdb")
    mine = summarize(alone, swept.config_hash, len(alone.run.markets))
    assert mine.digest == swept.digest
    assert (mine.trades, mine.pnl, mine.daily, mine.final_equity) == (
        swept.trades, swept.pnl, swept.daily, swept.final_equity
    )
    assert isinstance(swept.start, datetime)


@pytest.fixture(scope="module")
def address_cluster(prefect_server, tmp_path_factory):
    """A scheduler and two workers on loopback, shared: the kill test (last) ends one."""
    cluster = DaskCluster(2, tmp_path_factory.mktemp("dask"))
    yield cluster
    cluster.close()


def test_a_cluster_by_address_gives_identical_results(
    local_sweep, address_cluster, sweep_file, real_data_dir, tmp_path
):
    outcome = run(sweep_file, real_data_dir, tmp_path / "by_address.duckdb",
                  dask_address=address_cluster.address)
    assert (outcome.evaluated, outcome.errors) == (JOBS, {})
    assert stored(tmp_path / "by_address.duckdb") == stored(local_sweep[1])


def test_a_worker_killed_mid_sweep_loses_nothing_and_stores_nothing_twice(
    local_sweep, address_cluster, sweep_file, real_data_dir, tmp_path
):
    import flows.sweep

    cluster = address_cluster
    killed = []

    def kill_after_first_batch(done: int, total: int) -> None:
        if done >= 1 and not killed:
            cluster.kill_worker(0)  # it is busy with another batch by now
            killed.append(done)

    db = tmp_path / "killed.duckdb"
    try:
        flows.sweep._progress[:] = [kill_after_first_batch]
        outcome = flows.sweep.sweep(
            space_file=str(sweep_file), data_dir=str(real_data_dir), db=str(db),
            dask_address=cluster.address, batch=1,
        )
    finally:
        flows.sweep._progress.clear()
    assert cluster.workers[0].poll() is not None  # dead for good (no nanny)
    assert killed and killed[0] < JOBS
    assert outcome.errors == {}
    rows = stored(db)
    assert len(rows) == JOBS == len({r[:4] for r in rows})
    assert rows == stored(local_sweep[1])
