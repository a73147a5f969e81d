"""The venue port: what every market-data venue offers the cycle.

Implementations: `sim` (seeded synthetic market), `replay` (stored candles),
`kraken` (ccxt krakenfutures, live exchange, demo or a local simulator).
Orders arrive on this port in a later step (execution).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl

from core.cycle import Clock
from core.market import MarketInfo, Ticker

OHLCV_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class WallClock:
    """The real time, for live venues."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that moves only when told: one base bar per cycle in sim and replay."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs a timezone-aware UTC start")
        self._now = start
        self.step = step

    def now(self) -> datetime:
        return self._now

    def advance(self) -> datetime:
        self._now = self._now + self.step
        return self._now

    def move_to(self, when: datetime) -> datetime:
        """Jump forward to `when` (a backtest's next decision); refuses going back in time."""
        if when < self._now:
            raise ValueError(f"SimulatedClock cannot go back from {self._now} to {when}")
        self._now = when
        return self._now

    def resume_after(self, last: datetime | None) -> None:
        """Continue after the last recorded cycle, so a restart never replays time."""
        if last is not None and last + self.step > self._now:
            self._now = last + self.step


@runtime_checkable
class MarketDataVenue(Protocol):
    name: str
    clock: Clock

    def markets(self) -> list[MarketInfo]:
        """Every perpetual the venue lists (tradeable or not: the registry decides)."""
        ...

    def tickers(self) -> dict[str, Ticker]:
        """Latest ticker per unified symbol."""
        ...

    def ohlcv(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> pl.DataFrame:
        """Closed candles with since <= ts and ts + timeframe <= until, ascending.

        Columns OHLCV_COLUMNS, ts as Datetime(us, UTC). Raises DataError for an
        unknown symbol and VenueRetryableError for transient failures.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class CandleRows(Protocol):
    """A feed that also answers `ohlcv` as (ts, open, high, low, close, volume) tuples (the
    replay venue): the paper driver then replays bars without a frame per call."""

    def candle_rows(
        self, symbol: str, timeframe: str, since: datetime, until: datetime
    ) -> list[CandleRow]: ...


def empty_ohlcv() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
        }
    )


class CandleIndex:
    """Binary search over one sorted candle frame's ts, on a cached int64 array: a cycle
    (and a backtest, every hour) asks for a few rows of it many times."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self._us = frame["ts"].dt.epoch("us").to_numpy()
        self._chunk: tuple[int, list[CandleRow]] = (0, [])

    def span(self, since: datetime, until: datetime, step: timedelta) -> tuple[int, int]:
        """[start, stop) of the rows with since <= ts and ts + step <= until."""
        start = int(np.searchsorted(self._us, _epoch_us(since), side="left"))
        stop = int(np.searchsorted(self._us, _epoch_us(until - step), side="right"))
        return start, max(start, stop)

    def closed_between(self, since: datetime, until: datetime, step: timedelta) -> pl.DataFrame:
        """Rows with since <= ts and ts + step <= until."""
        start, stop = self.span(since, until, step)
        return self.frame.slice(start, stop - start)

    def rows_between(self, since: datetime, until: datetime, step: timedelta) -> list[CandleRow]:
        """The same rows as `closed_between`, as (ts, open, high, low, close, volume) tuples
        (the paper driver replays bars one by one: tuples, not a frame each time)."""
        return self.rows(*self.span(since, until, step))

    def rows(self, start: int, stop: int) -> list[CandleRow]:
        """Rows [start, stop) as tuples, from a window of CHUNK_ROWS rows kept as Python
        tuples (readers move forward in time; a whole history as tuples would cost a few
        hundred bytes per candle, gigabytes for a thousand markets)."""
        if stop <= start:
            return []
        first, chunk = self._chunk
        if not (first <= start and stop <= first + len(chunk)):
            first = max(0, start - CHUNK_BACK)
            part = self.frame.slice(first, max(stop - first, CHUNK_ROWS))
            chunk = part.select(OHLCV_COLUMNS).rows()
            self._chunk = (first, chunk)
        return chunk[start - first : stop - first]


CHUNK_ROWS = 512  # candles kept as tuples per market and timeframe
CHUNK_BACK = 48  # of them before the first row asked for (a ticker looks 24 h back)
CandleRow = tuple[datetime, float, float, float, float, float]  # ts (open), o, h, l, c, v


def _epoch_us(when: datetime) -> int:
    return int((when - EPOCH) // timedelta(microseconds=1))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def closed_between(
    frame: pl.DataFrame, since: datetime, until: datetime, step: timedelta
) -> pl.DataFrame:
    """Rows of a ts-sorted candle frame with since <= ts and ts + step <= until."""
    return CandleIndex(frame).closed_between(since, until, step)


def assumed_market(base: str, venue_symbol: str, price: float, max_leverage: float) -> MarketInfo:
    """A USD-settled perpetual for venues whose data carries no contract specification (sim,
    replay): contract size 1, tick = five significant digits of `price`, a lot worth about a
    dollar or less."""
    tick = float(10.0 ** (math.floor(math.log10(price)) - 4))
    lot = float(10.0 ** min(0, math.floor(math.log10(1.0 / price))))
    return MarketInfo(
        symbol=f"{base}/USD:USD",
        venue_symbol=venue_symbol,
        base=base,
        settle="USD",
        contract_size=1.0,
        tick_size=tick,
        lot_size=lot,
        min_size=lot,
        max_leverage=max_leverage,
    )
