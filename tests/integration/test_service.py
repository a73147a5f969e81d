"""The service (deploy/, issue 12): the systemd units parse, the command they run starts a
cycle and stops quietly on Ctrl-C, logrotate rotates without losing a line, a run a dead
service left Running no longer blocks every later cycle, and the work-pool path
(`prefect deploy --all` + `prefect worker start --pool smc-trader`) runs a cycle."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL
from prefect.states import Pending, Running

from flows.deployments import service_deployments
from store.publish import read_copy_of
from tasks.logs import setup_logging
from tests.support.configs import small_config
from trader.service_recovery import recover_unfinished_runs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
USER = os.environ.get("USER") or subprocess.run(
    ["id", "-un"], capture_output=True, text=True, check=True
).stdout.strip()


def install_home(tmp_path: Path) -> Path:
    """A checkout as deploy/install.sh expects one: the venv (linked), configs, logs/."""
    home = tmp_path / "smc-trader"
    home.mkdir()
    (home / ".venv").symlink_to(REPO / ".venv")
    small_config(home / "configs")
    (home / "logs").mkdir()
    return home


def render_units(home: Path, out: Path) -> Path:
    subprocess.run(
        [str(REPO / "deploy" / "install.sh"), "--render", str(out), "--home", str(home),
         "--user", USER],
        check=True,
    )
    return out


def unit_service_section(path: Path) -> dict[str, list[str]]:
    """The [Service] settings of a unit, each key with every value it is given."""
    settings: dict[str, list[str]] = {}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def service_env(unit: dict[str, list[str]], api_url: str) -> dict[str, str]:
    """The unit's environment, over this machine's without our variables, pointed at the
    session's Prefect server."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "SMC_TRADER_", "PYTEST"))}
    for assignment in unit.get("Environment", []):
        key, value = assignment.split("=", 1)
        env[key] = value
    env["PREFECT_API_URL"] = api_url
    return env


def test_the_units_parse_with_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here: the units were not verified")
    units = render_units(install_home(tmp_path), tmp_path / "units")
    services = sorted(units.glob("*.service"))
    assert [p.name for p in services] == [
        "smc-trader-prefect.service", "smc-trader-worker.service", "smc-trader.service"
    ]
    result = subprocess.run([analyze, "verify", *map(str, services)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for service in services:
        unit = unit_service_section(service)
        assert unit["Restart"] == ["on-failure"]
        assert unit["EnvironmentFile"] == [f"-{units.parent / 'smc-trader'}/.env.local"]
        assert all("/logs/" in v for v in unit["StandardOutput"])


def test_logrotate_rotates_the_trader_log_without_losing_a_line(tmp_path):
    logrotate = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin")
    if logrotate is None:
        pytest.skip("logrotate is not installed here: the rotation was not exercised")
    home = install_home(tmp_path)
    conf = render_units(home, tmp_path / "units") / "smc-trader.logrotate"
    log_file = home / "logs" / "trader.log"
    setup_logging("INFO", log_file)
    log = logging.getLogger("smc_trader.test")
    log.info("before the rotation")
    subprocess.run([logrotate, "-f", "-s", str(tmp_path / "state"), str(conf)], check=True)
    log.info("after the rotation")
    assert "before the rotation" in (home / "logs" / "trader.log.1").read_text()
    assert "after the rotation" in log_file.read_text()
    assert "before the rotation" not in log_file.read_text()


async def _run_deployment(name: str, parameters: dict | None = None):
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(name)
        return await client.create_flow_run_from_deployment(
            deployment.id, parameters=parameters or {}
        )


async def _has_deployment(name: str) -> bool:
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


async def _flow_run(run_id):
    async with get_client() as client:
        return await client.read_flow_run(run_id)


def wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited with {proc.returncode}")
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s")


def test_the_command_the_service_unit_runs_starts_a_cycle_and_stops_quietly_on_ctrl_c(
    prefect_server, tmp_path
):
    home = install_home(tmp_path)
    unit = unit_service_section(render_units(home, tmp_path / "units") / "smc-trader.service")
    (command,) = unit["ExecStart"]
    (workdir,) = unit["WorkingDirectory"]
    out = open(tmp_path / "service.out", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        command.split(), cwd=workdir, env=service_env(unit, PREFECT_API_URL.value()),
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    log = home / "logs" / "trader.log"
    try:
        wait_for(lambda: log.exists() and "serving trading-cycle" in log.read_text(), 90,
                 "trader run serving", proc)
        # "serving" is logged as the deployments are being registered: wait for them
        wait_for(lambda: asyncio.run(_has_deployment("trading-cycle/cycle")), 60,
                 "the cycle's deployment registered", proc)
        run = asyncio.run(_run_deployment("trading-cycle/cycle"))
        wait_for(lambda: " CYCLE_END " in log.read_text(), 120, "a served cycle", proc)
        wait_for(lambda: asyncio.run(_flow_run(run.id)).state.is_final(), 60,
                 "the cycle's run to finish", proc)
        assert asyncio.run(_flow_run(run.id)).state.is_completed()
        lines_before = len((tmp_path / "service.out").read_text().splitlines())
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()
    after = (tmp_path / "service.out").read_text().splitlines()[lines_before:]
    assert proc.returncode in (0, 130)
    assert not [line for line in after if "Traceback" in line or "Error" in line], after
    assert len(after) < 15, after
    assert (home / "data" / "trading.duckdb").exists()
    assert read_copy_of(home / "data" / "trading.duckdb").views_file.exists()


def test_a_run_a_dead_service_left_running_is_crashed_and_frees_the_cycle_slot(
    prefect_server,
):
    (cycle,) = [d for d in service_deployments(60, {}) if d.name == "cycle"]
    cycle.apply()

    async def stranded():
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("trading-cycle/cycle")
            run = await client.create_flow_run_from_deployment(deployment.id)
            await client.set_flow_run_state(run.id, Pending())
            await client.set_flow_run_state(run.id, Running())
            limit = await client.read_global_concurrency_limit_by_name(
                deployment.global_concurrency_limit.name
            )
            return run, limit.active_slots

    run, slots = asyncio.run(stranded())
    assert slots == 1  # what made every later cycle CANCELLED

    assert run.name in recover_unfinished_runs(["trading-cycle/cycle"])

    async def after():
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("trading-cycle/cycle")
            limit = await client.read_global_concurrency_limit_by_name(
                deployment.global_concurrency_limit.name
            )
            return await client.read_flow_run(run.id), limit.active_slots

    state, slots = asyncio.run(after())
    assert state.state.type is StateType.CRASHED and slots == 0


def test_the_work_pool_path_deploys_and_a_worker_runs_a_cycle(prefect_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SMC_TRADER_"))}
    env |= {
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "SMC_TRADER_HOME": str(REPO),
        "SMC_TRADER_LOG_FILE": str(tmp_path / "trader.log"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    prefect = str(Path(sys.executable).with_name("prefect"))
    subprocess.run([prefect, "work-pool", "create", "smc-trader", "--type", "process",
                    "--overwrite"], env=env, cwd=REPO, check=True, capture_output=True)
    deployed = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], env=env, cwd=REPO,
                              capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    db = tmp_path / "pool.duckdb"
    run = asyncio.run(_run_deployment(
        "trading-cycle/cycle-pool",
        {"db": str(db), "config_dir": str(small_config(tmp_path / "configs"))},
    ))
    worker = subprocess.run(
        [prefect, "worker", "start", "--pool", "smc-trader", "--run-once"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    final = asyncio.run(_flow_run(run.id))
    assert final.state.is_completed(), worker.stdout[-3000:] + worker.stderr[-3000:]
    assert final.name.startswith("cycle 1 · ")
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute(
            "SELECT count(*) FROM cycles WHERE finished_at IS NOT NULL"
        ).fetchall() == [(1,)]
    finally:
        con.close()
    assert "CYCLE_END cycle_id=1" in (tmp_path / "trader.log").read_text()
