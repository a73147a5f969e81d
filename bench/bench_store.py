"""Candles upserted per second on the replay data (not a test: prints figures).

1. upsert only: every candle of ../shared/data/binance-usdm (1h, 4h, 1d), one batch per
   market, into a fresh DuckDB file; then the same again (every row a replacement);
2. refresh: the OHLCV stage itself (plan, fetch from the replay venue, validate with
   pandera, upsert) for a first cycle with 1000/600/400 bars per market.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.cycle import CycleContext  # noqa: E402
from schemas.config import OhlcvConfig  # noqa: E402
from store.candles import upsert_candles  # noqa: E402
from store.db import open_store  # noqa: E402
from tasks.ohlcv import refresh  # noqa: E402
from venues.replay import ReplayVenue, load_folder  # noqa: E402

DATA = Path(os.environ.get("SMC_TRADER_DATA_DIR", REPO.parent / "shared/data/binance-usdm"))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    frames = load_folder(DATA.resolve())
    batches = [
        frame.with_columns(pl.lit(f"{base}/USD:USD").alias("symbol"), pl.lit(tf).alias("timeframe"))
        for base, by_tf in frames.items()
        for tf, frame in by_tf.items()
    ]
    rows = sum(b.height for b in batches)
    lines = []
    for label in ("insert", "replace"):
        start = time.perf_counter()
        with open_store(work / "upsert.duckdb") as con:
            for batch in batches:
                upsert_candles(con, batch)
        took = time.perf_counter() - start
        lines.append(f"upsert ({label}): {rows:,} candles in {took:.2f}s = {rows / took:,.0f}/s")

    venue = ReplayVenue(DATA)
    symbols = [m.symbol for m in venue.markets()]
    ctx = CycleContext(1, "replay", venue.clock.now(), work / "refresh.duckdb", datetime.now(UTC))
    start = time.perf_counter()
    result = refresh(venue, symbols, ctx, OhlcvConfig())
    took = time.perf_counter() - start
    lines.append(
        f"refresh stage (fetch + validate + upsert), {len(symbols)} markets: "
        f"{result.candles_upserted:,} candles in {took:.2f}s = "
        f"{result.candles_upserted / took:,.0f}/s"
    )
    text = "\n".join(lines)
    print(text)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "store.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
