"""Kraken Futures orders, positions and the account through ccxt: the OrderVenue port.

Kraken answers in several shapes (sendorder events, /openorders rows,
/orders/status entries, /fills rows) and ccxt 4.5.90 loses facts in some of
them (a limit's price, a stop's type), so orders are read from the raw
Kraken fields in ccxt's `info`; ccxt is used for transport, signing, symbols
and timestamps. Every ccxt exception is translated by `venues.kraken.translate`.

Also here: `require_explicit_mode`, the guard that refuses to trade on Kraken
without an explicit choice of live, demo or a loopback simulator.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt

from core.errors import LiveTradingNotAllowedError, VenueError
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
    RealisedPnl,
)
from venues.base import Clock
from venues.kraken import KrakenClient, KrakenRefusedError, refusal_word, translate
from venues.kraken_account_log import entries_of, log_ms

log = logging.getLogger("smc_trader.kraken")

T = TypeVar("T")
Raw = dict[str, Any]

FILLS_PER_PAGE = 100  # Kraken's /fills page; older pages are asked for with lastFillTime
TRIGGERS = (OrderType.STOP, OrderType.TAKE_PROFIT)
CREDENTIALS_HINT = "KRAKEN_API_KEY and KRAKEN_API_SECRET in the environment or .env.local"

# Kraken's orderType words (sendorder events, /openorders) -> ours. A Kraken market order
# is executed as an immediate-or-cancel order, so `ioc` reads as MARKET.
KRAKEN_TYPES = {
    "lmt": OrderType.LIMIT,
    "post": OrderType.LIMIT,
    "mkt": OrderType.MARKET,
    "ioc": OrderType.MARKET,
    "stp": OrderType.STOP,
    "stop": OrderType.STOP,
    "trailing_stop": OrderType.STOP,
    "take_profit": OrderType.TAKE_PROFIT,
}
# /orders/status words -> ours. An unknown word reads as OPEN: never forget a live order.
STATUS_WORDS = {
    "ENTERED_BOOK": OrderStatus.OPEN,
    "UNTOUCHED": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.OPEN,
    "TRIGGER_PLACED": OrderStatus.OPEN,
    "FULLY_EXECUTED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    "TRIGGER_ACTIVATION_FAILURE": OrderStatus.REJECTED,
}


# -- the live-trading guard -----------------------------------------------------------------


def is_loopback_url(url: str) -> bool:
    """True when url names this machine: localhost, 127.0.0.0/8 or [::1]."""
    try:
        host = urlsplit(url if "//" in url else f"//{url}").hostname
    except ValueError:  # e.g. an unclosed [ipv6 bracket
        return False
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def _refuse(reason: str) -> LiveTradingNotAllowedError:
    return LiveTradingNotAllowedError(
        f"kraken venue will not place orders: {reason}. Real-money orders need --live and "
        f"{CREDENTIALS_HINT}; the demo exchange needs --sandbox, the local simulator a "
        "loopback --api-url (http://127.0.0.1:PORT), each with the same credentials"
    )


def require_explicit_mode(
    *, live: bool, sandbox: bool, api_url: str | None, has_credentials: bool
) -> str:
    """The trading mode the flags choose: 'simulator', 'demo' or 'live'.

    'simulator' for a loopback api_url, 'demo' for sandbox (demo-futures.kraken.com),
    'live' only with live=True. Refuses (LiveTradingNotAllowedError) missing
    credentials, no choice at all, live together with sandbox or with a loopback
    api_url (contradictions), and a non-loopback api_url without live.
    """
    api_url = api_url or None  # an empty setting is no setting
    if not has_credentials:
        raise _refuse("no API credentials")
    if live and sandbox:
        raise _refuse("--live and --sandbox contradict each other; choose one")
    if api_url is not None and is_loopback_url(api_url):
        if live:
            raise _refuse(f"--live with the loopback --api-url {api_url} (a simulator); drop one")
        return "simulator"
    if api_url is not None and not live:
        raise _refuse(f"--api-url {api_url} is not loopback and --live was not given")
    if live:
        return "live"
    if sandbox:
        return "demo"
    raise _refuse("neither --live, --sandbox nor a loopback --api-url was given")


# -- raw Kraken records -> ours ----------------------------------------------------------------


def _utc(ms: int | float | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def _float(value: object, default: float = 0.0) -> float:
    return float(value) if value not in (None, "") else default


def _maybe_float(value: object) -> float | None:
    return float(value) if value not in (None, "") else None


def _finite(value: object) -> float | None:
    """A number from an answer, or None when absent or not a finite number."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _client_id(raw: Raw) -> str | None:
    value = raw.get("cliOrdId") or raw.get("clientId")
    return str(value) if value else None


def _trigger_type(side: OrderSide, trigger_side: str | None) -> OrderType:
    """A sell stop and a buy take-profit fire when the price falls to them."""
    falls = str(trigger_side or "").lower() == "trigger_below"
    return OrderType.STOP if falls == (side is OrderSide.SELL) else OrderType.TAKE_PROFIT


def _kraken_type(word: object, has_stop: bool) -> OrderType:
    kind = KRAKEN_TYPES.get(str(word or "").lower())
    if kind is None:
        log.warning(
            "KRAKEN_UNKNOWN_ORDER_TYPE type=%r: read as %s", word, "stop" if has_stop else "limit"
        )
        return OrderType.STOP if has_stop else OrderType.LIMIT
    return kind


def _priced(kind: OrderType, limit: object, trigger: object) -> dict[str, float | None]:
    return {
        "price": None if kind is OrderType.MARKET else _maybe_float(limit),
        "trigger_price": _maybe_float(trigger) if kind in TRIGGERS else None,
    }


def order_from_open_row(row: Raw, symbol: str, ts: datetime | None) -> Order:
    """One /openorders row (orderType lmt / stop / take_profit, sizes split filled/unfilled)."""
    kind = _kraken_type(row.get("orderType"), row.get("stopPrice") is not None)
    filled = _float(row.get("filledSize"))
    return Order(
        venue_order_id=str(row["order_id"]),
        client_id=_client_id(row),
        symbol=symbol,
        side=OrderSide(str(row["side"]).lower()),
        type=kind,
        size=filled + _float(row.get("unfilledSize")),
        filled=filled,
        status=OrderStatus.OPEN,
        reduce_only=bool(row.get("reduceOnly")),
        ts=ts,
        **_priced(kind, row.get("limitPrice"), row.get("stopPrice")),
    )


def order_from_status_entry(entry: Raw, symbol: str, ts: datetime | None) -> Order:
    """One /orders/status entry. Kraken gives no order type there, only ORDER or TRIGGER_ORDER:
    a trigger's kind follows from its side and trigger direction; a plain order with a limit
    price reads as LIMIT, without one as MARKET (Kraken may show a closed market order's
    protection price as its limit: the type of a closed plain order is best effort)."""
    body: Raw = entry["order"]
    side = OrderSide(str(body["side"]).lower())
    options: Raw = body.get("priceTriggerOptions") or {}
    if body.get("type") == "TRIGGER_ORDER":
        kind = _trigger_type(side, options.get("triggerSide"))
    else:
        kind = OrderType.LIMIT if body.get("limitPrice") is not None else OrderType.MARKET
    word = str(entry.get("status") or "")
    status = STATUS_WORDS.get(word)
    if status is None:
        log.warning(
            "KRAKEN_UNKNOWN_ORDER_STATUS status=%r order=%s: read as open",
            word,
            body.get("orderId"),
        )
        status = OrderStatus.OPEN
    return Order(
        venue_order_id=str(body["orderId"]),
        client_id=_client_id(body),
        symbol=symbol,
        side=side,
        type=kind,
        size=_float(body.get("quantity")),
        filled=_float(body.get("filled")),
        status=status,
        reduce_only=bool(body.get("reduceOnly")),
        ts=ts,
        **_priced(kind, body.get("limitPrice"), options.get("triggerPrice")),
    )


def cancel_status(answer: Raw) -> Raw:
    """Kraken's cancelStatus from ccxt's cancel_order answer: ccxt puts cancelStatus itself
    in `info` (older shapes nest it as info.cancelStatus)."""
    info: Raw = answer.get("info") or {}
    nested = info.get("cancelStatus")
    return nested if isinstance(nested, dict) else info


def _event_body(event: Raw) -> Raw | None:
    """The order an event carries: `orderTrigger` for stops and take-profits, else `order`."""
    body = event.get("orderTrigger") or event.get("order")
    return body if isinstance(body, dict) else None


def order_from_event(event: Raw, symbol: str, status: OrderStatus, ts: datetime | None) -> Order:
    """The `order` or `orderTrigger` object of a sendorder / cancelorder event."""
    trigger: Raw | None = event.get("orderTrigger")
    body = _event_body(event)
    if body is None:
        raise VenueError(f"kraken order event without an order: {sorted(event)}")
    side = OrderSide(str(body["side"]).lower())
    if trigger is not None:
        kind = _trigger_type(side, trigger.get("triggerSide"))
        stop = trigger.get("triggerPrice")
    else:
        kind = _kraken_type(body.get("type"), body.get("stopPrice") is not None)
        stop = body.get("stopPrice")
    return Order(
        venue_order_id=str(body.get("orderId") or body.get("uid")),
        client_id=_client_id(body),
        symbol=symbol,
        side=side,
        type=kind,
        size=_float(body.get("quantity")),
        filled=_float(body.get("filled")),
        status=status,
        reduce_only=bool(body.get("reduceOnly")),
        ts=ts,
        **_priced(kind, body.get("limitPrice"), stop),
    )


def fill_from_trade(trade: Raw) -> Fill:
    """A ccxt trade from /fills; client_id is Kraken's cliOrdId, fee is ccxt's schedule estimate.

    Size and price come from Kraken's raw `size` and `price`: ccxt leaves `amount` empty for
    a market it did not load from /instruments. Refuses a fill without a time or a size."""
    raw: Raw = trade.get("info") or {}
    ts = _utc(trade.get("timestamp"))
    size = _maybe_float(raw.get("size"))
    if size is None:
        size = _maybe_float(trade.get("amount"))
    if ts is None or size is None:
        missing = "fillTime" if ts is None else "size"
        raise VenueError(f"kraken fill {trade.get('id')} has no {missing}; cannot apply it")
    price = _maybe_float(raw.get("price"))
    fee = trade.get("fee") or {}
    return Fill(
        fill_id=str(trade["id"]),
        venue_order_id=str(trade["order"]),
        client_id=_client_id(raw),
        symbol=str(trade["symbol"]),
        side=OrderSide(str(trade["side"]).lower()),
        size=size,
        price=price if price is not None else _float(trade.get("price")),
        fee=_float(fee.get("cost")),
        ts=ts,
    )


def order_from_fills(fills: list[Fill], maker: bool) -> Order:
    """An order known only from its fills (closed, out of /orders/status' window): FILLED,
    size the sum of its fills. Fills do not tell a stop or reduce-only order from an entry:
    a maker fill means it rested, so LIMIT; otherwise MARKET."""
    first = min(fills, key=lambda f: f.ts)
    size = round(math.fsum(f.size for f in fills), 12)  # no 0.30000000000000004
    return Order(
        venue_order_id=first.venue_order_id,
        client_id=first.client_id,
        symbol=first.symbol,
        side=first.side,
        type=OrderType.LIMIT if maker else OrderType.MARKET,
        size=size,
        filled=size,
        status=OrderStatus.FILLED,
        ts=first.ts,
    )


def create_args(request: OrderRequest) -> tuple[str, float | None, Raw]:
    """ccxt create_order's (type, price, params) for a request.

    STOP -> orderType=stp&stopPrice=&triggerSignal=mark&reduceOnly=true; TAKE_PROFIT ->
    orderType=take_profit (ccxt forces reduceOnly). Trigger orders are always reduce-only:
    on Kraken they are exits, and a reduce-only order can never add exposure.
    A trigger order with a price is a stop-limit / take-profit-limit (`limitPrice`): once
    triggered it rests as a limit order at that price instead of trading at market.
    """
    params: Raw = {"cliOrdId": request.client_id}
    if request.reduce_only or request.type in TRIGGERS:
        params["reduceOnly"] = True
    if request.type is OrderType.LIMIT:
        return "limit", request.price, params
    if request.type is OrderType.STOP:
        params.update(triggerPrice=request.trigger_price, triggerSignal="mark")
    elif request.type is OrderType.TAKE_PROFIT:
        params.update(takeProfitPrice=request.trigger_price, triggerSignal="mark")
    if request.type in TRIGGERS and request.price is not None:
        return "limit", request.price, params
    return "market", None, params


def submitted_status(request: OrderRequest, ccxt_status: str | None, filled: float) -> OrderStatus:
    """Our status of a just-sent order. A market order is immediate-or-cancel on Kraken:
    whatever did not fill at once is cancelled, though ccxt still says 'open'."""
    if ccxt_status not in ("open", "closed", "canceled"):
        raise KrakenRefusedError(
            f"kraken create_order {request.client_id}: answered status {ccxt_status!r}; "
            "the order was not placed",
            str(ccxt_status),
        )
    if request.type is OrderType.MARKET:
        return OrderStatus.FILLED if filled >= request.size * (1 - 1e-9) else OrderStatus.CANCELLED
    return {"open": OrderStatus.OPEN, "closed": OrderStatus.FILLED}.get(
        ccxt_status, OrderStatus.CANCELLED
    )


# -- the venue --------------------------------------------------------------------------------


class KrakenOrderVenue(KrakenClient):
    """Implements core.orders.OrderVenue on Kraken Futures (live, demo or the simulator).

    Reads (orders, positions, the account, fills, the account log) are retried with
    backoff inside Kraken's cost budget; `submit` and `cancel` are sent exactly once:
    when their answer is lost the write-ahead log decides what happens next.
    """

    name = "kraken"

    def __init__(
        self,
        exchange: ccxt.krakenfutures,
        *,
        clock: Clock,
        fill_lookup_pages: int = 5,
        max_fill_pages: int = 10,
        account_log_page: int = 500,
        max_account_log_pages: int = 20,
    ) -> None:
        """fill_lookup_pages: /fills pages (100 fills each) order_by_client_id searches;
        max_fill_pages: pages fills(since) reads before it stops (and logs) short of since;
        account_log_page / max_account_log_pages: entries per account-log request and the
        most requests realised_pnl makes before it stops (and logs) short of `until`."""
        self.exchange = exchange
        self.clock = clock
        self.fill_lookup_pages = fill_lookup_pages
        self.max_fill_pages = max_fill_pages
        self.account_log_page = account_log_page
        self.max_account_log_pages = max_account_log_pages
        self._known: dict[str, Order] = {}  # orders this venue placed or listed, by venue id

    # -- plumbing ---------------------------------------------------------------------------

    def _symbol(self, kraken_id: object) -> str:
        """The unified symbol of a Kraken id, or the id itself for a market not listed."""
        return self._market_symbol(kraken_id) or str(kraken_id or "")

    def _stamp(self, ms: int | None) -> datetime:
        return _utc(ms) or self.clock.now()

    def _remember(self, orders: list[Order]) -> list[Order]:
        for order in orders:
            self._known[order.venue_order_id] = order
        return orders

    # -- orders -----------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> Order:
        """Send one order carrying cliOrdId = request.client_id, exactly once (never retried
        here: after an unknown outcome the write-ahead log looks the client id up first).

        Raises DuplicateClientIdError when an open order has this client id (look it up
        with order_by_client_id), VenueRetryableError when the outcome is unknown
        (timeout, 5xx, 429: look it up before resending), KrakenRefusedError (reason:
        Kraken's status word) when Kraken placed nothing, VenueError for other refusals.
        """
        self._ensure_markets()
        kind, price, params = create_args(request)
        what = f"create_order {request.client_id}"
        try:
            placed = self.exchange.create_order(
                request.symbol, kind, request.side.value, request.size, price, params
            )
        except ccxt.BaseError as exc:
            error = translate(exc, what)
            reason = refusal_word(exc)
            if reason is not None and type(error) is VenueError:
                raise KrakenRefusedError(str(error), reason) from exc
            raise error from exc
        filled = _float(placed.get("filled"))
        order = Order(
            venue_order_id=str(placed["id"]),
            client_id=request.client_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            size=request.size,
            filled=filled,
            status=submitted_status(request, placed.get("status"), filled),
            price=request.price if request.type is not OrderType.MARKET else None,
            trigger_price=request.trigger_price if request.type in TRIGGERS else None,
            reduce_only=bool(params.get("reduceOnly")),
            ts=self._stamp(placed.get("timestamp")),
        )
        self._remember([order])
        return order

    def cancel(self, venue_order_id: str) -> Order | None:
        """The order after one cancel request (never retried here): cancelled, or as it ended
        if it had already closed (filled) within Kraken's ~5 s status window; None when
        Kraken does not know it.

        A confirmed cancel is read from the answer itself (ccxt puts Kraken's cancelStatus in
        `info`); only an answer without the order's event makes a second, /orders/status
        call, and not even then for an order this venue placed or listed.
        """
        self._ensure_markets()
        try:
            answer = self.exchange.cancel_order(venue_order_id)
        except ccxt.OrderNotFound:  # Kraken's 'filled' and 'notFound' both land here
            return self._order_by_venue_id(venue_order_id)
        except ccxt.BaseError as exc:
            raise translate(exc, f"cancel_order {venue_order_id}") from exc
        status = cancel_status(answer)
        event = next((e for e in status.get("orderEvents") or [] if _event_body(e)), None)
        if event is not None:
            body = _event_body(event) or {}
            return order_from_event(
                event,
                self._symbol(body.get("symbol")),
                OrderStatus.CANCELLED,
                _utc(self.exchange.parse8601(body.get("timestamp"))),
            )
        known = self._known.get(venue_order_id)
        if status.get("status") == "cancelled" and known is not None:
            return replace(known, status=OrderStatus.CANCELLED)
        return self._order_by_venue_id(venue_order_id)

    def order_by_client_id(self, client_id: str) -> Order | None:
        """The order sent with this client id: the open one, else one closed within Kraken's
        ~5 s /orders/status window, else one known from its fills (FILLED, size the sum of
        its fills, searched over the latest fill_lookup_pages pages), else None.

        None therefore means: nothing open, nothing recently closed, nothing filled. An
        order cancelled unfilled more than ~5 s ago is indistinguishable from one never sent.
        """
        self._ensure_markets()
        for lookup in (
            self._open_by_client_id,
            self._status_by_client_id,
            self._filled_by_client_id,
        ):
            order = lookup(client_id)
            if order is not None:
                return order
        return None

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        self._ensure_markets()
        listed = self._read("fetch_open_orders", self.exchange.fetch_open_orders)
        orders = self._remember(
            [
                order_from_open_row(
                    o["info"], self._symbol(o["info"].get("symbol")), _utc(o.get("timestamp"))
                )
                for o in listed
            ]
        )
        return [o for o in orders if symbol is None or o.symbol == symbol]

    def _open_by_client_id(self, client_id: str) -> Order | None:
        return next((o for o in self.open_orders() if o.client_id == client_id), None)

    def _statuses(self, what: str, params: Raw) -> list[Order]:
        listed = self._read(what, lambda: self.exchange.fetch_orders(params=params))
        return [
            order_from_status_entry(
                o["info"], self._symbol(o["info"]["order"].get("symbol")), _utc(o.get("timestamp"))
            )
            for o in listed
            if isinstance((o.get("info") or {}).get("order"), dict)
        ]

    def _status_by_client_id(self, client_id: str) -> Order | None:
        # orderIds (even empty) makes ccxt repeat array keys: cliOrdIds=a, as Kraken reads them
        found = [
            o
            for o in self._statuses(
                f"fetch_orders cliOrdId={client_id}", {"orderIds": [], "cliOrdIds": [client_id]}
            )
            if o.client_id == client_id
        ]
        # ccxt lists them oldest first; an open order, else the latest closed one
        live = [o for o in found if o.status is OrderStatus.OPEN]
        return (live or found)[-1] if found else None

    def _order_by_venue_id(self, venue_order_id: str) -> Order | None:
        found = self._statuses(f"fetch_orders {venue_order_id}", {"orderIds": [venue_order_id]})
        return next((o for o in found if o.venue_order_id == venue_order_id), None)

    def _filled_by_client_id(self, client_id: str) -> Order | None:
        matches: list[Raw] = []
        for page in self._fill_pages(self.fill_lookup_pages):  # newest first
            matches += [t for t in page if _client_id(t.get("info") or {}) == client_id]
            if matches and _client_id(page[-1].get("info") or {}) != client_id:
                break  # the order's fills end inside this page
        if not matches:
            return None
        # a client id is unique among open orders only: take the order of the newest fill
        mine = [t for t in matches if t["order"] == matches[0]["order"]]
        return order_from_fills(
            [fill_from_trade(t) for t in mine], any(t.get("takerOrMaker") == "maker" for t in mine)
        )

    # -- account ----------------------------------------------------------------------------

    def positions(self) -> list[PositionReport]:
        """Open positions; the mark comes from the (public, free) tickers, and the unrealised
        PnL, which /openpositions does not report, from the mark and the entry price."""
        self._ensure_markets()
        listed = self._read("fetch_positions", self.exchange.fetch_positions)
        held = [p for p in listed if _float(p.get("contracts")) > 0]
        if not held:
            return []
        answer = self._read("fetch_tickers", self.exchange.publicGetTickers)
        marks = {
            self._symbol(row.get("symbol")): _finite(row.get("markPrice"))
            for row in answer.get("tickers") or []
            if isinstance(row, dict)
        }
        return [self._position(p, marks.get(str(p["symbol"]))) for p in held]

    def _position(self, p: Raw, mark: float | None) -> PositionReport:
        side = PositionSide(str(p["side"]).lower())
        size = _float(p.get("contracts"))
        entry = _float(p.get("entryPrice"))
        pnl = _maybe_float(p.get("unrealizedPnl"))
        if pnl is None and mark is not None:
            contract = _float(p.get("contractSize"), 1.0)
            direction = 1 if side is PositionSide.LONG else -1
            pnl = (mark - entry) * size * contract * direction
        return PositionReport(
            symbol=str(p["symbol"]),
            side=side,
            size=size,
            entry_price=entry,
            mark_price=mark,
            unrealized_pnl=pnl,
        )

    def balance(self) -> Balance:
        """The multi-collateral ('flex') wallet: equity = portfolioValue (collateral plus
        unrealised PnL), margin_used = initialMargin of the open positions. Refuses an
        answer without that wallet (VenueError)."""
        self._ensure_markets()
        answer = self._read("fetch_balance", self.exchange.fetch_balance)
        flex: Raw = ((answer.get("info") or {}).get("accounts") or {}).get("flex") or {}
        equity = _maybe_float(flex.get("portfolioValue"))
        if equity is None:
            equity = _maybe_float(flex.get("marginEquity"))
        margin = _maybe_float(flex.get("initialMargin"))
        if equity is None or margin is None:
            raise VenueError(
                "kraken fetch_balance: no flex wallet with portfolioValue and initialMargin in "
                f"the answer (keys {sorted(flex)[:8]}); is this a multi-collateral account?"
            )
        return Balance(equity=equity, margin_used=margin, currency="USD")

    def fills(self, since: datetime | None = None) -> list[Fill]:
        """Fills at or after since, oldest first. since=None: the latest page (100 fills).
        Reads at most max_fill_pages pages and logs KRAKEN_FILLS_TRUNCATED when since lies
        further back."""
        self._ensure_markets()
        since_ms = int(since.timestamp() * 1000) if since is not None else None
        pages = 1 if since_ms is None else self.max_fill_pages
        rows: list[Raw] = []
        for read, page in enumerate(self._fill_pages(pages), start=1):
            rows += page
            if since_ms is None or min(t["timestamp"] for t in page) < since_ms:
                break
            if read == pages:
                log.warning(
                    "KRAKEN_FILLS_TRUNCATED since=%s pages=%d: older fills unread", since, read
                )
        # pages run newest first; reversed, they run in the exchange's own order of execution
        chosen = [t for t in reversed(rows) if since_ms is None or t["timestamp"] >= since_ms]
        return [fill_from_trade(t) for t in chosen]

    def _fill_pages(self, max_pages: int) -> Iterator[list[Raw]]:
        """Pages of /fills in Kraken's order (newest first), each holding only fills not seen
        before, parsed one by one: ccxt's fetch_my_trades re-sorts a page by (time, fill id),
        which loses the order of fills sharing a millisecond."""
        seen: set[str] = set()
        before: int | None = None
        for _ in range(max_pages):
            params: Raw = {} if before is None else {"lastFillTime": self.exchange.iso8601(before)}
            answer = self._read("fills", lambda p=params: self.exchange.privateGetFills(p))
            rows = answer.get("fills") or []
            page = [self.exchange.parse_trade(row) for row in rows]
            fresh = [t for t in page if str(t["id"]) not in seen]
            if not fresh:
                return
            seen.update(str(t["id"]) for t in fresh)
            yield fresh
            if len(rows) < FILLS_PER_PAGE:
                return
            # +1 ms: fills sharing the oldest millisecond are read again (and dropped), not skipped
            before = min(int(t["timestamp"]) for t in page) + 1

    def realised_pnl(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> list[RealisedPnl]:
        """The venue's realised PnL entries of `symbol`'s fills with since <= time < until
        (until=None: up to now), oldest first, from Kraken's account log: one entry per
        fill ('futures trade'), with its fee, price and the position before and after it.

        The account log reaches back further than /fills, so an exit older than the fills
        look-back is found here. Reads at most max_account_log_pages requests and logs
        KRAKEN_ACCOUNT_LOG_TRUNCATED when entries before `until` remain unread.
        """
        self._ensure_markets()
        rows = self._account_log(since, until)
        return entries_of(rows, symbol, self._symbol)

    def _account_log(self, since: datetime, until: datetime | None) -> list[Raw]:
        since_ms = int(since.timestamp() * 1000)
        params: Raw = {"since": since_ms, "sort": "asc", "count": self.account_log_page}
        if until is not None:
            params["before"] = int(until.timestamp() * 1000)
        rows: dict[int, Raw] = {}
        for read in range(1, self.max_account_log_pages + 1):
            answer = self._read(
                "account_log", lambda p=dict(params): self.exchange.historyGetAccountLog(p)
            )
            page = [r for r in answer.get("logs") or [] if isinstance(r, dict)]
            fresh = [r for r in page if int(r.get("id", -1)) not in rows]
            rows.update((int(r.get("id", -1)), r) for r in fresh)
            if len(page) < self.account_log_page or not fresh:
                break
            # the next page starts at the last entry's time (its entries are read again, dropped)
            params["since"] = max(log_ms(self.exchange, r) for r in page)
            if read == self.max_account_log_pages:
                log.warning(
                    "KRAKEN_ACCOUNT_LOG_TRUNCATED since=%s pages=%d: later entries unread",
                    since,
                    read,
                )
        return [rows[k] for k in sorted(rows)]
