"""Where the time of one 56-market sim cycle goes: Prefect start-up, orchestration, compute.

Not a test: it prints figures (and saves them to bench/results/cycle.txt).

1. compute: the flow's own wiring with every task replaced by its plain function
   (`task.fn`), so no Prefect engine runs at all;
2. orchestrated: the same cycles as flow runs against a running `prefect server`;
   orchestration = orchestrated - compute, cycle by cycle;
3. cold start: `trader cycle --cycles 1` as a fresh process with no server
   (Prefect starts a temporary one): start-up = process wall time - cycle time.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CYCLES = 6
PORT = int(os.environ.get("BENCH_PREFECT_PORT", "4291"))


def compute_only(db: Path) -> list[float]:
    import flows.cycle as cycle

    originals = {
        name: obj
        for name, obj in vars(cycle).items()
        if hasattr(obj, "fn") and obj.__class__.__name__ == "Task"
    }
    try:
        for name, task in originals.items():
            setattr(cycle, name, task.fn)
        times = []
        for _ in range(CYCLES):
            start = time.perf_counter()
            cycle.trading_cycle.fn(db=str(db))
            times.append(time.perf_counter() - start)
        return times
    finally:
        for name, task in originals.items():
            setattr(cycle, name, task)


def orchestrated(db: Path) -> list[float]:
    from flows.cycle import trading_cycle

    times = []
    for _ in range(CYCLES):
        start = time.perf_counter()
        trading_cycle(db=str(db))
        times.append(time.perf_counter() - start)
    return times


def wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"prefect server at {url} did not start")


def cold_start(db: Path) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "trader.cli", "cycle", "--db", str(db)],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - start
    match = re.search(r"CYCLE_END .* duration=([0-9.]+)s", out.stdout + out.stderr)
    return wall, float(match.group(1)) if match else float("nan")


def main() -> None:
    from tasks.logs import setup_logging

    work = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    os.environ["SMC_TRADER_LOG_FILE"] = str(work / "trader.log")
    setup_logging("WARNING")
    lines = [f"machine: {os.cpu_count()} cores; {CYCLES} cycles each, sim venue, 56 markets"]

    comp = compute_only(work / "compute.duckdb")
    lines.append(
        f"compute only   first {comp[0]:.2f}s (initial history), then median "
        f"{statistics.median(comp[1:]):.2f}s"
    )

    url = f"http://127.0.0.1:{PORT}/api"
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--port", str(PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(url)
        os.environ["PREFECT_API_URL"] = url
        orch = orchestrated(work / "orchestrated.duckdb")
    finally:
        server.terminate()
        server.wait(timeout=30)
        os.environ.pop("PREFECT_API_URL", None)
    over = [o - c for o, c in zip(orch[1:], comp[1:], strict=True)]
    lines.append(
        f"running server first {orch[0]:.2f}s, then median {statistics.median(orch[1:]):.2f}s "
        f"per cycle (orchestration median {statistics.median(over):.2f}s)"
    )

    wall, cycle_s = cold_start(work / "cold.duckdb")
    lines.append(
        f"cold process   {wall:.1f}s wall for one cycle of {cycle_s:.2f}s: "
        f"Prefect start-up and imports {wall - cycle_s:.1f}s"
    )
    text = "\n".join(lines)
    print(text)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cycle.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
