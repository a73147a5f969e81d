"""Orders per second the execution gateway sustains against the Kraken-Futures simulator.

Real ccxt, loopback HTTP, the simulator's cost budget off (it would cap at 50 orders / 10 s,
as Kraken does); every order goes through the write-ahead log (3 durable writes each).
Compared in the same run with the bare venue (no log) to show what the log costs.
Not a test: prints figures.
"""

from __future__ import annotations

import base64
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.actions import PlaceEntry  # noqa: E402
from core.engine.gateway import Gateway  # noqa: E402
from core.orders import OrderRequest, OrderSide, OrderType  # noqa: E402
from store.db import connect_store  # noqa: E402
from store.state import DuckDBState  # noqa: E402
from venues.kraken import make_client  # noqa: E402
from venues.kraken_orders import KrakenOrderVenue  # noqa: E402
from venues.kraken_sim import Faults, start_in_thread  # noqa: E402
from venues.replay import ReplayVenue  # noqa: E402

DATA = Path(os.environ.get("SMC_TRADER_DATA_DIR", REPO.parent / "shared/data/binance-usdm"))
KEY = "bench"
SECRET = base64.b64encode(b"benchmark secret for the local kraken simulator only").decode()
N = 200


def main() -> None:
    feed = ReplayVenue(DATA, start=datetime(2025, 12, 1, tzinfo=UTC))
    price = float(feed.tickers()["BTC/USD:USD"].last)
    limit = round(price * 0.5)  # far below the market: rests, never fills
    lines = [
        f"{N} resting BTC limit orders each, one client, loopback, machine: {os.cpu_count()} cores"
    ]
    with start_in_thread(feed, KEY, SECRET, faults=Faults(rate_budget=None)) as sim:
        client = make_client(api_url=sim.url, api_key=KEY, api_secret=SECRET, rate_limit_ms=0)
        client.enableRateLimit = False
        venue = KrakenOrderVenue(client, clock=feed.clock)
        bare = []
        for i in range(N):
            start = time.perf_counter()
            venue.submit(
                OrderRequest(
                    "BTC/USD:USD", OrderSide.BUY, OrderType.LIMIT, 0.001, f"bare-{i}", price=limit
                )
            )
            bare.append(time.perf_counter() - start)
        db = Path(tempfile.mkdtemp(prefix="bench-gw-")) / "gw.duckdb"
        gateway = Gateway(venue, DuckDBState(connect_store(db)), 1, feed.clock)
        logged = []
        for i in range(N):
            action = PlaceEntry(
                f"p{i}",
                "BTC/USD:USD",
                OrderSide.BUY,
                OrderType.LIMIT,
                0.001,
                f"gw-{i}",
                price=limit,
            )
            start = time.perf_counter()
            gateway.execute(action)
            logged.append(time.perf_counter() - start)
    for label, times in (("venue only", bare), ("gateway + WAL", logged)):
        lines.append(
            f"{label:14s} {N / sum(times):7.1f} orders/s, "
            f"median {statistics.median(times) * 1e3:.1f} ms"
        )
    lines.append(f"acknowledged by the gateway: {gateway.report.placed} of {N}")
    text = "\n".join(lines)
    print(text)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "gateway.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
