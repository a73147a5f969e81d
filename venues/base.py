"""The venue port: what every market-data venue offers the cycle.

Implementations: `sim` (seeded synthetic market), `replay` (stored candles),
`kraken` (ccxt krakenfutures, live exchange, demo or a local simulator).
Orders arrive on this port in a later step (execution).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import polars as pl

OHLCV_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class Clock(Protocol):
    """Where decision code gets the time. Never `datetime.now()` in decision code."""

    def now(self) -> datetime: ...


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

    def resume_after(self, last: datetime | None) -> None:
        """Continue after the last recorded cycle, so a restart never replays time."""
        if last is not None and last + self.step > self._now:
            self._now = last + self.step


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """One perpetual as the venue defines it, with the precision orders must respect."""

    symbol: str  # unified ccxt symbol, e.g. BTC/USD:USD
    venue_symbol: str  # venue id, e.g. PF_XBTUSD
    base: str  # base asset as the registry names it (BTC, never XBT)
    settle: str
    contract_size: float
    tick_size: float
    lot_size: float
    min_size: float
    max_leverage: float


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    last: float | None
    bid: float | None
    ask: float | None
    volume_24h_usd: float | None


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
