"""Hand-built candles of the fill-model tests: one market, flat history at 100, then the
bars a test chooses from the decision hour T0 on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from core.market import MarketInfo

H = timedelta(hours=1)
START = datetime(2025, 6, 1, tzinfo=UTC)
HISTORY = 24
T0 = START + HISTORY * H  # the decision hour of the signal
SYMBOL = "ABC/USD:USD"
INFO = MarketInfo(SYMBOL, "ABCUSD", "ABC", "USD", 1.0, 0.01, 0.001, 0.001, 50.0)
FLAT = (100.0, 100.0, 100.0, 100.0)


def candle_frame(
    rows: list[tuple[float, float, float, float]], start: datetime, step: timedelta
) -> pl.DataFrame:
    """(open, high, low, close) rows as candles every `step` from `start`."""
    return pl.DataFrame(
        {
            "ts": [start + i * step for i in range(len(rows))],
            "open": [r[0] for r in rows],
            "high": [r[1] for r in rows],
            "low": [r[2] for r in rows],
            "close": [r[3] for r in rows],
            "volume": [1e6] * len(rows),
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))
