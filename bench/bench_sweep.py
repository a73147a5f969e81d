"""`make bench-sweep`: configurations x market-bars per second through the sweep's Dask path.

Not a test: it prints figures (and saves them to bench/results/sweep.txt). The work is the
sweep flow's own task (flows/sweep.evaluate_batch: a batch of in-memory backtests on a
Dask worker, small records back) submitted through prefect_dask's DaskTaskRunner on a
LocalCluster, inside one Prefect flow run (an ephemeral server). Each configuration is a
distinct strategy.ote_tolerance on BTC and ETH over a WINDOW_DAYS window of the shared data.

1. throughput on 1 and on 2 workers (N configurations, one task per worker's share),
   after a warm-up batch per worker (numba JIT and the data read once per process);
   the speed-up 2 vs 1 (target >= 1.7 on 2 cores);
2. per-task overhead on 1 worker: the same N configurations as N tasks of 1 vs 1 task
   of N, the difference per extra task;
3. growth: wall time for N/2, N and 2N configurations on 2 workers.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
DATA = Path(os.environ.get("SMC_TRADER_DATA_DIR", REPO.parent / "shared/data/binance-usdm"))
START = datetime(2025, 9, 1, tzinfo=UTC)
WINDOW_DAYS = int(os.environ.get("BENCH_SWEEP_DAYS", "4"))
N = int(os.environ.get("BENCH_SWEEP_CONFIGS", "6"))
MARKETS = ("BTC", "ETH", "SOL")  # a window with trades: seconds per backtest
LIGHT = (("BTC", "ETH"), 3)  # the overhead figure: a window with almost no work per backtest


def jobs(count: int, offset: int = 0, days: int = WINDOW_DAYS) -> list:  # type: ignore[type-arg]
    from core.sweep_space import config_hash
    from tasks.settings import load_config
    from tasks.sweep import SweepJob

    base = load_config(REPO / "configs")
    out = []
    for i in range(count):
        tolerance = round(0.0001 * (offset + i + 1), 5)  # distinct configs, all <= 0.3
        config = base.model_copy(update={
            "strategy": base.strategy.model_copy(update={"ote_tolerance": tolerance})
        })
        out.append(SweepJob(config_hash(config), config.model_dump(mode="json"), START,
                            START + timedelta(days=days) - timedelta(hours=1)))
    return out


def timed(runner, chunks, markets=MARKETS) -> tuple[float, list]:  # type: ignore[no-untyped-def]
    from prefect.futures import as_completed

    from flows.sweep import evaluate_batch

    started = time.perf_counter()
    futures = [
        runner.submit(evaluate_batch, parameters={
            "data_dir": str(DATA), "markets": markets, "jobs": chunk})
        for chunk in chunks
    ]
    outcomes = [f.result() for f in as_completed(futures)]
    for o in outcomes:
        if o.errors:
            raise RuntimeError(f"bench backtest failed: {o.errors}")
    return time.perf_counter() - started, outcomes


def split(items: list, parts: int) -> list[list]:  # type: ignore[type-arg]
    return [items[i::parts] for i in range(parts) if items[i::parts]]


def bench(lines: list[str]) -> None:
    from prefect import flow

    from flows.sweep import task_runner

    @flow(name="bench-sweep")
    def run() -> None:
        walls: dict[int, float] = {}
        bars = 0
        for workers in (1, 2):
            with task_runner(workers) as runner:
                timed(runner, [[j] for j in jobs(workers, offset=500)])  # warm-up, per worker
                wall, outcomes = timed(runner, split(jobs(N), workers))
                bars = sum(r.market_bars for o in outcomes for r in o.results)
                inside = sum(o.seconds for o in outcomes)
                walls[workers] = wall
                lines.append(
                    f"{workers} worker(s): {N} configs x {bars // N} market-bars in {wall:.1f} s "
                    f"= {bars / wall:,.0f} config-market-bars/s (backtests inside the workers: "
                    f"{inside:.1f} s)"
                )
                if workers == 1:
                    light, days = LIGHT
                    timed(runner, [jobs(1, offset=600, days=days)], light)  # warm-up
                    many, _ = timed(runner, [[j] for j in jobs(N, 100, days)], light)
                    one, _ = timed(runner, [jobs(N, 200, days)], light)
                    lines.append(
                        f"per-task overhead (1 worker, {','.join(light)} x {days} days, "
                        f"~{one / N:.2f} s per backtest): {N} tasks of 1 in {many:.2f} s vs "
                        f"1 task of {N} in {one:.2f} s -> {(many - one) / (N - 1) * 1000:,.0f} "
                        "ms per extra task"
                    )
                else:
                    for count, offset in ((N // 2, 300), (2 * N, 400)):
                        wall_n, _ = timed(runner, split(jobs(count, offset), workers))
                        lines.append(f"growth (2 workers): {count} configs in {wall_n:.1f} s "
                                     f"({wall_n / count:.2f} s per config)")
        lines.append(f"speed-up 2 vs 1 worker: {walls[1] / walls[2]:.2f}x (target >= 1.7)")

    run()


def main() -> None:
    logging.getLogger("smc_trader").setLevel(logging.WARNING)
    if not (DATA / "BTCUSDT_1h.parquet").exists():
        sys.exit(f"bench-sweep: no data in {DATA}; set SMC_TRADER_DATA_DIR")
    lines = [f"bench-sweep: {', '.join(MARKETS)}, {WINDOW_DAYS}-day window from "
             f"{START:%Y-%m-%d}, {os.cpu_count()} cores"]
    bench(lines)
    text = "\n".join(lines)
    print("\n" + text)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "sweep.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
