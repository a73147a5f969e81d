"""A fake MarketDataVenue over fixed hourly candles, shared by the simulator-backed tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal

import polars as pl

from core.market import MarketInfo, Ticker
from venues.base import SimulatedClock

H = timedelta(hours=1)


def hourly_candles(
    closes: Sequence[float],
    wick: float,
    start: datetime,
    volume: float | Sequence[float] = 10.0,
) -> pl.DataFrame:
    """Hourly candles from `start`: each opens at the previous close (the first at its own)
    and wicks `wick` beyond its body; `volume` is one value for every bar or one per bar."""
    closes = list(closes)
    opens = [closes[0], *closes[:-1]]
    volumes = [float(volume)] * len(closes) if isinstance(volume, float | int) else list(volume)
    return pl.DataFrame(
        {
            "ts": [start + i * H for i in range(len(closes))],
            "open": opens,
            "high": [max(o, c) + wick for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) - wick for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": volumes,
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))


class CandleFeed:
    """A MarketDataVenue over fixed hourly frames on a SimulatedClock (one bar a step).

    ohlcv returns closed candles only (ts + 1h <= min(until, now)); a ticker's last is the
    last closed close, its bid/ask `half_spread` either side ("tick": one tick of the market).
    """

    def __init__(
        self,
        markets: Iterable[MarketInfo],
        frames: Mapping[str, pl.DataFrame],
        clock_start: datetime,
        *,
        name: str = "candles",
        half_spread: float | Literal["tick"] = 0.0,
    ) -> None:
        self.name = name
        self._markets = list(markets)
        self.frames = dict(frames)
        self.clock = SimulatedClock(clock_start, H)
        self.half_spread = half_spread

    def markets(self) -> list[MarketInfo]:
        return list(self._markets)

    def tickers(self) -> dict[str, Ticker]:
        ticks = {m.symbol: m.tick_size for m in self._markets}
        out = {}
        for symbol, frame in self.frames.items():
            last = float(frame.filter(pl.col("ts") + H <= self.clock.now())["close"][-1])
            half = ticks[symbol] if self.half_spread == "tick" else self.half_spread
            out[symbol] = Ticker(symbol, last, last - half, last + half, 1e9)
        return out

    def ohlcv(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> pl.DataFrame:
        until = min(until, self.clock.now())
        frame = self.frames[symbol]
        return frame.filter((pl.col("ts") + H <= until) & (pl.col("ts") >= since))

    def close(self) -> None:
        """Nothing to release."""
