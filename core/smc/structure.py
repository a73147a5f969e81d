"""Market structure: breaks of structure (BOS), changes of character (CHoCH),
the trend they set, the impulse leg behind the latest break and its order block.

This is the truly sequential part of the engine, so it is three small numba
scans, each over every bar of every market: `latest_swing` (the reference
swings), `breaks` (BOS / CHoCH) and `legs` (the valid structure and its leg).

Definitions (ours), evaluated on each bar t after its close:

- The reference swings are the latest CONFIRMED swing high and swing low
  (core/smc/swings.py) whose pivot is at most `structure_lookback_bars` old.
- A break is a CLOSE beyond the reference swing that has not been broken yet:
  close[t] > swing high -> bullish break; close[t] < swing low -> bearish. A
  wick through the level without a close beyond it is not a break. Each swing
  breaks once. If one bar closes beyond both (possible when the swing low sits
  above the swing high), the candle's own direction decides.
- The break is a CHoCH when it goes against the direction of the previous break
  (if that one is at most `structure_max_age_bars` old), otherwise a BOS.
- The impulse leg of a bullish break starts at the lowest low between the broken
  swing's pivot and the break bar (ties: the latest) and ends at the highest
  high since then; it keeps extending while the structure is valid. Bearish
  mirrors it.
- The structure (and the trend, +1/-1) stays valid for
  `structure_max_age_bars` after the break, until the next break, or until a
  close beyond the leg's start (the impulse is undone). Otherwise trend is 0.
- Order block: the last candle against the break (down-close for a bullish
  break) between the leg start and the break bar; the leg-start candle if none.
- The leg "swept liquidity" when an opposite pool (core/smc/zones.py) was swept
  between the broken pivot and the break: the classic sweep-then-break.

Differences from smartmoneyconcepts 0.0.27 `bos_choch`/`ob`:
- the peer labels a BOS/CHoCH on the bar of the swing that WILL be broken, from a
  pattern of four alternating (already revised) swings, and finds the breaking
  bar in the future (BrokenIndex); unbroken patterns are deleted afterwards.
  Ours is reported on the bar that closes beyond the level, from what was known
  then, and nothing is deleted later.
- the peer's order block is the lowest-low (highest-high) candle between the
  swing and the breaking close; ours is the last opposite candle of the leg (the
  common ICT definition), which the OTE zone often contains.

Every state variable expires after a bounded number of bars, so a window of
`structure_memory_bars` recent bars reproduces every output exactly.
"""

from __future__ import annotations

import numba
import numpy as np

NAN = np.nan
BOS, CHOCH = 1, 2


@numba.njit(cache=True)
def _leg_start(high: np.ndarray, low: np.ndarray, a: int, b: int, up: bool) -> int:
    """Index of the lowest low (up) / highest high (down) in [a, b]; ties: the latest."""
    best = a
    for k in range(a, b + 1):
        if (up and low[k] <= low[best]) or ((not up) and high[k] >= high[best]):
            best = k
    return best


@numba.njit(cache=True)
def _order_block(open_: np.ndarray, close: np.ndarray, a: int, b: int, up: bool) -> int:
    """Last candle against the break in [a, b); `a` (the leg start) if there is none."""
    for k in range(b - 1, a - 1, -1):
        if (up and close[k] < open_[k]) or ((not up) and close[k] > open_[k]):
            return k
    return a


@numba.njit(cache=True)
def _extreme(high: np.ndarray, low: np.ndarray, a: int, b: int, up: bool) -> float:
    """Highest high (up) or lowest low (down) in [a, b]."""
    x = high[a] if up else low[a]
    for k in range(a, b + 1):
        x = max(x, high[k]) if up else min(x, low[k])
    return x


@numba.njit(cache=True)
def latest_swing(
    starts: np.ndarray, values: np.ndarray, confirmed: np.ndarray, length: int, lookback: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per bar, the level and pivot index of the latest confirmed swing (highs or lows)
    whose pivot is at most `lookback` bars old; NaN / -1 where there is none."""
    n = values.shape[0]
    level = np.full(n, NAN)
    pivot = np.full(n, -1, np.int64)
    for g in range(starts.shape[0] - 1):
        p = -1
        for t in range(starts[g], starts[g + 1]):
            if confirmed[t]:
                p = t - length
            if p >= 0 and t - p > lookback:
                p = -1
            if p >= 0:
                level[t], pivot[t] = values[p], p
    return level, pivot


@numba.njit(cache=True)
def _direction(up: bool, down: bool, open_: float, close: float) -> int:
    """+1 / -1 / 0; a bar closing beyond both swings goes with its own body."""
    if up and down:
        return 1 if close >= open_ else -1
    return 1 if up else (-1 if down else 0)


@numba.njit(cache=True)
def breaks(
    starts: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    sh_level: np.ndarray,
    sh_pivot: np.ndarray,
    sl_level: np.ndarray,
    sl_pivot: np.ndarray,
    max_age: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(direction, kind 1 BOS / 2 CHoCH, broken level) of the break on each bar.

    A swing breaks once: the first close beyond it. A break against the previous
    break (if at most `max_age` bars old) is a CHoCH, otherwise a BOS.
    """
    n = close.shape[0]
    direction = np.zeros(n, np.int8)
    kind = np.zeros(n, np.int8)
    level = np.full(n, NAN)
    for g in range(starts.shape[0] - 1):
        broken_high, broken_low, last_dir, last_bar = -1, -1, 0, -1
        for t in range(starts[g], starts[g + 1]):
            up = sh_pivot[t] >= 0 and sh_pivot[t] != broken_high and close[t] > sh_level[t]
            down = sl_pivot[t] >= 0 and sl_pivot[t] != broken_low and close[t] < sl_level[t]
            d = _direction(up, down, open_[t], close[t])
            if d == 0:
                continue
            previous = last_dir if (last_bar >= 0 and t - last_bar <= max_age) else 0
            direction[t], kind[t] = d, CHOCH if previous == -d else BOS
            if d == 1:
                broken_high, level[t] = sh_pivot[t], sh_level[t]
            else:
                broken_low, level[t] = sl_pivot[t], sl_level[t]
            last_dir, last_bar = d, t
    return direction, kind, level


@numba.njit(cache=True)
def _undone(direction: int, close: float, start: float) -> bool:
    """A close beyond the leg's start undoes the impulse."""
    return (direction == 1 and close < start) or (direction == -1 and close > start)


@numba.njit(cache=True)
def legs(
    starts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    direction: np.ndarray,
    sh_pivot: np.ndarray,
    sl_pivot: np.ndarray,
    bsl_swept: np.ndarray,
    ssl_swept: np.ndarray,
    max_age: int,
) -> tuple[np.ndarray, ...]:
    """The valid structure on each bar: trend, bar of its break, leg start level and
    index, leg end, order block top and bottom, swept liquidity (0/1; -1 none).

    The structure is valid for `max_age` bars after its break, until the next
    break, or until a close beyond the leg start.
    """
    n = close.shape[0]
    trend = np.zeros(n, np.int8)
    at = np.full(n, -1, np.int64)
    start_ix = np.full(n, -1, np.int64)
    start = np.full(n, NAN)
    end = np.full(n, NAN)
    ob_top = np.full(n, NAN)
    ob_bottom = np.full(n, NAN)
    sweep = np.full(n, -1, np.int8)
    for g in range(starts.shape[0] - 1):
        d, b, o, x, top, bottom, swp = 0, -1, -1, NAN, NAN, NAN, 0
        last_bsl, last_ssl = -1, -1
        for t in range(starts[g], starts[g + 1]):
            last_bsl = t if bsl_swept[t] else last_bsl
            last_ssl = t if ssl_swept[t] else last_ssl
            if direction[t] != 0:
                d, b, up = direction[t], t, direction[t] == 1
                pivot = sh_pivot[t] if up else sl_pivot[t]
                o = _leg_start(high, low, pivot, t, up)
                x = _extreme(high, low, o, t, up)
                ob = _order_block(open_, close, o, t, up)
                top, bottom = high[ob], low[ob]
                swp = 1 if (last_ssl if up else last_bsl) >= pivot else 0
            elif d != 0:
                x = max(x, high[t]) if d == 1 else min(x, low[t])
                if _undone(d, close[t], low[o] if d == 1 else high[o]):
                    d = 0
            if d != 0 and t - b > max_age:
                d = 0
            if d != 0:
                trend[t], at[t], start_ix[t] = d, b, o
                start[t] = low[o] if d == 1 else high[o]
                end[t], ob_top[t], ob_bottom[t], sweep[t] = x, top, bottom, swp
    return trend, at, start, start_ix, end, ob_top, ob_bottom, sweep
