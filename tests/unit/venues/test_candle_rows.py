"""The paper driver's candle tuples are the candle frame's rows, whatever order they are
asked in (CandleIndex keeps only a window of them as tuples)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl

from venues.base import CHUNK_ROWS, CandleIndex

H = timedelta(hours=1)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def candles(n: int) -> pl.DataFrame:
    ts = [T0 + i * H for i in range(n) if i % 97 != 5]  # a few holes
    k = len(ts)
    return pl.DataFrame(
        {
            "ts": ts,
            "open": [100.0 + i for i in range(k)],
            "high": [101.5 + i for i in range(k)],
            "low": [99.25 + i for i in range(k)],
            "close": [100.5 + i for i in range(k)],
            "volume": [10.0 * (i % 7) for i in range(k)],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


def test_rows_between_equals_the_frame_rows_forward_backward_and_across_windows():
    frame = candles(3 * CHUNK_ROWS + 40)
    index = CandleIndex(frame)
    rng = random.Random(7)
    asked = 0
    now = T0
    for _ in range(400):
        if rng.random() < 0.8:
            now += H * rng.choice([1, 1, 2, 30, CHUNK_ROWS])  # mostly forward, some jumps
        else:
            now -= H * rng.choice([3, 100, 2 * CHUNK_ROWS])  # and back
        since = now - H * rng.choice([1, 3, 24, 700])
        want = index.closed_between(since, now, H).rows()
        assert index.rows_between(since, now, H) == want
        asked += len(want)
    assert asked > 1000  # the spans were not all empty


def test_an_empty_span_gives_no_rows():
    index = CandleIndex(candles(10))
    assert index.rows_between(T0 + 5 * H, T0 + 5 * H, H) == []
    assert index.rows_between(T0 - 10 * H, T0, H) == []
