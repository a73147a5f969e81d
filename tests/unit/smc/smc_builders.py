"""Hand-built candles for the SMC tests: explicit bars and zig-zags between pivots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import polars as pl

from schemas.strategy import StrategyConfig

START = datetime(2025, 1, 1, tzinfo=UTC)
Bar = tuple[float, float, float, float]


def bars(
    rows: Sequence[Bar], start: datetime = START, step: timedelta = timedelta(hours=1)
) -> pl.DataFrame:
    """Candles from explicit (open, high, low, close) rows, one `step` apart."""
    return pl.DataFrame(
        {
            "ts": [start + i * step for i in range(len(rows))],
            "open": [float(r[0]) for r in rows],
            "high": [float(r[1]) for r in rows],
            "low": [float(r[2]) for r in rows],
            "close": [float(r[3]) for r in rows],
            "volume": [1.0] * len(rows),
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


def zigzag(pivots: Sequence[float], legs: int = 4, wick: float = 0.2) -> list[Bar]:
    """Bars walking straight between pivot closes, `legs` bars per leg.

    Each bar opens at the previous close and has `wick` above and below its body,
    so a pivot close P makes a swing at P + wick (high) or P - wick (low).
    """
    closes = [float(pivots[0])]
    for a, b in pairwise(pivots):
        closes += [a + (b - a) * k / legs for k in range(1, legs + 1)]
    rows: list[Bar] = []
    prev = closes[0]
    for c in closes:
        rows.append((prev, max(prev, c) + wick, min(prev, c) - wick, c))
        prev = c
    return rows


def mirror(rows: Sequence[Bar], axis: float = 200.0) -> list[Bar]:
    """The same path upside down: highs become lows around `axis`."""
    return [(axis - o, axis - lo, axis - h, axis - c) for o, h, lo, c in rows]


def small_config(**overrides: object) -> StrategyConfig:
    """Short lookbacks so hand-built paths of a few dozen bars exercise everything."""
    base: dict[str, object] = {
        "swing_length": 2,
        "atr_period": 2,
        "ema_period": 3,
        "ema_warmup_periods": 2,
        "structure_lookback_bars": 40,
        "structure_max_age_bars": 20,
        "regime_window_bars": 10,
        "fvg_lookback_bars": 10,
        "incremental_window_bars": 300,
    }
    base.update(overrides)
    return StrategyConfig(**base)  # type: ignore[arg-type]


def index_of(frame: pl.DataFrame, column: str, value: object) -> list[int]:
    """Row numbers where `column` equals `value`."""
    return frame.with_row_index().filter(pl.col(column) == value)["index"].to_list()
