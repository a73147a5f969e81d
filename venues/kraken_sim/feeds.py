"""A feed moved in time: the simulator can present a replayed past as the present hour.

A client that reads the wall clock (the kraken venue asks for candles up to
"now") sees nothing from a feed living in 2025. ShiftedFeed adds one fixed
offset, a whole number of bars, to every time the feed shows and subtracts it
from every time it is asked for; prices and bars are unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from core.market import MarketInfo, Ticker
from venues.base import Clock, MarketDataVenue
from venues.paper.driver import FundingSchedule


class ShiftedClock:
    """The inner clock plus an offset; advancing it advances the inner clock."""

    def __init__(self, inner: Clock, offset: timedelta) -> None:
        self.inner = inner
        self.offset = offset

    @property
    def step(self) -> timedelta:
        return self.inner.step  # type: ignore[attr-defined,no-any-return]

    def now(self) -> datetime:
        return self.inner.now() + self.offset

    def advance(self) -> datetime:
        self.inner.advance()  # type: ignore[attr-defined]
        return self.now()


class ShiftedFeed:
    """A MarketDataVenue showing `feed` `offset` later."""

    def __init__(self, feed: MarketDataVenue, offset: timedelta) -> None:
        self.feed = feed
        self.offset = offset
        self.name = f"{feed.name}-shifted"
        self.clock = ShiftedClock(feed.clock, offset)

    @classmethod
    def to_present(cls, feed: MarketDataVenue, now: datetime) -> ShiftedFeed:
        """The feed shifted so its clock reads the start of the current bar of `now`.
        Refuses a feed whose clock has no step (it must be a SimulatedClock)."""
        step = getattr(feed.clock, "step", None)
        if step is None:
            raise ValueError(f"feed {feed.name!r} has no bar step; it cannot be shifted to now")
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        aligned = epoch + ((now - epoch) // step) * step
        return cls(feed, aligned - feed.clock.now())

    def markets(self) -> list[MarketInfo]:
        return self.feed.markets()

    def tickers(self) -> dict[str, Ticker]:
        return self.feed.tickers()

    def ohlcv(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> pl.DataFrame:
        frame = self.feed.ohlcv(symbol, timeframe, since - self.offset, until - self.offset)
        return frame.with_columns(pl.col("ts") + self.offset)

    def shift_funding(self, funding: FundingSchedule) -> FundingSchedule:
        """The same rates at shifted times."""
        return FundingSchedule(
            {s: [(ts + self.offset, r) for ts, r in rates] for s, rates in funding.rates.items()}
        )

    def close(self) -> None:
        self.feed.close()
