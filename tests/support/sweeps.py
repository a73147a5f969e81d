"""Helpers of the sweep tests: the small real-data sweep file (2 markets, 7 days, 2 variants,
2 rolling folds: 8 backtests), a `dask scheduler` + `dask worker` processes on loopback from
the venv's bin, and the stored results without their durations."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.sweep_objective import WindowResult

BIN = Path(sys.executable).parent
SWEEP_YAML = """
variants:
  - name: baseline
    overrides: {}
  - name: momentum
    overrides: {strategy.momentum: true}
window: {from: 2025-09-01, to: 2025-09-08}
walk_forward: {folds: 2, train_days: 3, test_days: 2, scheme: rolling}
markets: [BTC, ETH]
objective: expectancy
min_trades: 0
"""
JOBS = 8  # 2 variants x (2 train + 2 test windows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_url() -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url).rstrip("/")


class DaskCluster:
    """`dask scheduler` + N `dask worker` (no nanny: a killed worker stays dead)."""

    def __init__(self, workers: int, log_dir: Path) -> None:
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        env = {**os.environ, "PREFECT_API_URL": api_url()}
        self.log = (log_dir / "dask.log").open("w")
        self.scheduler = subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"], env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.workers = [
            subprocess.Popen(
                [str(BIN / "dask"), "worker", self.address, "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--name", f"w{i}"],
                env=env, stdout=self.log, stderr=subprocess.STDOUT,
            )
            for i in range(workers)
        ]
        self._wait(workers)

    def _wait(self, workers: int) -> None:
        from distributed import Client

        deadline = time.monotonic() + 60
        with Client(self.address, timeout=30) as client:
            while len(client.scheduler_info()["workers"]) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dask workers did not register at {self.address}")
                time.sleep(0.2)

    def kill_worker(self, index: int) -> None:
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait(10)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.log.close()


def run(sweep_file: Path, data_dir: Path, db: Path, **options):
    from flows.sweep import run_sweep

    return run_sweep(
        space_file=str(sweep_file), data_dir=str(data_dir), db=str(db), **options
    )


def stored(db: Path) -> list[tuple]:
    """Every sweep_results row's key and result (durations dropped: they differ by run)."""
    import json

    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT config_hash, window_start, window_end, code_version, result "
            "FROM sweep_results ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    out = []
    for digest, start, end, code, text in rows:
        result = json.loads(text)
        result.pop("duration_s")
        out.append((digest, start, end, code, json.dumps(result, sort_keys=True)))
    return out


T0 = datetime(2025, 1, 1, tzinfo=UTC)


def window(digest: str, day: int, pnl: tuple[float, ...], daily: tuple[float, ...],
           dd: float = 0.0, days: float = 2.0) -> WindowResult:
    start = T0 + timedelta(days=day)
    return WindowResult(
        config_hash=digest, start=start, end=start + timedelta(days=days) - timedelta(hours=1),
        trades=len(pnl), pnl=pnl, r=tuple(p / 10 for p in pnl), daily=daily, span_days=days,
        initial_equity=1000.0, final_equity=1000.0 * math.prod(1 + d for d in daily),
        max_drawdown_pct=dd, sharpe=None, calmar=None, trades_per_month=None,
        expectancy_usd=None, market_bars=48, duration_s=0.1, digest="x",
    )
