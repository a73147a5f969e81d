"""The simulated exchange behind the HTTP layer: a paper engine on a feed, under one lock.

Its clock is the feed venue's clock. Before serving anything it replays into
the engine the bars that closed since the last request, so however the feed's
clock is moved (`advance` here, or the trading cycle advancing its own
venue), orders fill in step with it and never ahead of it.

It reads its behaviour switches (partial stop fills, wrong-side stops, late
fill reports) from the `Faults` it shares with the HTTP layer. The `*_by_hand`
methods change the account behind a client's back, as a person on Kraken's web
interface would: orders placed without the bot's client ids, cancels, positions
opened or closed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.errors import DataError
from core.orders import OrderRequest, OrderSide, OrderType
from core.precision import round_away
from venues.base import MarketDataVenue
from venues.kraken_sim import render
from venues.kraken_sim.faults import Faults, WrongSideStops
from venues.kraken_sim.instruments import (
    KrakenMarket,
    MarketCatalogue,
    instrument_json,
    ticker_json,
)
from venues.paper.config import PaperConfig
from venues.paper.driver import TIMEFRAMES, FeedDriver, FundingSchedule, timeframe_of
from venues.paper.engine import PaperEngine
from venues.paper.errors import OrderRejectedError
from venues.paper.matching import Bar, is_triggered
from venues.paper.orders import CancelOutcome, Execution, WorkingOrder

CANDLES_PER_PAGE = 2000
FILLS_PER_PAGE = 100
ACCOUNT_LOG_COUNT = 500  # entries per account-log answer when the client asks for no count
ACCOUNT_UID = "f3b6c1de-5a0e-4b8e-9d0a-5b1c2d3e4f50"
TRIGGER_SIGNALS = ("mark", "index", "last")  # sendorder's triggerSignal enum
MARKET_PROTECTION = 0.01  # Kraken turns mkt into ioc with a limit this far past the mark
SEND_TYPES = {
    "lmt": OrderType.LIMIT,
    "post": OrderType.LIMIT,
    "ioc": OrderType.LIMIT,
    "mkt": OrderType.MARKET,
    "stp": OrderType.STOP,
    "take_profit": OrderType.TAKE_PROFIT,
}


class ApiError(Exception):
    """A request Kraken answers with {"result": "error", "error": code}."""

    def __init__(self, code: str, http_status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.http_status = http_status


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """sendorder's parameters, already typed; values the client omitted are None."""

    order_type: str
    symbol: str
    side: str
    size: float | None
    limit_price: float | None = None
    stop_price: float | None = None
    cli_ord_id: str | None = None
    reduce_only: bool = False
    trigger_signal: str = "mark"


class SimExchange:
    """Paper engine + feed + Kraken ids. Every public method is atomic under one lock."""

    def __init__(
        self,
        feed: MarketDataVenue,
        paper: PaperConfig | None = None,
        *,
        timeframe: str | None = None,
        funding: FundingSchedule | None = None,
        closed_order_retention: timedelta | None = timedelta(seconds=5),
        faults: Faults | None = None,
    ) -> None:
        """timeframe: the bar the engine moves by (default: the feed clock's step).
        closed_order_retention: how long /orders/status still reports a closed order,
        in exchange time (Kraken: 5 s); None keeps reporting every order.
        faults: where the behaviour switches are read (the server's Faults)."""
        if timeframe is None:
            step = getattr(feed.clock, "step", None)
            if step is None:
                raise ValueError("the feed's clock has no step: pass timeframe= (e.g. '1h')")
            timeframe = timeframe_of(step)
        self.feed = feed
        self.lock = threading.RLock()
        self.catalogue = MarketCatalogue()
        for market in feed.markets():
            self.catalogue.add(market)
        self.engine = PaperEngine([m.info for m in self.catalogue], paper)
        self.driver = FeedDriver(
            self.engine, feed, timeframe, symbols=self.catalogue.feed_to_engine(), funding=funding
        )
        self.closed_order_retention = closed_order_retention
        self.faults = faults or Faults()
        self._signals: dict[str, str] = {}
        self._tickers: tuple[datetime, dict[str, object]] | None = None
        self._fills_requests = 0  # /fills requests answered, for late fill reports
        self._fill_seen_at: list[int] = []  # per execution: the /fills request that first saw it
        self.driver.prime()

    # -- time -------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.feed.clock.now()

    def advance(self, bars: int = 1) -> datetime:
        """Move the feed's clock `bars` bars and fill what they reach; returns the new time.
        Refuses a feed whose clock cannot be advanced (a wall clock)."""
        advance = getattr(self.feed.clock, "advance", None)
        if advance is None:
            raise TypeError("the feed's clock cannot be advanced (not a SimulatedClock)")
        with self.lock:
            for _ in range(bars):
                advance()
            self._sync()
            return self.now()

    @contextmanager
    def session(self) -> Iterator[datetime]:
        """Hold the lock with the engine caught up to the feed's clock; yields the time."""
        with self.lock:
            self._sync()
            yield self.now()

    def _sync(self) -> None:
        self._apply_switches()
        done = self.driver.done_until
        if done is not None and self.now() <= done:
            return
        for feed_market in self.feed.markets():
            if self.catalogue.by_feed(feed_market.symbol) is None:
                market = self.catalogue.add(feed_market)
                self.engine.add_market(market.info)
                self.driver.add_market(market.feed_symbol, market.info.symbol)
        self.driver.catch_up()

    def set_partial_fills(
        self, max_fill_fraction: float = 1.0, volume_participation: float | None = None
    ) -> None:
        with self.lock:
            self.engine.set_partial_fills(max_fill_fraction, volume_participation)

    def _apply_switches(self) -> None:
        """Hand the partial-stop switch to the engine before it fills anything."""
        switches = self.faults.switches
        config = self.engine.config
        if (config.trigger_fill_fraction, config.triggered_remainder) != (
            switches.stop_fill_fraction,
            switches.stop_remainder.value,
        ):
            self.engine.set_trigger_fills(
                switches.stop_fill_fraction, switches.stop_remainder.value
            )

    # -- market data ----------------------------------------------------------------------

    def instruments(self) -> list[dict[str, object]]:
        with self.session():
            return [instrument_json(m) for m in self.catalogue]

    def tickers(self) -> list[dict[str, object]]:
        with self.session() as now:
            if self._tickers is None or self._tickers[0] != now:
                feed_tickers = self.feed.tickers()
                rows = {
                    m.kraken_id: ticker_json(
                        m, feed_tickers.get(m.feed_symbol), self.engine.mark(m.info.symbol), now
                    )
                    for m in self.catalogue
                }
                self._tickers = (now, rows)
            return list(self._tickers[1].values())  # type: ignore[arg-type]

    def candles(
        self, kraken_id: str, price_type: str, interval: str, start: int | None, end: int | None
    ) -> dict[str, object]:
        """Closed candles with start <= time <= end (seconds), at most 2000, oldest first."""
        if interval not in TIMEFRAMES:
            raise ApiError("invalidArgument")
        step = TIMEFRAMES[interval]
        with self.session() as now:
            market = self._market(kraken_id)
            to = datetime.fromtimestamp(end, UTC) if end is not None else now
            since = (
                datetime.fromtimestamp(start, UTC)
                if start is not None
                else to - step * CANDLES_PER_PAGE
            )
            try:
                frame = self.feed.ohlcv(market.feed_symbol, interval, since, min(to + step, now))
            except DataError as exc:
                raise ApiError("invalidArgument") from exc
        more = frame.height > CANDLES_PER_PAGE
        frame = frame.head(CANDLES_PER_PAGE)
        with_volume = price_type == "trade"
        candles = [
            {
                "time": int(row["ts"].timestamp() * 1000),
                "open": str(row["open"]),
                "high": str(row["high"]),
                "low": str(row["low"]),
                "close": str(row["close"]),
                "volume": row["volume"] if with_volume else 0,
            }
            for row in frame.iter_rows(named=True)
        ]
        return {"candles": candles, "more_candles": more}

    # -- orders -----------------------------------------------------------------------

    def place(self, spec: OrderSpec) -> dict[str, object]:
        """sendStatus for one order: placed (with its events) or the rejection status.
        Raises ApiError for an unknown symbol."""
        with self.session() as now:
            market = self._market(spec.symbol)
            received = render.iso(now)
            problem = self._problem(spec, market)
            if problem is not None:
                return {"status": problem, "receivedTime": received, "orderEvents": []}
            request = OrderRequest(
                symbol=market.info.symbol,
                side=OrderSide(spec.side),
                type=SEND_TYPES[spec.order_type],
                size=spec.size or 0.0,
                client_id=spec.cli_ord_id or "no-client-id",
                price=spec.limit_price,
                trigger_price=spec.stop_price,
                reduce_only=spec.reduce_only,
            )
            mark = self.engine.mark(market.info.symbol)
            refusal = self._wrong_side(request, mark)
            if refusal is not None:
                return {"status": refusal, "receivedTime": received, "orderEvents": []}
            try:
                placement = self.engine.submit(
                    request, now, record_client_id=spec.cli_ord_id is not None
                )
            except OrderRejectedError as exc:
                return {"status": exc.reason.value, "receivedTime": received, "orderEvents": []}
            order_id = placement.order.venue_order_id
            self._signals[order_id] = spec.trigger_signal
            order = self._working(order_id)
            if spec.order_type == "ioc" and order.is_open:
                self.engine.cancel(order_id, now)  # immediate-or-cancel: no resting remainder
            protection = self._protection(market, request.side, mark)
            events: list[dict[str, object]] = [
                render.execution_event(e, order, market.kraken_id, protection)
                for e in placement.executions
            ]
            if order.is_open:
                events.append(render.place_event(order, market.kraken_id, spec.trigger_signal))
            return {
                "order_id": order_id,
                "status": "placed",
                "receivedTime": received,
                "orderEvents": events,
            }

    def cancel(self, order_id: str | None, cli_ord_id: str | None) -> dict[str, object]:
        """cancelStatus for one order, found by order_id, else by cliOrdId."""
        with self.session() as now:
            if order_id is not None:
                result = self.engine.cancel(order_id, now)
            elif cli_ord_id is not None:
                result = self.engine.cancel_by_client_id(cli_ord_id, now)
            else:
                raise ApiError("requiredArgumentMissing")
            status: dict[str, object] = {
                "status": result.outcome.value,
                "order_id": result.order.venue_order_id if result.order else order_id,
                "receivedTime": render.iso(now),
                "orderEvents": [],
            }
            if cli_ord_id is not None:
                status["cliOrdId"] = cli_ord_id
            if result.outcome is CancelOutcome.CANCELLED and result.order is not None:
                order = self._working(result.order.venue_order_id)
                status["orderEvents"] = [render.cancel_event(order, order.market.venue_symbol)]
            return status

    def cancel_all(self, kraken_id: str | None) -> dict[str, object]:
        with self.session() as now:
            symbol = self._market(kraken_id).info.symbol if kraken_id else None
            cancelled = [
                self._working(o.venue_order_id) for o in self.engine.cancel_all(symbol, now)
            ]
            return {
                "receivedTime": render.iso(now),
                "cancelOnly": kraken_id or "all",
                "status": "cancelled" if cancelled else "noOrdersToCancel",
                "cancelledOrders": [
                    {"order_id": o.venue_order_id, "cliOrdId": o.client_id} for o in cancelled
                ],
                "orderEvents": [render.cancel_event(o, o.market.venue_symbol) for o in cancelled],
            }

    def open_orders(self) -> list[dict[str, object]]:
        with self.session():
            return [
                render.open_order_json(w, w.market.venue_symbol, self._signal(w))
                for w in (self._working(o.venue_order_id) for o in self.engine.open_orders())
            ]

    def order_statuses(
        self, order_ids: list[str], cli_ord_ids: list[str]
    ) -> list[dict[str, object]]:
        """Open orders, and closed ones within the retention, among those asked for."""
        with self.session() as now:
            found: dict[str, WorkingOrder] = {}
            for order_id in order_ids:
                order = self.engine.working_order(order_id)
                if order is not None:
                    found[order_id] = order
            for cli in cli_ord_ids:
                snapshot = self.engine.order_by_client_id(cli)
                if snapshot is not None:
                    found[snapshot.venue_order_id] = self._working(snapshot.venue_order_id)
            keep = self.closed_order_retention
            return [
                render.status_json(o, o.market.venue_symbol, self._signal(o))
                for o in found.values()
                if o.is_open or keep is None or o.updated >= now - keep
            ]

    # -- account ----------------------------------------------------------------------

    def fills(self, before: datetime | None) -> list[dict[str, object]]:
        """The latest 100 reported fills (before `before` when given), newest first. A fill
        is reported once the late-fill switch's delay has passed (at once by default)."""
        with self.session() as now:
            executions = [
                e for e in self._reported_executions(now) if before is None or e.fill.ts < before
            ]
            rows = []
            for execution in reversed(executions[-FILLS_PER_PAGE:]):
                market = self.catalogue.by_symbol(execution.fill.symbol)
                assert market is not None
                rows.append(render.fill_json(execution, market.kraken_id))
            return rows

    def _reported_executions(self, now: datetime) -> list[Execution]:
        """The executions /fills may show in this request (counts the request)."""
        executions = self.engine.executions()
        request = self._fills_requests
        self._fills_requests += 1
        self._fill_seen_at += [request] * (len(executions) - len(self._fill_seen_at))
        switches = self.faults.switches
        bars = self.driver.step * switches.fill_delay_bars
        return [
            e
            for e, seen in zip(executions, self._fill_seen_at, strict=True)
            if request - seen >= switches.fill_delay_requests and e.fill.ts + bars <= now
        ]

    def account_log(
        self,
        *,
        since: datetime | None = None,
        before: datetime | None = None,
        from_id: int | None = None,
        to_id: int | None = None,
        ascending: bool = False,
        count: int | None = None,
        info: str | None = None,
    ) -> dict[str, object]:
        """GET /account-log: two entries per execution (cash and position legs), newest
        first unless ascending; since <= date < before, from_id <= id <= to_id, at most
        `count` (default 500). Funding payments are not booked here (not modelled)."""
        with self.session():
            rows: list[dict[str, object]] = []
            for number, execution in enumerate(self.engine.executions()):
                market = self.catalogue.by_symbol(execution.fill.symbol)
                assert market is not None
                ts = execution.fill.ts
                if (since is not None and ts < since) or (before is not None and ts >= before):
                    continue
                rows += render.account_log_rows(execution, market.kraken_id, number)
            rows = [
                r
                for r in rows
                if (from_id is None or int(r["id"]) >= from_id)  # type: ignore[call-overload]
                and (to_id is None or int(r["id"]) <= to_id)  # type: ignore[call-overload]
                and (info is None or r["info"] == info)
            ]
            rows.sort(key=lambda r: int(r["id"]), reverse=not ascending)  # type: ignore[call-overload]
            return {"accountUid": ACCOUNT_UID, "logs": rows[: count or ACCOUNT_LOG_COUNT]}

    # -- changes by hand ------------------------------------------------------------------

    def place_by_hand(
        self,
        symbol: str,
        side: str,
        size: float,
        *,
        order_type: str = "mkt",
        limit_price: float | None = None,
        stop_price: float | None = None,
        reduce_only: bool = False,
        cli_ord_id: str | None = None,
    ) -> dict[str, object]:
        """An order placed on the account outside the bot (no client id unless given), as
        sendorder answers it. symbol: unified (BTC/USD:USD) or Kraken's id (PF_XBTUSD)."""
        spec = OrderSpec(
            order_type=order_type,
            symbol=self._kraken_id(symbol),
            side=side,
            size=size,
            limit_price=limit_price,
            stop_price=stop_price,
            cli_ord_id=cli_ord_id,
            reduce_only=reduce_only,
        )
        return self.place(spec)

    def cancel_by_hand(self, order_id: str) -> dict[str, object]:
        """Cancel one order outside the bot, as cancelorder answers it."""
        return self.cancel(order_id, None)

    def cancel_all_by_hand(self, symbol: str | None = None) -> dict[str, object]:
        """Cancel every open order (of one market) outside the bot."""
        return self.cancel_all(self._kraken_id(symbol) if symbol else None)

    def open_position_by_hand(self, symbol: str, side: str, size: float) -> dict[str, object]:
        """Open (or add to) a position at market outside the bot."""
        return self.place_by_hand(symbol, side, size)

    def close_position_by_hand(self, symbol: str) -> dict[str, object] | None:
        """Close the whole position of one market at market outside the bot (reduce-only);
        None when it is flat."""
        with self.session():
            market = self._market(self._kraken_id(symbol))
            held = next(
                (p for p in self.engine.positions() if p.symbol == market.info.symbol), None
            )
            if held is None:
                return None
            side = "sell" if held.side.value == "long" else "buy"
            return self.place_by_hand(market.kraken_id, side, held.size, reduce_only=True)

    def _kraken_id(self, symbol: str) -> str:
        by_symbol = self.catalogue.by_symbol(symbol)
        return by_symbol.kraken_id if by_symbol is not None else symbol

    def positions(self) -> list[dict[str, object]]:
        with self.session():
            rows = []
            for report in self.engine.positions():
                market = self.catalogue.by_symbol(report.symbol)
                assert market is not None
                opened = self.engine.position_opened(report.symbol)
                rows.append(render.position_json(report, market.kraken_id, opened))
            return rows

    def accounts(self) -> dict[str, object]:
        with self.session():
            return render.accounts_json(self.engine)

    # -- internals ----------------------------------------------------------------------

    def _market(self, kraken_id: str) -> KrakenMarket:
        market = self.catalogue.by_id(kraken_id)
        if market is None:
            raise ApiError("contractNotFound")
        return market

    def _working(self, order_id: str) -> WorkingOrder:
        order = self.engine.working_order(order_id)
        assert order is not None, order_id
        return order

    def _signal(self, order: WorkingOrder) -> str:
        return self._signals.get(order.venue_order_id, "mark")

    def _problem(self, spec: OrderSpec, market: KrakenMarket) -> str | None:
        """The sendStatus that refuses this order before it reaches the engine, if any."""
        if spec.order_type not in SEND_TYPES:
            return "invalidOrderType"
        kind = SEND_TYPES[spec.order_type]
        if spec.side not in ("buy", "sell"):
            return "invalidSide"
        if spec.size is None or not spec.size > 0:
            return "invalidSize"
        if kind is OrderType.LIMIT and spec.limit_price is None:
            return "invalidPrice"
        if kind in (OrderType.STOP, OrderType.TAKE_PROFIT) and spec.stop_price is None:
            return "invalidPrice"
        if spec.cli_ord_id is not None and len(spec.cli_ord_id) > 100:
            return "clientOrderIdTooLong"
        if spec.order_type in ("post", "ioc"):
            mark = self.engine.mark(market.info.symbol)
            assert spec.limit_price is not None
            crosses = mark is not None and (
                spec.limit_price >= mark if spec.side == "buy" else spec.limit_price <= mark
            )
            if spec.order_type == "post" and crosses:
                return "postWouldExecute"
            if spec.order_type == "ioc" and not crosses:
                return "iocWouldNotExecute"
        return None

    def _wrong_side(self, request: OrderRequest, mark: float | None) -> str | None:
        """The refusal of a trigger order the mark has already passed, when switched on."""
        switches = self.faults.switches
        if (
            switches.wrong_side_stops is not WrongSideStops.REJECT
            or request.type not in (OrderType.STOP, OrderType.TAKE_PROFIT)
            or request.trigger_price is None
            or mark is None
        ):
            return None
        at_mark = Bar(self.now(), mark, mark, mark, mark)
        if is_triggered(request.type, request.side, request.trigger_price, at_mark):
            return switches.wrong_side_reason
        return None

    @staticmethod
    def _protection(market: KrakenMarket, side: OrderSide, mark: float | None) -> float | None:
        if mark is None:
            return None
        up = side is OrderSide.BUY
        band = 1 + MARKET_PROTECTION if up else 1 - MARKET_PROTECTION
        return round_away(mark * band, market.info.tick_size, up=up)
