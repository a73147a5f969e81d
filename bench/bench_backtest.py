"""`make bench-backtest`: market-bars per second through the whole backtest pipeline.

Not a test: it prints figures (and saves them to bench/results/backtest.txt). One run:

1. cold: `trader backtest` as a fresh process on the shared data (imports, numba JIT,
   data loading, the scan, the loop, the store, the report);
2. warm: the same backtest pipeline (prepare, simulate, store in DuckDB) twice more in this
   process (data cached, JIT compiled); the second is the figure: market-bars/s (a
   market-bar = one market listed for one hour of the window), trades per 1,000
   market-bars, and the time of each step;
3. naive: the same configuration through replay cycles (the flow's own wiring, each stage's
   plain function, DuckDB store, paper account saved and restored every cycle) over the
   first NAIVE_HOURS hours of the window; the ratio warm / naive;
4. anchor: backtesting.py 0.6.6 (bench-only venv) on the same hourly bars, if installed;
5. memory: peak RSS (ru_maxrss of a child process) of a backtest's preparation of a year of
   hourly candles x SYNTH_MARKETS synthetic markets (every candle and every hour's scan in
   memory), then its loop over the first SYNTH_LOOP_DAYS days (SYNTH_MARKETS=1000 and 7 days
   by default; BENCH_SYNTH, BENCH_SYNTH_DAYS to change). The folder is written in /tmp.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("SMC_TRADER_DATA_DIR", REPO.parent / "shared/data/binance-usdm"))
START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)
NAIVE_HOURS = int(os.environ.get("BENCH_NAIVE_HOURS", "48"))
SYNTH_MARKETS = int(os.environ.get("BENCH_SYNTH", "1000"))
SYNTH_LOOP_DAYS = int(os.environ.get("BENCH_SYNTH_DAYS", "7"))


def market_bars(result) -> int:  # type: ignore[no-untyped-def]
    listed = result.decisions.group_by("symbol").len()
    return int(listed["len"].sum())


def cold(out: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [str(REPO / ".venv/bin/trader"), "backtest", "--data-dir", str(DATA), "--from",
             START.date().isoformat(), "--to", END.date().isoformat(), "--db",
             f"{tmp}/bt.duckdb"],
            check=True, capture_output=True, cwd=REPO,
        )
        out.append(f"cold: trader backtest as a fresh process: {time.perf_counter() - start:.1f} s")


def warm(out: list[str]) -> float:
    from flows.backtest import run_pipeline
    from schemas.config import AppConfig
    from tasks.backtest import BacktestRequest

    request = BacktestRequest(DATA, AppConfig(), START, END)
    spent: dict[str, float] = {}

    def timed(name, fn, args):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        value = fn(*args)
        spent[name] = time.perf_counter() - began
        return value

    with tempfile.TemporaryDirectory() as tmp:
        run_pipeline(request, Path(tmp) / "warm.duckdb")  # warms the JIT and the data cache
        start = time.perf_counter()
        result = run_pipeline(request, Path(tmp) / "bt.duckdb", steps=timed)
        seconds = time.perf_counter() - start
    bars = market_bars(result)
    rate = bars / seconds
    processed = int(result.equity["processed"].sum())
    out.append(
        f"warm: {bars:,} market-bars ({len(result.run.markets)} markets, "
        f"{result.equity.height:,} hours, {processed:,} run, the rest idle) through the whole "
        f"pipeline (prepare, simulate, store in DuckDB) in {seconds:.2f} s "
        f"= {rate:,.0f} market-bars/s; {len(result.trades)} trades = "
        f"{1000 * len(result.trades) / bars:.2f} per 1,000 market-bars"
    )
    split = ", ".join(f"{k} {v:.2f} s" for k, v in spent.items())
    out.append(
        f"warm: where the time goes: {split}, the rest {seconds - sum(spent.values()):.2f} s; "
        f"{spent.get('simulate', 0) / max(processed, 1) * 1000:.1f} ms of simulation per hour run"
    )
    return rate


def naive(out: list[str]) -> float:
    from flows.cycle import replay_cycles
    from schemas.config import AppConfig
    from venues.factory import make_venue

    with tempfile.TemporaryDirectory() as tmp:
        config = AppConfig.model_validate(
            {
                "venue": {"kind": "replay", "data_dir": str(DATA),
                          "replay_start": START.isoformat()},
                "cycle": {"db_path": f"{tmp}/naive.duckdb"},
            }
        )
        feed = make_venue(config.venue)
        replay_cycles(config, feed, 1)  # the first cycle loads the history
        start = time.perf_counter()
        replay_cycles(config, feed, NAIVE_HOURS)
        seconds = time.perf_counter() - start
    markets = len([m for m in feed.markets()])
    rate = markets * NAIVE_HOURS / seconds
    out.append(
        f"naive: {NAIVE_HOURS} replay cycles x {markets} markets in {seconds:.1f} s "
        f"= {rate:,.1f} market-bars/s ({seconds / NAIVE_HOURS:.2f} s a cycle)"
    )
    return rate


def anchor(out: list[str]) -> None:
    python = REPO / ".local/bench-venv/bin/python"
    if not python.exists():
        out.append("anchor: .local/bench-venv missing (make bench-backtest installs it)")
        return
    env = {**os.environ, "SMC_TRADER_DATA_DIR": str(DATA)}
    text = subprocess.run(
        [str(python), str(REPO / "bench/anchor_backtesting.py")],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    found = re.search(r"bars=(\d+) seconds=([\d.]+) trades=(\d+)", text)
    if found:
        bars, seconds = int(found[1]), float(found[2])
        out.append(
            f"anchor: backtesting.py 0.6.6, SMA cross, same 1h bars: {bars:,} bars in "
            f"{seconds:.2f} s = {bars / seconds:,.0f} bars/s ({found[3]} trades)"
        )


SYNTH_WRITE = r"""
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
import numpy as np, polars as pl
folder, n = Path(sys.argv[1]), int(sys.argv[2])
start = datetime(2024, 1, 1, tzinfo=UTC)
rng = np.random.default_rng(5)
hours = 365 * 24 + 300 * 24  # the 300-day warm-up the strategy reads, then the year
ts = pl.datetime_range(start, start + timedelta(hours=hours - 1), "1h", eager=True,
                       time_zone="UTC")
for i in range(n):
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, hours)))
    frame = pl.DataFrame({"ts": ts, "open": np.r_[close[0], close[:-1]], "close": close,
                          "volume": np.full(hours, 5e5)}).with_columns(
        high=pl.max_horizontal("open", "close") * 1.003,
        low=pl.min_horizontal("open", "close") * 0.997)
    frame.select("ts", "open", "high", "low", "close", "volume").write_parquet(
        folder / f"S{i:04d}USDT_1h.parquet")
"""

SYNTH_CHILD = r"""
import resource, sys, time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
import polars as pl
sys.path.insert(0, sys.argv[3])
from schemas.config import AppConfig
from tasks.backtest import BacktestRequest, prepare, run_backtest
folder, days = Path(sys.argv[1]), int(sys.argv[2])
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=300)
req = BacktestRequest(folder, AppConfig(), start, start + timedelta(days=365))
t = time.perf_counter()
prepared = prepare(req)  # every candle of the year and every hour's scan, in memory
t_prep, rss_prep = time.perf_counter() - t, rss()
# the loop over the first `days` of the prepared year (its per-hour state is small; a
# full year of 1,000 random-walk markets trading would take far longer than a bench run)
cut = prepared.hours[days * 24 - 1]
part = replace(prepared, hours=prepared.hours[: days * 24],
               signals=prepared.signals.filter(pl.col("ts") <= cut),
               trace=prepared.trace.filter(pl.col("ts") <= cut))
t = time.perf_counter()
result = run_backtest(req, prepared=part)
print(f"SYNTH markets={len(prepared.symbols)} prepare_s={t_prep:.1f} "
      f"rss_after_prepare_mb={rss_prep:.0f} loop_days={days} loop_s={time.perf_counter() - t:.1f} "
      f"trades={len(result.trades)} peak_rss_mb={rss():.0f}")
"""


def memory(out: list[str]) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        subprocess.run([sys.executable, "-c", SYNTH_WRITE, tmp, str(SYNTH_MARKETS)], check=True)
        text = subprocess.run(
            [sys.executable, "-c", SYNTH_CHILD, tmp, str(SYNTH_LOOP_DAYS), str(REPO)],
            check=True, capture_output=True, text=True,
        ).stdout
    found = re.search(r"SYNTH .*", text)
    out.append(f"memory: a year of 1h candles x {SYNTH_MARKETS} synthetic markets (child "
               f"process, ru_maxrss): {found[0] if found else text[-300:]}")


def main() -> None:
    logging.disable(logging.WARNING)
    out = [f"shared data {DATA}, window {START:%Y-%m-%d} .. {END:%Y-%m-%d}, "
           f"{os.cpu_count()} cores"]
    cold(out)
    rate = warm(out)
    naive_rate = naive(out)
    out.append(f"ratio: warm backtest / naive replay cycles = {rate / naive_rate:,.0f}x")
    anchor(out)
    if SYNTH_MARKETS:
        memory(out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.append(f"this process: peak RSS {peak:.0f} MB")
    text = "\n".join(out)
    print(text)
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "backtest.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
