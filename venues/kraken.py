"""Kraken Futures through ccxt's `krakenfutures` client: public market data.

The live exchange by default, the demo exchange with `sandbox=True`, or any
Kraken-Futures-compatible server (our simulator) with `api_url`. ccxt errors are
translated here, once, into the project's hierarchy; nothing above this module
catches a ccxt exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import ccxt
import polars as pl

from core.errors import (
    DataError,
    DuplicateClientIdError,
    RateLimitedError,
    VenueError,
    VenueRetryableError,
    VenueUnavailableError,
)
from schemas.config import TIMEFRAME_SECONDS
from venues.base import OHLCV_COLUMNS, Clock, MarketInfo, Ticker, WallClock, empty_ohlcv

log = logging.getLogger("smc_trader.kraken")

T = TypeVar("T")
API_URL_KEYS = ("public", "private", "charts", "history", "feeschedules")
PAGE_LIMIT = 2000

# Most specific first: ccxt's hierarchy nests (RateLimitExceeded is a NetworkError).
ERROR_MAP: tuple[tuple[type[Exception], type[Exception]], ...] = (
    (ccxt.RateLimitExceeded, RateLimitedError),
    (ccxt.DDoSProtection, RateLimitedError),
    (ccxt.OnMaintenance, VenueUnavailableError),
    (ccxt.ExchangeNotAvailable, VenueUnavailableError),
    (ccxt.RequestTimeout, VenueRetryableError),
    (ccxt.NetworkError, VenueRetryableError),
    (ccxt.BadSymbol, VenueError),
    (ccxt.AuthenticationError, VenueError),
    (ccxt.PermissionDenied, VenueError),
    (ccxt.InsufficientFunds, VenueError),
    (ccxt.DuplicateOrderId, DuplicateClientIdError),  # before InvalidOrder, its parent
    (ccxt.InvalidOrder, VenueError),
    (ccxt.OrderNotFound, VenueError),
    (ccxt.ExchangeError, VenueError),
    (ccxt.BaseError, VenueError),
)


def translate(exc: Exception, what: str) -> Exception:
    """The project error for a ccxt exception, naming the call that failed."""
    for ccxt_type, ours in ERROR_MAP:
        if isinstance(exc, ccxt_type):
            return ours(f"kraken {what}: {type(exc).__name__}: {exc}")
    return exc


def point_at(exchange: ccxt.krakenfutures, base_url: str) -> None:
    """Send every ccxt API family to base_url (a local Kraken-Futures simulator)."""
    base = base_url.rstrip("/")
    api = dict(exchange.urls["api"])
    api["public"] = f"{base}/derivatives/api/"
    api["private"] = f"{base}/derivatives/api/"
    api["charts"] = f"{base}/api/charts/"
    api["history"] = f"{base}/api/history/"
    api["feeschedules"] = f"{base}/api/feeschedules/"
    exchange.urls["api"] = api


def make_client(
    *,
    sandbox: bool = False,
    api_url: str | None = None,
    timeout_ms: int = 10_000,
    api_key: str | None = None,
    api_secret: str | None = None,
    rate_limit_ms: int | None = None,
) -> ccxt.krakenfutures:
    """A krakenfutures client. ccxt's own throttle (600 ms) stays on unless `rate_limit_ms`
    is given (our loopback simulator enforces Kraken's cost budget itself)."""
    options: dict[str, Any] = {"enableRateLimit": True, "timeout": timeout_ms}
    if rate_limit_ms is not None:
        options["rateLimit"] = rate_limit_ms
    if api_key and api_secret:
        options.update(apiKey=api_key, secret=api_secret)
    exchange = ccxt.krakenfutures(options)
    if sandbox:
        exchange.set_sandbox_mode(True)  # rewrites urls: must precede point_at
    if api_url:
        point_at(exchange, api_url)
    return exchange


def _max_leverage(info: dict[str, Any]) -> float:
    levels = info.get("marginLevels") or []
    try:
        initial = float(levels[0]["initialMargin"])
    except (IndexError, KeyError, TypeError, ValueError):
        return 1.0  # unknown schedule: assume no leverage rather than guess a high one
    return 1.0 / initial if initial > 0 else 1.0


class KrakenClient:
    """What every Kraken adapter shares: one ccxt client, errors translated on the way out."""

    exchange: ccxt.krakenfutures

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ccxt.BaseError as exc:
            raise translate(exc, what) from exc

    def _ensure_markets(self) -> None:
        if not self.exchange.markets:  # ccxt caches them once loaded
            self._call("load_markets", self.exchange.load_markets)


class KrakenVenue(KrakenClient):
    """Kraken Futures perpetuals through unmodified ccxt."""

    name = "kraken"

    def __init__(self, exchange: ccxt.krakenfutures, clock: Clock | None = None) -> None:
        self.exchange = exchange
        # The wall clock live; a simulator replaying stored data passes the feed's clock.
        self.clock = clock or WallClock()

    def markets(self) -> list[MarketInfo]:
        """Linear perpetuals (PF_*) that are tradeable; inverse and dated futures are skipped."""
        self._ensure_markets()
        out = []
        for m in self.exchange.markets.values():
            if not (m.get("swap") and m.get("linear") and m.get("active")):
                continue
            lot = m["precision"].get("amount")
            tick = m["precision"].get("price")
            if not lot or not tick:
                log.warning("%s: no precision data from the venue; not offered", m["symbol"])
                continue
            out.append(
                MarketInfo(
                    symbol=m["symbol"],
                    venue_symbol=m["id"],
                    base=m["base"],
                    settle=m["settle"],
                    contract_size=float(m.get("contractSize") or 1.0),
                    tick_size=float(tick),
                    lot_size=float(lot),
                    min_size=float(m["limits"]["amount"].get("min") or lot),
                    max_leverage=_max_leverage(m.get("info") or {}),
                )
            )
        return out

    def tickers(self) -> dict[str, Ticker]:
        self._ensure_markets()
        raw = self._call("fetch_tickers", self.exchange.fetch_tickers)
        out = {}
        for symbol, t in raw.items():
            last = t.get("last")
            quote_volume = t.get("quoteVolume")
            if quote_volume is None and t.get("baseVolume") is not None and last:
                quote_volume = float(t["baseVolume"]) * float(last)
            out[symbol] = Ticker(symbol, last, t.get("bid"), t.get("ask"), quote_volume)
        return out

    def ohlcv(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> pl.DataFrame:
        """Closed candles in [since, until), paginated by 2000, ascending and deduplicated."""
        self._ensure_markets()
        if symbol not in self.exchange.markets:
            raise DataError(symbol, "not a Kraken Futures market (load_markets did not list it)")
        step_ms = TIMEFRAME_SECONDS[timeframe] * 1000
        until = min(until, self.clock.now())
        cursor = int(since.timestamp() * 1000)
        end_ms = int(until.timestamp() * 1000)
        rows: list[list[float]] = []
        while cursor + step_ms <= end_ms:
            page = self._call(
                f"fetch_ohlcv {symbol} {timeframe}",
                lambda c=cursor: self.exchange.fetch_ohlcv(symbol, timeframe, c, PAGE_LIMIT),
            )
            page = [r for r in page if r[0] >= cursor]
            if not page:
                break
            rows.extend(page)
            cursor = int(page[-1][0]) + step_ms
        if not rows:
            return empty_ohlcv()
        frame = pl.DataFrame(rows, schema=list(OHLCV_COLUMNS), orient="row").with_columns(
            pl.from_epoch(pl.col("ts").cast(pl.Int64), time_unit="ms")
            .dt.replace_time_zone("UTC")
            .dt.cast_time_unit("us"),
            pl.col(list(OHLCV_COLUMNS[1:])).cast(pl.Float64),
        )
        step = timedelta(milliseconds=step_ms)
        return (
            frame.unique("ts", keep="last")
            .sort("ts")
            .filter(pl.col("ts") + step <= until.astimezone(UTC))
        )

    def close(self) -> None:
        """ccxt's sync client holds a requests session; release it."""
        session = getattr(self.exchange, "session", None)
        if session is not None:
            session.close()
