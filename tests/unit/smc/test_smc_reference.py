"""Our compiled swings and breaks equal a slow, obvious re-implementation of their
definitions (written here from the docstrings, in plain Python), on real candles."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from core.smc import compute_features, resample
from core.smc.timeframes import data_end
from schemas.strategy import StrategyConfig


def reference_swings(high: list[float], low: list[float], n: int) -> tuple[list[bool], list[bool]]:
    """Swing high at p: above the n highs before, at least the n highs after; reported at p+n."""
    size = len(high)
    sh, sl = [False] * size, [False] * size
    for t in range(2 * n, size):
        p = t - n
        sh[t] = high[p] > max(high[p - n : p]) and high[p] >= max(high[p + 1 : t + 1])
        sl[t] = low[p] < min(low[p - n : p]) and low[p] <= min(low[p + 1 : t + 1])
    return sh, sl


def reference_breaks(
    frame: pl.DataFrame, sh: list[bool], sl: list[bool], config: StrategyConfig
) -> tuple[list[int], list[int], list[int]]:
    """(bos, choch, trend) per bar from the rules in core/smc/structure.py, leg-free.

    The trend also ends when a close undoes the leg; that needs the leg start,
    the lowest low (highest high) between the broken pivot and the break.
    """
    o, h, lo, c = (frame[k].to_list() for k in ("open", "high", "low", "close"))
    n, lookback, age = (
        config.swing_length,
        config.structure_lookback_bars,
        config.structure_max_age_bars,
    )
    size = len(c)
    bos, choch, trend = [0] * size, [0] * size, [0] * size
    swing_high: dict | None = None
    swing_low: dict | None = None
    last: dict | None = None  # the last break: bar, direction, leg start, still valid
    for t in range(size):
        if sh[t]:
            swing_high = {"pivot": t - n, "level": h[t - n], "broken": False}
        if sl[t]:
            swing_low = {"pivot": t - n, "level": lo[t - n], "broken": False}
        if swing_high and t - swing_high["pivot"] > lookback:
            swing_high = None
        if swing_low and t - swing_low["pivot"] > lookback:
            swing_low = None
        up = bool(swing_high) and not swing_high["broken"] and c[t] > swing_high["level"]
        down = bool(swing_low) and not swing_low["broken"] and c[t] < swing_low["level"]
        if up and down:
            up, down = c[t] >= o[t], c[t] < o[t]
        previous = last["dir"] if last and t - last["bar"] <= age else 0
        if up or down:
            d = 1 if up else -1
            swing = swing_high if up else swing_low
            swing["broken"] = True
            span = range(swing["pivot"], t + 1)
            start = min(lo[k] for k in span) if up else max(h[k] for k in span)
            (choch if previous == -d else bos)[t] = d
            last = {"bar": t, "dir": d, "start": start, "valid": True}
        elif last and last["valid"] and (c[t] - last["start"]) * last["dir"] < 0:
            last["valid"] = False  # a close beyond the leg start undoes the impulse
        if last and last["valid"] and t - last["bar"] <= age:
            trend[t] = last["dir"]
    return bos, choch, trend


@pytest.mark.parametrize(
    ("symbol", "timeframe", "swing_length"),
    [
        ("BTCUSDT", "1h", 5),
        ("ETHUSDT", "4h", 3),
        ("DOGEUSDT", "1h", 10),
        ("SOLUSDT", "1d", 2),
    ],
)
def test_compiled_structure_equals_the_plain_python_reference(
    real_data_dir: Path, symbol: str, timeframe: str, swing_length: int
) -> None:
    hourly = pl.read_parquet(real_data_dir / f"{symbol}_1h.parquet")
    utc = hourly.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    candles = {
        "1h": hourly,
        "4h": resample(utc, "4h", data_end(utc)),
        "1d": pl.read_parquet(real_data_dir / f"{symbol}_1d.parquet"),
    }[timeframe]
    config = StrategyConfig(swing_length=swing_length)
    ours = compute_features(candles, timeframe, config)
    sh, sl = reference_swings(ours["high"].to_list(), ours["low"].to_list(), swing_length)
    assert ours["swing_high_confirmed"].to_list() == sh
    assert ours["swing_low_confirmed"].to_list() == sl
    bos, choch, trend = reference_breaks(ours, sh, sl, config)
    assert ours["bos"].to_list() == bos
    assert ours["choch"].to_list() == choch
    assert ours["trend"].to_list() == trend
    assert sum(map(abs, bos)) + sum(map(abs, choch)) > 10  # the data does exercise it
