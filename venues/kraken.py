"""Kraken Futures through ccxt's `krakenfutures` client: public market data.

The live exchange by default, the demo exchange with `sandbox=True`, or any
Kraken-Futures-compatible server (our simulator) with `api_url`. ccxt errors are
translated here, once, into the project's hierarchy; nothing above this module
catches a ccxt exception.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
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
from venues.kraken_limits import CostLimiter, ReadRetry, ReadStats, request_cost

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


class KrakenRefusedError(VenueError):
    """Kraken answered an order with a status that placed nothing; `reason` is Kraken's word
    (`invalidPrice`, `wouldNotReducePosition`, `insufficientAvailableFunds`, ...). Not
    retryable as it is: fix the order, or choose another action."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


_FAILED_DUE_TO = re.compile(r"failed due to (\w+)")


def refusal_word(exc: Exception) -> str | None:
    """Kraken's status word in a ccxt order error ('... createOrder failed due to invalidPrice')."""
    found = _FAILED_DUE_TO.search(str(exc))
    return found.group(1) if found else None


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


class KrakenFuturesClient(ccxt.krakenfutures):
    """ccxt's krakenfutures, unmodified in what it sends and parses, plus what both Kraken
    adapters share through it: Kraken's cost budget kept on the client (every HTTP request
    waits in `limiter` first), the retry policy of reads and their statistics."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        limiter: CostLimiter | None = None,
        reads: ReadRetry | None = None,
    ) -> None:
        super().__init__(config)
        self.limiter = limiter
        self.reads = reads or ReadRetry()
        self.read_stats = ReadStats()

    def fetch2(
        self,
        path: str,
        api: Any = "public",
        method: str = "GET",
        params: Any = None,
        config: Any = None,
    ) -> Any:
        params = {} if params is None else params
        if self.limiter is not None:
            family = api[0] if isinstance(api, list | tuple) else str(api)
            self.limiter.acquire(request_cost(family, path, params))
        return super().fetch2(path, api, method, params, config or {})


def make_client(
    *,
    sandbox: bool = False,
    api_url: str | None = None,
    timeout_ms: int = 10_000,
    api_key: str | None = None,
    api_secret: str | None = None,
    rate_limit_ms: int | None = None,
    reads: ReadRetry | None = None,
    cost_budget: int | None = 450,
    cost_window_s: float = 10.0,
) -> KrakenFuturesClient:
    """A krakenfutures client. ccxt's own throttle (600 ms) stays on unless `rate_limit_ms`
    is given; on top of it Kraken's cost budget (`cost_budget` per `cost_window_s`, None
    for none) is kept on the client, so the bot's own traffic is never refused for it."""
    options: dict[str, Any] = {"enableRateLimit": True, "timeout": timeout_ms}
    if rate_limit_ms is not None:
        options["rateLimit"] = rate_limit_ms
    if api_key and api_secret:
        options.update(apiKey=api_key, secret=api_secret)
    limiter = CostLimiter(cost_budget, cost_window_s) if cost_budget else None
    exchange = KrakenFuturesClient(options, limiter=limiter, reads=reads)
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
    """What every Kraken adapter shares: one ccxt client, errors translated on the way out,
    reads retried with backoff inside Kraken's cost budget, writes sent exactly once."""

    exchange: ccxt.krakenfutures
    _rng = random.Random()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One attempt, errors translated: for writes (orders, cancels), never retried here."""
        try:
            return fn()
        except ccxt.BaseError as exc:
            raise translate(exc, what) from exc

    def _read(self, what: str, fn: Callable[[], T]) -> T:
        """A read, retried after transient failures (429, 5xx, timeouts) with backoff, at most
        `reads.attempts` tries in all; then the last error, naming the attempts and time."""
        policy: ReadRetry = getattr(self.exchange, "reads", None) or ReadRetry()
        stats: ReadStats | None = getattr(self.exchange, "read_stats", None)
        started = time.monotonic()
        if stats is not None:
            stats.calls += 1
        for attempt in range(1, policy.attempts + 1):
            if stats is not None:
                stats.attempts += 1
            try:
                return fn()
            except ccxt.BaseError as exc:
                error = translate(exc, what)
                if not isinstance(error, VenueRetryableError):
                    raise error from exc
                if attempt == policy.attempts:
                    if stats is not None:
                        stats.failures += 1
                    raise type(error)(
                        f"{error} (gave up after {attempt} attempts in "
                        f"{time.monotonic() - started:.1f} s)"
                    ) from exc
                wait = policy.delay(attempt, self._rng)
                log.info(
                    "KRAKEN_READ_RETRY what=%s attempt=%d wait=%.2fs: %s",
                    what,
                    attempt,
                    wait,
                    error,
                )
                if stats is not None:
                    stats.retries += 1
                    stats.backoff_s += wait
                time.sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")

    def _ensure_markets(self) -> None:
        if not self.exchange.markets:  # ccxt caches them once loaded
            self._read("load_markets", self.exchange.load_markets)

    def _market_symbol(self, kraken_id: object) -> str | None:
        """The unified symbol of a Kraken id (some answers spell it in lower case); None if
        the venue does not list it."""
        raw = str(kraken_id or "")
        by_id = self.exchange.markets_by_id or {}
        for candidate in (raw, raw.upper()):
            if candidate in by_id:
                return str(by_id[candidate][0]["symbol"])
        return None


TICKER_NUMBERS = ("last", "bid", "ask", "markPrice", "vol24h", "volumeQuote")


def _number(row: dict[str, Any], field: str) -> float | None:
    """A ticker field as a float; None when absent or null. Raises ValueError naming the
    field and value when it is present but not a finite number."""
    value = row.get(field)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"ticker field {field}={value!r} is not a number")
    return number


def ticker_from_row(row: dict[str, Any], symbol: str) -> Ticker:
    """Our Ticker from one raw /tickers row (numbers arrive as strings). The 24 h USD volume
    is Kraken's volumeQuote, else vol24h (contracts) times the last price."""
    try:
        values = {field: _number(row, field) for field in TICKER_NUMBERS}
    except ValueError as exc:
        return Ticker(symbol, None, None, None, None, problem=str(exc))
    last = values["last"] if values["last"] is not None else values["markPrice"]
    volume = values["volumeQuote"]
    if volume is None and values["vol24h"] is not None and last:
        volume = values["vol24h"] * last
    return Ticker(symbol, last, values["bid"], values["ask"], volume)


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
        """One ticker per listed market. A market whose ticker carries a value that is not a
        number gets a Ticker with no prices and `problem` naming the field and value: that
        market is marked, the others are unaffected."""
        self._ensure_markets()
        answer = self._read("fetch_tickers", self.exchange.publicGetTickers)
        out = {}
        for row in answer.get("tickers") or []:
            symbol = self._market_symbol(row.get("symbol")) if isinstance(row, dict) else None
            if symbol is not None:
                out[symbol] = ticker_from_row(row, symbol)
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
            page = self._read(
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
