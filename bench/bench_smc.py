"""Benchmark: our SMC feature set vs smartmoneyconcepts 0.0.27, and one 56-market cycle.

Run with the bench venv (the peer is never installed in the project venv):

    .local/bench-venv/bin/python bench/bench_smc.py [--repeats 5] [--peer-repeats 3]

Data: real BTCUSDT 1h candles tiled to 10,000 and 100,000 bars; each copy is
rescaled so it opens where the previous one closed (a continuous series) and
shifted in time so ts keeps increasing.

Timed, in one process on the same data:
- ours: core.smc.compute_features(..., "1h", swing_length=10): input checks,
  ATR, EMA, swings, BOS/CHoCH, trend, impulse leg, fibs/OTE, order block, FVGs,
  liquidity pools, regime - the whole frame. "cold" is the first call in a fresh
  process with an empty numba cache (JIT compile included); "first call" is the
  first call in this process (numba's on-disk cache may already be warm); the
  rest are medians after a warm-up;
- peer: swing_highs_lows(10), bos_choch, ob, fvg, liquidity, retracements;
- cycle: core.smc.evaluate_markets over the 15 real markets replicated to 56
  symbols (1h, 4h resampled, 1d), with full stored history and with the
  history sizes the live cycle fetches.

Prints medians of repeated runs and writes the same text to bench/results/.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.smc import compute_features, evaluate_markets, resample  # noqa: E402
from core.smc.timeframes import data_end  # noqa: E402
from schemas.config import HISTORY_BARS  # noqa: E402
from schemas.strategy import StrategyConfig  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "binance-usdm"
RESULTS = REPO / "bench" / "results"
SWING = 10
CONFIG = StrategyConfig(swing_length=SWING)
LIVE_HISTORY = HISTORY_BARS  # what a live store holds for a new market


def tile(frame: pl.DataFrame, bars: int) -> pl.DataFrame:
    """`frame` repeated to `bars` rows, each copy rescaled to open at the last close."""
    base = frame.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    step = base["ts"][1] - base["ts"][0]
    span = base["ts"][-1] - base["ts"][0] + step
    parts, scale, k = [], 1.0, 0
    while sum(p.height for p in parts) < bars:
        prices = [pl.col(c) * scale for c in ("open", "high", "low", "close")]
        part = base.with_columns(*prices, ts=pl.col("ts") + span * k)
        parts.append(part)
        scale = part["close"][-1] / base["open"][0]
        k += 1
    return pl.concat(parts).head(bars)


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def peer_run(frame: object) -> None:
    from smartmoneyconcepts import smc

    swings = smc.swing_highs_lows(frame, swing_length=SWING)
    smc.bos_choch(frame, swings)
    smc.ob(frame, swings)
    smc.fvg(frame)
    smc.liquidity(frame, swings)
    smc.retracements(frame, swings)


def cold_call(bars: int) -> float:
    """First call in a fresh process with an empty numba cache: JIT compile included."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "import polars as pl; from bench.bench_smc import tile, CONFIG, DATA;"
        "from core.smc import compute_features;"
        "f = tile(pl.read_parquet(DATA / 'BTCUSDT_1h.parquet'), int(sys.argv[2]));"
        "t = time.perf_counter(); compute_features(f, '1h', CONFIG);"
        "print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run(
            [sys.executable, "-c", code, str(REPO), str(bars)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return float(out.stdout.strip().splitlines()[-1])


def features_bench(hourly: pl.DataFrame, repeats: int, peer_repeats: int) -> None:
    print(
        f"## features: ours (compute_features, swing_length={SWING}) vs smartmoneyconcepts 0.0.27"
    )
    for bars in (10_000, 100_000):
        frame = tile(hourly, bars)
        cold = cold_call(bars)
        first = timed(lambda f=frame: compute_features(f, "1h", CONFIG), 1)[0]
        ours = timed(lambda f=frame: compute_features(f, "1h", CONFIG), repeats)
        pandas_frame = frame.to_pandas()
        with redirect_stdout(io.StringIO()):  # the peer prints a banner on import
            peer = timed(lambda f=pandas_frame: peer_run(f), peer_repeats)
        mo, mp = statistics.median(ours), statistics.median(peer)
        print(
            f"{bars:>7} bars: ours median {mo * 1000:8.1f} ms (min {min(ours) * 1000:.1f}, "
            f"n={repeats}; first call in process {first * 1000:.0f} ms, "
            f"cold incl. JIT {cold:.2f} s) | "
            f"peer median {mp:7.2f} s (min {min(peer):.2f}, n={peer_repeats}) | "
            f"ratio {mp / mo:6.0f}x"
        )


def market_candles(folder: Path) -> pl.DataFrame:
    parts = []
    for path in sorted(folder.glob("*_1h.parquet")):
        symbol = path.name.removesuffix("_1h.parquet")
        h1 = pl.read_parquet(path).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
        d1 = pl.read_parquet(path.with_name(symbol + "_1d.parquet"))
        for tf, f in (("1h", h1), ("4h", resample(h1, "4h", data_end(h1))), ("1d", d1)):
            parts.append(
                f.with_columns(
                    pl.col("ts").cast(pl.Datetime("us", "UTC")),
                    symbol=pl.lit(symbol),
                    timeframe=pl.lit(tf),
                ).select("symbol", "timeframe", "ts", "open", "high", "low", "close", "volume")
            )
    return pl.concat(parts)


def replicate(candles: pl.DataFrame, markets: int) -> pl.DataFrame:
    """`markets` symbols cycling through the real ones (copies renamed X2_, X3_, ...)."""
    symbols = sorted(candles["symbol"].unique())
    out = []
    for i in range(markets):
        source = symbols[i % len(symbols)]
        name = source if i < len(symbols) else f"X{i // len(symbols) + 1}_{source}"
        out.append(candles.filter(pl.col("symbol") == source).with_columns(symbol=pl.lit(name)))
    return pl.concat(out)


def cycle_bench(repeats: int) -> None:
    print("## one cycle: evaluate_markets, 56 markets (15 real ones replicated)")
    candles = replicate(market_candles(DATA), 56)
    when = datetime(2026, 2, 19, 18, tzinfo=UTC)
    live = pl.concat(
        g.sort("ts").tail(LIVE_HISTORY[tf])
        for (tf, _), g in candles.filter(pl.col("ts") < when).group_by("timeframe", "symbol")
    )
    for label, frame in (("full stored history", candles), ("live-sized history", live)):
        evaluate_markets(frame, when, CONFIG)  # warm-up
        runs = timed(lambda f=frame: evaluate_markets(f, when, CONFIG), repeats)
        signals, trace = evaluate_markets(frame, when, CONFIG)
        print(
            f"{label:>20}: {frame.height:>7} candle rows -> "
            f"median {statistics.median(runs) * 1000:6.1f} ms "
            f"(min {min(runs) * 1000:.1f}, n={repeats}); {trace.height} trace rows, "
            f"{signals.height} signals"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="SMC benchmark (see module docstring)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--peer-repeats", type=int, default=3)
    args = parser.parse_args()
    buffer = io.StringIO()
    with redirect_stdout(_Tee(buffer)):
        print(
            f"# bench_smc {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f}, polars {pl.__version__}"
        )
        features_bench(
            pl.read_parquet(DATA / "BTCUSDT_1h.parquet"), args.repeats, args.peer_repeats
        )
        cycle_bench(args.repeats)
        print(f"# load average at the end {os.getloadavg()[0]:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench_smc_{datetime.now(UTC):%Y%m%dT%H%M%S}.txt"
    path.write_text(buffer.getvalue())
    print(f"# written to {path.relative_to(REPO)}")


class _Tee(io.TextIOBase):
    """Writes to the real stdout and to a buffer (the results file)."""

    def __init__(self, buffer: io.StringIO) -> None:
        self.buffer_ = buffer
        self.stdout = sys.stdout

    def write(self, text: str) -> int:
        self.stdout.write(text)
        self.stdout.flush()
        return self.buffer_.write(text)


if __name__ == "__main__":
    main()
