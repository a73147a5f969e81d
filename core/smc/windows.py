"""Per-market row layout: market blocks, their starts, and windows of recent bars.

Every multi-market computation in core/smc works on frames where each market
is one contiguous block of rows in strictly increasing ts, starting at
`starts[g]` (`starts` ends with the row count). The markets themselves may
come in any order.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def market_starts(symbols: pl.Series) -> np.ndarray:
    """First row of each block of equal symbols, plus the row count."""
    change = (symbols != symbols.shift(1)).fill_null(True).to_numpy()
    return np.append(np.flatnonzero(change), len(symbols)).astype(np.int64)


def positions(starts: np.ndarray, n: int) -> np.ndarray:
    """Index of each row inside its market."""
    return np.arange(n, dtype=np.int64) - np.repeat(starts[:-1], np.diff(starts))


def _in_blocks(frame: pl.DataFrame, starts: np.ndarray) -> bool:
    """Each market is one block (no symbol starts two blocks) with ts strictly increasing."""
    firsts = frame["symbol"].gather(starts[:-1])
    if firsts.n_unique() != len(firsts):
        return False
    rising = np.diff(frame["ts"].cast(pl.Int64).to_numpy()) > 0
    rising[starts[1:-1] - 1] = True  # a new market may start at any time
    return bool(rising.all())


def by_market(frame: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """(frame with each market one block in ts order, its market starts).

    The frame is returned as is when it already is laid out so (the usual case:
    checking is cheaper than sorting), else sorted by (symbol, ts). Duplicate ts
    end up next to each other, where the input checks find them.
    """
    starts = market_starts(frame["symbol"])
    if frame.height < 2 or _in_blocks(frame, starts):
        return frame, starts
    frame = frame.sort("symbol", "ts")
    return frame, market_starts(frame["symbol"])


def tail_per_market(
    frame: pl.DataFrame, starts: np.ndarray, n: int
) -> tuple[pl.DataFrame, np.ndarray]:
    """The last `n` rows of each market block, and the new starts."""
    sizes = np.diff(starts)
    if frame.height == 0 or sizes.max() <= n:
        return frame, starts
    from_end = np.repeat(starts[1:], sizes) - np.arange(frame.height)
    kept = np.minimum(sizes, n)
    return frame.filter(pl.Series(from_end <= n)), np.append(0, np.cumsum(kept)).astype(np.int64)
