"""The paper matching engine: orders, fills, positions and cash, driven by prices.

Pure and deterministic: no wall clock (every call takes its time), ids drawn
from a seeded generator, no I/O. Prices arrive per market as bars (`on_bar`)
or single prices (`on_price`).

Inside one bar the engine cannot know the path the price took, so it fills in
a fixed, conservative order:
  1. stop / take-profit orders triggered in an earlier bar and still working:
     a market remainder at the bar's open, a stop-limit as the limit order it
     became (at the open when the open crosses its limit, else at its limit
     when the bar touches it);
  2. resting limit orders the bar touched, at their limit price (maker);
  3. stop orders whose trigger the bar crossed (taker);
  4. take-profit orders whose trigger the bar crossed (taker).
Within each step, levels nearer the bar's open fill first (the price passes
them first); equal levels fill oldest first.
So when a stop and a take-profit of one position both lie inside a bar, the
stop is assumed to have filled first and the take-profit, finding no position
left to reduce, is cancelled. An entry filled in step 2 can be stopped out in
step 3 of the same bar.

A stop-limit (a trigger order with a price) that triggers becomes a limit order:
it fills at once when the trigger fill price satisfies its limit, else it rests.

Reduce-only orders never increase or flip a position: at fill time an order
is cut to the position it reduces, and cancelled when there is nothing left to
reduce. Untriggered reduce-only orders stay open while the position is flat.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from math import floor
from typing import Any

from core.market import MarketInfo
from core.orders import (
    Balance,
    Fill,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionReport,
    PositionSide,
)
from venues.paper import matching
from venues.paper.book import PositionBook, from_lots, units_per_lot
from venues.paper.checks import check_prices, checked_lots
from venues.paper.config import PaperConfig
from venues.paper.errors import (
    DuplicateClientIdError,
    OrderRejectedError,
    PaperStateError,
    RejectReason,
)
from venues.paper.matching import Bar
from venues.paper.orders import (
    CancelOutcome,
    CancelResult,
    Execution,
    HistoryForgotten,
    Liquidity,
    Placement,
    WorkingOrder,
)
from venues.paper.snapshot import EngineState, read_engine_state, write_engine_state


class PaperEngine:
    """Matching engine and account for a set of perpetual markets (one margin wallet)."""

    _forgotten = HistoryForgotten()  # the default of engines pickled before it existed

    def __init__(self, markets: Iterable[MarketInfo], config: PaperConfig | None = None) -> None:
        """Refuses a leverage for an unknown market or above that market's max_leverage."""
        self.config = config or PaperConfig()
        self._markets = {m.symbol: m for m in markets}
        unknown = sorted(set(self.config.leverage) - set(self._markets))
        if unknown:
            raise ValueError(f"PaperConfig.leverage names unknown markets {unknown}")
        self._leverage = {s: self._leverage_for(m) for s, m in self._markets.items()}
        self._rng = random.Random(self.config.seed)
        self._orders: dict[str, WorkingOrder] = {}
        self._open: dict[str, WorkingOrder] = {}  # insertion-ordered: oldest first
        self._open_by_client: dict[str, str] = {}
        self._by_client: dict[str, list[str]] = {}
        self._books = {symbol: PositionBook() for symbol in self._markets}
        self._marks: dict[str, float] = {}
        self._volumes: dict[str, float | None] = {}
        self._executions: list[Execution] = []
        self.cash = self.config.initial_cash
        self.realised_pnl = 0.0
        self.fees_paid = 0.0
        self.funding_paid = 0.0  # received minus paid; positive is money in
        self._forgotten = HistoryForgotten()

    # -- saving and restoring -------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-ready data (keys: venues.paper.snapshot.ENGINE_KEYS):
        what `restore` needs to continue exactly here, ids included."""
        return write_engine_state(
            EngineState(
                config=self.config,
                markets=tuple(self._markets.values()),
                leverage=self._leverage,
                ids=self._rng.getstate(),
                cash=self.cash,
                realised_pnl=self.realised_pnl,
                fees_paid=self.fees_paid,
                funding_paid=self.funding_paid,
                books=self._books,
                marks=self._marks,
                volumes=self._volumes,
                orders=tuple(self._orders.values()),
                executions=tuple(self._executions),
                forgotten=self._forgotten,
            )
        )

    @classmethod
    def restore(
        cls, snapshot: Mapping[str, object], markets: Iterable[MarketInfo] = ()
    ) -> PaperEngine:
        """The engine a `snapshot()` (maybe through JSON) describes, continuing where it stopped.

        Markets saved in the snapshot keep their saved definitions (their orders and lots
        were booked on that grid); `markets` not in it are added as add_market adds them.
        Refuses a malformed snapshot with PaperStateError naming the field; the engine is
        built only after every field was read, so nothing is ever half-restored.
        """
        state = read_engine_state(snapshot)
        try:
            engine = cls(state.markets, state.config)
        except ValueError as exc:
            raise PaperStateError("engine.config", str(exc)) from None
        engine._install(state)
        for market in markets:
            engine.add_market(market)
        return engine

    def _install(self, state: EngineState) -> None:
        self._leverage = dict(state.leverage)
        self._rng.setstate(state.ids)
        self._orders = {o.venue_order_id: o for o in state.orders}
        self._open = {i: o for i, o in self._orders.items() if o.is_open}
        self._open_by_client = {
            o.client_id: i for i, o in self._open.items() if o.client_id is not None
        }
        self._by_client = self._client_history()
        self._books = dict(state.books)
        self._marks = dict(state.marks)
        self._volumes = dict(state.volumes)
        self._executions = list(state.executions)
        self.cash = state.cash
        self.realised_pnl = state.realised_pnl
        self.fees_paid = state.fees_paid
        self.funding_paid = state.funding_paid
        self._forgotten = state.forgotten

    def _client_history(self) -> dict[str, list[str]]:
        """Venue ids per client id, oldest first, of the orders still known."""
        history: dict[str, list[str]] = {}
        for venue_id, order in self._orders.items():
            if order.client_id is not None:
                history.setdefault(order.client_id, []).append(venue_id)
        return history

    def forget_history(self, before: datetime) -> HistoryForgotten:
        """Drop closed orders and executions older than `before` that nothing still needs;
        returns what was forgotten so far (running totals).

        Kept whatever their age: open orders and all their executions; per market, every
        execution since its latest position opened from flat (what the account log must
        answer for a position the bot holds or has just lost); closed orders that own a
        kept execution or changed at or after `before`. Matching reads no history: fills,
        balances and positions afterwards are what they would have been. A client id whose
        orders were all forgotten is unknown afterwards (lookups answer None, cancels
        NOT_FOUND), as Kraken answers for orders it no longer reports.
        """
        executions = self._executions
        opened = {e.fill.symbol: i for i, e in enumerate(executions) if e.position_before == 0}
        kept = [
            e
            for i, e in enumerate(self._executions)
            if e.fill.ts >= before
            or e.fill.venue_order_id in self._open
            or i >= opened[e.fill.symbol]
        ]
        owners = {e.fill.venue_order_id for e in kept}
        orders = {
            i: o for i, o in self._orders.items() if o.is_open or o.updated >= before or i in owners
        }
        prior = self._forgotten
        self._forgotten = HistoryForgotten(
            executions=prior.executions + len(self._executions) - len(kept),
            orders=prior.orders + len(self._orders) - len(orders),
            before=before if prior.before is None else max(prior.before, before),
        )
        self._executions = kept
        self._orders = orders
        self._by_client = self._client_history()
        return self._forgotten

    def history_forgotten(self) -> HistoryForgotten:
        return self._forgotten

    # -- configuration at runtime -------------------------------------------------------

    def add_market(self, market: MarketInfo) -> None:
        """Start trading a market listed after construction (idempotent)."""
        if market.symbol in self._markets:
            return
        self._leverage[market.symbol] = self._leverage_for(market)
        self._markets[market.symbol] = market
        self._books[market.symbol] = PositionBook()

    def set_partial_fills(
        self, max_fill_fraction: float = 1.0, volume_participation: float | None = None
    ) -> None:
        """Switch partial fills on or off for the following fill events."""
        self.config = replace(
            self.config,
            max_fill_fraction=max_fill_fraction,
            volume_participation=volume_participation,
        )

    def set_trigger_fills(
        self,
        fraction: float = 1.0,
        remainder: str = "keep",
        kinds: tuple[OrderType, ...] = (OrderType.STOP,),
    ) -> None:
        """Triggered orders of `kinds` fill at most `fraction` per fill event; the rest of a
        triggered market order is kept working ("keep") or cancelled at once ("cancel").
        Refuses a fraction outside (0, 1] and another remainder word (ValueError)."""
        self.config = replace(
            self.config,
            trigger_fill_fraction=fraction,
            triggered_remainder=remainder,
            trigger_partial_kinds=tuple(OrderType(k).value for k in kinds),
        )

    # -- orders ---------------------------------------------------------------------------

    def submit(
        self, request: OrderRequest, ts: datetime, *, record_client_id: bool = True
    ) -> Placement:
        """Place an order; market and crossing limit orders fill at once (partially when capped).

        Raises OrderRejectedError (nothing placed) for an unknown market, a size or
        price off the grid, a duplicate client id among open orders, a market order
        before any price, a reduce-only market order with nothing to reduce, or
        not enough free margin. record_client_id=False places the order without a
        client id (a Kraken client may omit cliOrdId; OrderRequest still needs one).
        """
        market = self._markets.get(request.symbol)
        if market is None:
            raise OrderRejectedError(
                request.client_id,
                RejectReason.UNKNOWN_MARKET,
                f"unknown market {request.symbol!r}; use one of {sorted(self._markets)[:5]} ...",
            )
        lots = checked_lots(request, market)
        check_prices(request, market)
        client_id = request.client_id if record_client_id else None
        if client_id is not None and client_id in self._open_by_client:
            raise DuplicateClientIdError(client_id, self._open_by_client[client_id])
        mark = self._marks.get(market.symbol)
        if request.type is OrderType.MARKET:
            self._check_market_order(request, mark)
        if not request.reduce_only:
            self._check_margin(request, market, lots, mark)
        order = WorkingOrder(
            venue_order_id=self._new_id(),
            client_id=client_id,
            market=market,
            side=request.side,
            type=request.type,
            size_lots=lots,
            price=request.price,
            trigger_price=request.trigger_price,
            reduce_only=request.reduce_only,
            created=ts,
            updated=ts,
        )
        self._register(order)
        executions = self._fill_on_arrival(order, mark, ts)
        return Placement(order.snapshot(), tuple(executions))

    def cancel(self, venue_order_id: str, ts: datetime) -> CancelResult:
        """Cancel an open order. FILLED / NOT_FOUND outcomes leave everything unchanged."""
        order = self._orders.get(venue_order_id)
        if order is None:
            return CancelResult(CancelOutcome.NOT_FOUND, None)
        if order.status is OrderStatus.FILLED:
            return CancelResult(CancelOutcome.FILLED, order.snapshot())
        if not order.is_open:
            return CancelResult(CancelOutcome.NOT_FOUND, order.snapshot())
        self._close(order, OrderStatus.CANCELLED, ts)
        return CancelResult(CancelOutcome.CANCELLED, order.snapshot())

    def cancel_by_client_id(self, client_id: str, ts: datetime) -> CancelResult:
        """Cancel the open order carrying client_id (or report the latest closed one)."""
        venue_id = self._open_by_client.get(client_id)
        if venue_id is None:
            history = self._by_client.get(client_id)
            if not history:
                return CancelResult(CancelOutcome.NOT_FOUND, None)
            venue_id = history[-1]
        return self.cancel(venue_id, ts)

    def cancel_all(self, symbol: str | None, ts: datetime) -> list[Order]:
        """Cancel every open order (of one market when symbol is given); returns them."""
        cancelled = []
        for order in list(self._open.values()):
            if symbol is None or order.market.symbol == symbol:
                self._close(order, OrderStatus.CANCELLED, ts)
                cancelled.append(order.snapshot())
        return cancelled

    # -- prices ---------------------------------------------------------------------------

    def on_price(self, symbol: str, ts: datetime, price: float) -> list[Execution]:
        """One traded price: a bar whose open, high, low and close are that price."""
        return self.on_bar(symbol, ts, price, price, price, price)

    def on_bar(
        self,
        symbol: str,
        ts: datetime,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float | None = None,
    ) -> list[Execution]:
        """Fill what the bar reached (see the module docstring for the order); returns the fills.

        ts stamps the fills: pass the time the bar's prices are known (its close).
        Refuses an unknown market and an inconsistent bar (ValueError).
        """
        if symbol not in self._markets:
            raise ValueError(f"on_bar: unknown market {symbol!r}")
        bar = Bar(ts, open, high, low, close, volume)
        working = [o for o in self._open.values() if o.market.symbol == symbol]
        executions: list[Execution] = []
        for order in working:
            if order.triggered and order.is_open:
                executions += self._work_triggered(order, bar)
        # the price reaches levels nearer the open first: fill in that order (ties: oldest first)
        working.sort(key=lambda o: abs((o.price or o.trigger_price or bar.open) - bar.open))
        for order in working:
            if order.type is OrderType.LIMIT and order.is_open:
                assert order.price is not None
                if matching.limit_touched(order.side, order.price, bar):
                    executions += self._fill(order, order.price, Liquidity.MAKER, ts, bar.volume)
        for kind in (OrderType.STOP, OrderType.TAKE_PROFIT):
            for order in working:
                if order.type is kind and order.is_open and not order.triggered:
                    executions += self._trigger(order, bar)
        self._marks[symbol] = close
        self._volumes[symbol] = volume
        return executions

    def stop_and_tp_reached(
        self, symbol: str, ts: datetime, open: float, high: float, low: float, close: float
    ) -> bool:
        """True when this bar would trigger both a working stop and a working take-profit
        of `symbol`: the case whose order one bar cannot tell (the driver then walks
        lower-timeframe candles, if it has them)."""
        bar = Bar(ts, open, high, low, close)
        reached = {OrderType.STOP: False, OrderType.TAKE_PROFIT: False}
        for order in self._open.values():
            if order.market.symbol != symbol or order.triggered or order.type not in reached:
                continue
            assert order.trigger_price is not None
            if matching.is_triggered(order.type, order.side, order.trigger_price, bar):
                reached[order.type] = True
        return all(reached.values())

    def apply_funding(self, symbol: str, rate: float, ts: datetime) -> float:
        """Settle one funding payment on the open position at the current mark; returns the cash.

        Longs pay shorts when the rate is positive: cash changes by
        -rate * position notional. Kraken accrues perpetual funding hourly; the
        shared Binance data carries one rate every 8 hours. The engine models
        discrete settlements: each call is one payment of the rate given, at the
        time given, so with the Binance rates it pays every 8 h (the 8-hour
        rate once) rather than accruing hourly. Pass hourly rates to model
        Kraken's schedule.
        """
        book = self._books[symbol]
        mark = self._marks.get(symbol)
        if book.lots == 0 or mark is None:
            return 0.0
        payment = -rate * book.lots * units_per_lot(self._markets[symbol]) * mark
        self.cash += payment
        self.funding_paid += payment
        return payment

    # -- queries --------------------------------------------------------------------------

    def markets(self) -> list[MarketInfo]:
        return list(self._markets.values())

    def mark(self, symbol: str) -> float | None:
        return self._marks.get(symbol)

    def leverage(self, symbol: str) -> float:
        return self._leverage[symbol]

    def order(self, venue_order_id: str) -> Order | None:
        order = self._orders.get(venue_order_id)
        return order.snapshot() if order else None

    def order_by_client_id(self, client_id: str) -> Order | None:
        """The open order with this client id, else the latest closed one, else None."""
        venue_id = self._open_by_client.get(client_id)
        if venue_id is None:
            history = self._by_client.get(client_id)
            venue_id = history[-1] if history else None
        return self._orders[venue_id].snapshot() if venue_id else None

    def orders(self) -> list[Order]:
        """Every order ever accepted, oldest first."""
        return [o.snapshot() for o in self._orders.values()]

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [
            o.snapshot() for o in self._open.values() if symbol is None or o.market.symbol == symbol
        ]

    def working_order(self, venue_order_id: str) -> WorkingOrder | None:
        """Read access to an order's full state (trigger status, last update) for renderers."""
        return self._orders.get(venue_order_id)

    def positions(self) -> list[PositionReport]:
        reports = []
        for symbol, book in self._books.items():
            if book.lots == 0:
                continue
            market = self._markets[symbol]
            mark = self._marks.get(symbol)
            reports.append(
                PositionReport(
                    symbol=symbol,
                    side=PositionSide.LONG if book.lots > 0 else PositionSide.SHORT,
                    size=from_lots(abs(book.lots), market),
                    entry_price=book.avg_price,
                    mark_price=mark,
                    unrealized_pnl=book.unrealised(mark, units_per_lot(market)),
                )
            )
        return reports

    def position_opened(self, symbol: str) -> datetime | None:
        """Time of the last fill that changed this market's position."""
        return self._books[symbol].last_fill

    def unrealised_pnl(self) -> float:
        return sum(
            book.unrealised(self._marks.get(s), units_per_lot(self._markets[s]))
            for s, book in self._books.items()
        )

    def position_margin(self) -> float:
        """Initial margin of open positions: notional at the mark / leverage."""
        total = 0.0
        for symbol, book in self._books.items():
            mark = self._marks.get(symbol)
            if book.lots and mark is not None:
                notional = abs(book.lots) * units_per_lot(self._markets[symbol]) * mark
                total += notional / self._leverage[symbol]
        return total

    def order_margin(self) -> float:
        """Initial margin reserved by open orders that can add exposure."""
        total = 0.0
        for order in self._open.values():
            if not order.reduce_only:
                price = self._reference_price(order)
                if price is not None:
                    notional = order.remaining_lots * units_per_lot(order.market) * price
                    total += notional / self._leverage[order.market.symbol]
        return total

    def balance(self) -> Balance:
        """equity = cash + unrealised PnL; margin_used = position notional / leverage."""
        return Balance(equity=self.cash + self.unrealised_pnl(), margin_used=self.position_margin())

    def executions(self, since: datetime | None = None) -> list[Execution]:
        return [e for e in self._executions if since is None or e.fill.ts >= since]

    def fills(self, since: datetime | None = None) -> list[Fill]:
        return [e.fill for e in self.executions(since)]

    # -- internals ------------------------------------------------------------------------

    def _leverage_for(self, market: MarketInfo) -> float:
        lev = self.config.leverage.get(market.symbol)
        if lev is not None and lev > market.max_leverage:
            raise ValueError(
                f"PaperConfig.leverage[{market.symbol!r}] = {lev} exceeds the market's max "
                f"leverage {market.max_leverage}; lower it"
            )
        return lev or min(self.config.default_leverage, market.max_leverage)

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _register(self, order: WorkingOrder) -> None:
        self._orders[order.venue_order_id] = order
        self._open[order.venue_order_id] = order
        if order.client_id is not None:
            self._open_by_client[order.client_id] = order.venue_order_id
            self._by_client.setdefault(order.client_id, []).append(order.venue_order_id)

    def _close(self, order: WorkingOrder, status: OrderStatus, ts: datetime) -> None:
        order.status = status
        order.updated = ts
        self._open.pop(order.venue_order_id, None)
        if order.client_id is not None:
            self._open_by_client.pop(order.client_id, None)

    def _check_market_order(self, request: OrderRequest, mark: float | None) -> None:
        if mark is None:
            raise OrderRejectedError(
                request.client_id,
                RejectReason.MARKET_SUSPENDED,
                f"no price for {request.symbol} yet; feed one with on_price or on_bar first",
            )
        if request.reduce_only and self._reducible_lots(request.symbol, request.side) == 0:
            raise OrderRejectedError(
                request.client_id,
                RejectReason.WOULD_NOT_REDUCE,
                f"reduce-only {request.side} finds no {request.symbol} position to reduce",
            )

    def _check_margin(
        self, request: OrderRequest, market: MarketInfo, lots: int, mark: float | None
    ) -> None:
        if not self.config.check_margin:
            return
        price = request.price or request.trigger_price or mark
        if price is None:
            return
        needed = lots * units_per_lot(market) * price / self._leverage[market.symbol]
        free = self.balance().equity - self.position_margin() - self.order_margin()
        if needed > free:
            raise OrderRejectedError(
                request.client_id,
                RejectReason.INSUFFICIENT_FUNDS,
                f"needs {needed:.2f} initial margin, {max(free, 0.0):.2f} free; reduce the size",
            )

    def _reference_price(self, order: WorkingOrder) -> float | None:
        return order.price or order.trigger_price or self._marks.get(order.market.symbol)

    def _reducible_lots(self, symbol: str, side: OrderSide) -> int:
        lots = self._books[symbol].lots
        reduces = (lots > 0 and side is OrderSide.SELL) or (lots < 0 and side is OrderSide.BUY)
        return abs(lots) if reduces else 0

    def _fill_on_arrival(
        self, order: WorkingOrder, mark: float | None, ts: datetime
    ) -> list[Execution]:
        tick, slip = order.market.tick_size, self.config.slippage_bps
        volume = self._volumes.get(order.market.symbol)
        if order.type is OrderType.MARKET:
            assert mark is not None
            price = matching.taker_price(mark, order.side, slip, tick)
            executions = self._fill(order, price, Liquidity.TAKER, ts, volume)
            if order.is_open:  # Kraken market orders are immediate-or-cancel
                self._close(order, OrderStatus.CANCELLED, ts)
            return executions
        if order.type is OrderType.LIMIT and mark is not None:
            assert order.price is not None
            if matching.limit_crosses(order.side, order.price, mark):
                taker = matching.taker_price(mark, order.side, slip, tick)
                price = min(taker, order.price) if order.sign > 0 else max(taker, order.price)
                return self._fill(order, price, Liquidity.TAKER, ts, volume)
        return []

    def _trigger(self, order: WorkingOrder, bar: Bar) -> list[Execution]:
        assert order.trigger_price is not None
        if not matching.is_triggered(order.type, order.side, order.trigger_price, bar):
            return []
        order.triggered = True
        raw = matching.trigger_fill_price(order.type, order.side, order.trigger_price, bar)
        if order.price is not None and not matching.limit_crosses(order.side, order.price, raw):
            return []  # a stop-limit gapped past its limit: it rests as a limit order
        price = matching.taker_price(
            raw, order.side, self.config.slippage_bps, order.market.tick_size
        )
        if order.price is not None:  # never worse than the limit
            price = min(price, order.price) if order.sign > 0 else max(price, order.price)
        executions = self._fill(order, price, Liquidity.TAKER, bar.ts, bar.volume)
        self._end_market_remainder(order, bar.ts)
        return executions

    def _work_triggered(self, order: WorkingOrder, bar: Bar) -> list[Execution]:
        """A bar for an order triggered earlier: a market remainder trades at the open, a
        stop-limit trades as the limit order it became."""
        tick, slip = order.market.tick_size, self.config.slippage_bps
        if order.price is None:
            price = matching.taker_price(bar.open, order.side, slip, tick)
            return self._fill(order, price, Liquidity.TAKER, bar.ts, bar.volume)
        if matching.limit_crosses(order.side, order.price, bar.open):
            taker = matching.taker_price(bar.open, order.side, slip, tick)
            price = min(taker, order.price) if order.sign > 0 else max(taker, order.price)
            return self._fill(order, price, Liquidity.TAKER, bar.ts, bar.volume)
        if matching.limit_touched(order.side, order.price, bar):
            return self._fill(order, order.price, Liquidity.MAKER, bar.ts, bar.volume)
        return []

    def _end_market_remainder(self, order: WorkingOrder, ts: datetime) -> None:
        """Kraken turns a triggered stop-market into an immediate-or-cancel order: with
        triggered_remainder="cancel" what did not fill at once is cancelled."""
        if order.is_open and order.price is None and self.config.triggered_remainder == "cancel":
            self._close(order, OrderStatus.CANCELLED, ts)

    def _fill_cap(self, order: WorkingOrder, volume: float | None) -> int:
        cap = order.remaining_lots
        if self.config.max_fill_fraction < 1:
            cap = min(cap, max(1, floor(order.size_lots * self.config.max_fill_fraction)))
        fraction = self.config.trigger_fill_fraction
        if order.triggered and fraction < 1 and order.type in self.config.trigger_partial_kinds:
            cap = min(cap, max(1, floor(order.size_lots * fraction)))
        if self.config.volume_participation is not None and volume is not None:
            liquid = volume * self.config.volume_participation / units_per_lot(order.market)
            cap = min(cap, floor(liquid))
        return cap

    def _fill(
        self,
        order: WorkingOrder,
        price: float,
        liquidity: Liquidity,
        ts: datetime,
        volume: float | None,
    ) -> list[Execution]:
        if order.reduce_only:
            reducible = self._reducible_lots(order.market.symbol, order.side)
            if reducible == 0:
                self._close(order, OrderStatus.CANCELLED, ts)  # nothing left to reduce
                return []
            if order.remaining_lots > reducible:
                order.size_lots = order.filled_lots + reducible  # cut to the position
        lots = self._fill_cap(order, volume)
        if lots <= 0:
            return []
        return [self._execute(order, lots, price, liquidity, ts)]

    def _execute(
        self, order: WorkingOrder, lots: int, price: float, liquidity: Liquidity, ts: datetime
    ) -> Execution:
        market = order.market
        unit = units_per_lot(market)
        book = self._books[market.symbol]
        before = from_lots(book.lots, market)
        realised = book.apply(order.sign * lots, price, unit, ts)
        rate = self.config.maker_fee if liquidity is Liquidity.MAKER else self.config.taker_fee
        fee = lots * unit * price * rate
        self.cash += realised - fee
        self.realised_pnl += realised
        self.fees_paid += fee
        filled_before = from_lots(order.filled_lots, market)
        order.filled_lots += lots
        order.fill_value += lots * price
        order.updated = ts
        if order.remaining_lots == 0:
            self._close(order, OrderStatus.FILLED, ts)
        fill = Fill(
            fill_id=self._new_id(),
            venue_order_id=order.venue_order_id,
            client_id=order.client_id,
            symbol=market.symbol,
            side=order.side,
            size=from_lots(lots, market),
            price=price,
            fee=fee,
            ts=ts,
        )
        execution = Execution(
            fill,
            liquidity,
            order.type,
            filled_before,
            realised_pnl=realised,
            position_before=before,
            position_after=from_lots(book.lots, market),
            cash_after=self.cash,
        )
        self._executions.append(execution)
        return execution
