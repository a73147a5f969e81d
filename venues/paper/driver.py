"""Feed a paper engine from a market-data venue: every closed bar, in time order, once.

The driver follows the feed's clock: whoever advances it (a test, the cycle,
`RunningSim.advance`), the next `catch_up` replays the bars that closed since
the last one into the engine, across markets in time order, with funding
settlements interleaved at their timestamps.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from core.errors import DataError, VenueRetryableError
from venues.base import OHLCV_COLUMNS, CandleRow, CandleRows, MarketDataVenue
from venues.paper.engine import PaperEngine
from venues.paper.intrabar import LowerTimeframes
from venues.paper.orders import Execution

log = logging.getLogger("smc_trader.paper")

TIMEFRAMES = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
    "1w": timedelta(weeks=1),
}


def timeframe_of(step: timedelta) -> str:
    """The timeframe name of a bar length; refuses lengths Kraken has no candles for."""
    for name, length in TIMEFRAMES.items():
        if length == step:
            return name
    raise ValueError(f"no Kraken timeframe lasts {step}; use one of {sorted(TIMEFRAMES)}")


@dataclass(frozen=True, slots=True)
class FundingSchedule:
    """Funding rates per feed symbol, ascending by time."""

    rates: Mapping[str, Sequence[tuple[datetime, float]]]

    def between(self, symbol: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """Rates with start < ts <= end (the rates are ascending: two binary searches)."""
        rates = self.rates.get(symbol, ())
        lo = bisect_right(rates, start, key=lambda r: r[0])
        hi = bisect_right(rates, end, key=lambda r: r[0])
        return list(rates[lo:hi])

    @classmethod
    def from_binance_dir(cls, data_dir: Path, bases: Mapping[str, str]) -> FundingSchedule:
        """Read {BASE}USDT_funding.parquet (ts, funding_rate; every 8 h) for each feed symbol.

        bases maps feed symbol -> base asset (BTC). Markets without a file get no funding.
        """
        rates: dict[str, list[tuple[datetime, float]]] = {}
        for symbol, base in bases.items():
            path = data_dir / f"{base}USDT_funding.parquet"
            if not path.exists():
                continue
            frame = pl.read_parquet(path).sort("ts")
            pairs = zip(frame["ts"].to_list(), frame["funding_rate"].to_list(), strict=True)
            rates[symbol] = list(pairs)
        return cls(rates)


class FeedDriver:
    """Moves one engine along one feed. Not thread-safe: callers serialise access."""

    def __init__(
        self,
        engine: PaperEngine,
        feed: MarketDataVenue,
        timeframe: str,
        *,
        symbols: Mapping[str, str] | None = None,
        funding: FundingSchedule | None = None,
        lower: LowerTimeframes | None = None,
    ) -> None:
        """symbols maps feed symbol -> engine symbol (identity when None); `lower` holds
        lower-timeframe candles (engine symbol keys) that order a bar reaching both a stop
        and a take-profit (venues/paper/intrabar.py); without them the stop fills first."""
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"timeframe {timeframe!r} unknown; use one of {sorted(TIMEFRAMES)}")
        self.engine = engine
        self.feed = feed
        self.timeframe = timeframe
        self.step = TIMEFRAMES[timeframe]
        engine_symbols = {m.symbol for m in engine.markets()}
        self.symbols = dict(symbols) if symbols else {s: s for s in engine_symbols}
        missing = sorted(set(self.symbols.values()) - engine_symbols)
        if missing:
            raise ValueError(f"FeedDriver: engine has no markets {missing}")
        self.funding = funding
        self.lower = lower
        self._rows_of = feed.candle_rows if isinstance(feed, CandleRows) else None
        self._done_until: datetime | None = None

    @property
    def done_until(self) -> datetime | None:
        return self._done_until

    def resume(self, done_until: datetime) -> None:
        """Continue a restored engine: bars up to `done_until` were already replayed into it."""
        self._done_until = done_until

    def prime(self) -> None:
        """Give the engine its first prices: the last closed bar before the feed's now."""
        now = self.feed.clock.now()
        for feed_symbol, symbol in self.symbols.items():
            self._prime_one(feed_symbol, symbol, now)
        self._done_until = now

    def add_market(self, feed_symbol: str, engine_symbol: str) -> None:
        """Follow one more market (already added to the engine), primed at its last bar."""
        if feed_symbol in self.symbols:
            return
        self.symbols[feed_symbol] = engine_symbol
        if self._done_until is not None:
            self._prime_one(feed_symbol, engine_symbol, self._done_until)

    def _prime_one(self, feed_symbol: str, symbol: str, now: datetime) -> None:
        bars = self._bars(feed_symbol, now - self.step * 3, now)
        if bars:
            _, *ohlcv = bars[-1]
            self.engine.on_bar(symbol, now, *ohlcv)

    def catch_up(self) -> list[Execution]:
        """Replay into the engine every bar closed since the last call; returns the fills."""
        now = self.feed.clock.now()
        if self._done_until is None:
            self.prime()
            return []
        if now <= self._done_until:
            return []
        start = self._done_until
        events: list[tuple[datetime, int, str, tuple[float, ...]]] = []
        active = self._active()
        for feed_symbol, symbol in self.symbols.items():
            bars = self._bars(feed_symbol, start, now)
            if symbol not in active and len(bars) > 1:
                # No order and no position: a bar can only move the mark, and funding pays
                # nothing; the last bar leaves the engine exactly where all of them would.
                bars = bars[-1:]
            for ts, *ohlcv in bars:
                events.append((ts + self.step, 0, symbol, tuple(ohlcv)))
            if self.funding is not None and symbol in active:
                for ts, rate in self.funding.between(feed_symbol, start, now):
                    events.append((ts, 1, symbol, (rate,)))  # after the bar closing at ts
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        executions: list[Execution] = []
        for ts, kind, symbol, values in events:
            if kind == 0:
                executions += self._on_bar(symbol, ts, values)
            else:
                self.engine.apply_funding(symbol, values[0], ts)
        self._done_until = now
        return executions

    def _on_bar(
        self, symbol: str, close_time: datetime, values: tuple[float, ...]
    ) -> list[Execution]:
        """One bar into the engine; walked as its lower-timeframe candles instead when it
        reaches a stop and a take-profit and those candles cover the whole bar."""
        sub = self.lower.markets.get(symbol) if self.lower is not None else None
        if sub is not None and self.engine.stop_and_tp_reached(symbol, close_time, *values[:4]):
            candles = sub.within(close_time - self.step, close_time)
            if len(candles) * sub.step == self.step:
                executions: list[Execution] = []
                for ts, *ohlcv in candles:  # each candle stamps its fills at its own close
                    executions += self.engine.on_bar(symbol, ts, *ohlcv)
                return executions
            log.info(
                "LOWER_TIMEFRAME_INCOMPLETE symbol=%s bar closing %s: %d of %d %s candles; "
                "the stop fills first", symbol, close_time, len(candles),
                self.step // sub.step, sub.timeframe,
            )
        return self.engine.on_bar(symbol, close_time, *values)

    def _active(self) -> set[str]:
        """Engine markets with a working order or a position: only they can fill or pay."""
        held = {p.symbol for p in self.engine.positions()}
        return held | {o.symbol for o in self.engine.open_orders()}

    def _bars(self, feed_symbol: str, since: datetime, until: datetime) -> list[CandleRow]:
        """The feed's closed bars as (ts, open, high, low, close, volume) tuples: from its
        `candle_rows` where it offers them (venues.base.CandleRows), else from its `ohlcv`
        frame."""
        try:
            if self._rows_of is not None:
                return self._rows_of(feed_symbol, self.timeframe, since, until)
            frame = self.feed.ohlcv(feed_symbol, self.timeframe, since, until)
            return frame.select(OHLCV_COLUMNS).rows() if frame.height else []
        except (DataError, VenueRetryableError) as exc:
            # one market without data must not stop the others from filling
            log.warning("PAPER_FEED_GAP symbol=%s since=%s error=%s", feed_symbol, since, exc)
            return []
