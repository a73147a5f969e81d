"""Fixtures for the execution fault tests: a Kraken-Futures simulator on loopback, the real
ccxt client against it, a fresh DuckDB file, and one Prefect server for the session.

The Prefect fixture repeats tests/integration/conftest.py's (fixtures in a folder's
conftest are visible only below it); run together, the two folders start two servers.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.cycle import CycleContext
from core.market import MarketInfo
from schemas.execution import ExecutionConfig
from tests.support.feeds import CandleFeed, hourly_candles
from venues.kraken import make_client
from venues.kraken_orders import KrakenOrderVenue
from venues.kraken_sim import Faults, RunningSim, start_in_thread
from venues.paper import PaperConfig

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

KEY = "faults-key"
SECRET = base64.b64encode(b"the execution fault tests share this secret with the sim").decode()
START = datetime(2025, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
HISTORY = 24
CASH = 100_000.0
BTC = MarketInfo("BTC/USD:USD", "BTCUSD", "BTC", "USD", 1.0, 0.5, 0.0001, 0.0001, 50.0)
ETH = MarketInfo("ETH/USD:USD", "ETHUSD", "ETH", "USD", 1.0, 0.05, 0.001, 0.001, 20.0)
MARKETS = (BTC, ETH)
FLAT = {BTC.symbol: 60_000.0, ETH.symbol: 3_000.0}


def flat_feed(bars_after_start: int = 24) -> CandleFeed:
    """BTC at 60k and ETH at 3k, bar after bar (nothing triggers a stop or a take-profit)."""
    total = HISTORY + bars_after_start
    frames = {s: hourly_candles([p] * total, p * 1e-4, START) for s, p in FLAT.items()}
    return CandleFeed(MARKETS, frames, START + HISTORY * H, name="faults-flat")


def markets_frame() -> pl.DataFrame:
    """What execute and reconcile read of the Markets frame: grids and contract sizes."""
    return pl.DataFrame(
        {
            "symbol": [m.symbol for m in MARKETS],
            "tick_size": [m.tick_size for m in MARKETS],
            "lot_size": [m.lot_size for m in MARKETS],
            "contract_size": [m.contract_size for m in MARKETS],
            "max_leverage": [m.max_leverage for m in MARKETS],
        }
    )


def intent_row(pid: str, symbol: str = BTC.symbol, side: str = "long", size: float = 0.3) -> dict:
    """An approved intent: market entry, stop 5 % away, TPs at +3/+6/+9 % (long)."""
    price = FLAT[symbol]
    sign = 1 if side == "long" else -1
    return {
        "client_intent_id": pid,
        "symbol": symbol,
        "side": side,
        "size": size,
        "stop": price * (1 - sign * 0.05),
        "tp1": price * (1 + sign * 0.03),
        "tp2": price * (1 + sign * 0.06),
        "tp3": price * (1 + sign * 0.09),
        "status": "approved",
    }


def serve(feed=None, **faults_kw) -> RunningSim:
    faults = Faults(**{"timeout_s": 0.6, "rate_budget": None, **faults_kw})
    return start_in_thread(
        feed or flat_feed(), KEY, SECRET, faults=faults, paper=PaperConfig(initial_cash=CASH)
    )


def kraken_on(sim: RunningSim, *, timeout_ms: int = 3_000) -> KrakenOrderVenue:
    exchange = make_client(api_url=sim.url, api_key=KEY, api_secret=SECRET, timeout_ms=timeout_ms)
    exchange.enableRateLimit = False  # the simulator enforces Kraken's budget (off here)
    return KrakenOrderVenue(exchange, clock=sim.exchange.feed.clock)


def context(db: Path, sim: RunningSim, cycle_id: int = 1) -> CycleContext:
    return CycleContext(cycle_id, "kraken", sim.now(), db, datetime.now(UTC))


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    with serve() as running:
        yield running


@pytest.fixture
def kraken(sim: RunningSim) -> Iterator[KrakenOrderVenue]:
    venue = kraken_on(sim)
    yield venue
    venue.exchange.session.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "trading.duckdb"


@pytest.fixture
def cfg() -> ExecutionConfig:
    return ExecutionConfig()
