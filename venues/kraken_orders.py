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
)
from venues.base import Clock
from venues.kraken import KrakenClient, translate

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
    """A ccxt trade from /fills; client_id is Kraken's cliOrdId, fee is ccxt's schedule estimate."""
    ts = _utc(trade.get("timestamp"))
    if ts is None:
        raise VenueError(f"kraken fill {trade.get('id')} has no fillTime; cannot place it in time")
    fee = trade.get("fee") or {}
    return Fill(
        fill_id=str(trade["id"]),
        venue_order_id=str(trade["order"]),
        client_id=_client_id(trade.get("info") or {}),
        symbol=str(trade["symbol"]),
        side=OrderSide(str(trade["side"]).lower()),
        size=_float(trade.get("amount")),
        price=_float(trade.get("price")),
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
    return "market", None, params


def submitted_status(request: OrderRequest, ccxt_status: str | None, filled: float) -> OrderStatus:
    """Our status of a just-sent order. A market order is immediate-or-cancel on Kraken:
    whatever did not fill at once is cancelled, though ccxt still says 'open'."""
    if ccxt_status not in ("open", "closed", "canceled"):
        raise VenueError(
            f"kraken create_order {request.client_id}: answered status {ccxt_status!r}; "
            "the order was not placed"
        )
    if request.type is OrderType.MARKET:
        return OrderStatus.FILLED if filled >= request.size * (1 - 1e-9) else OrderStatus.CANCELLED
    return {"open": OrderStatus.OPEN, "closed": OrderStatus.FILLED}.get(
        ccxt_status, OrderStatus.CANCELLED
    )


# -- the venue --------------------------------------------------------------------------------


class KrakenOrderVenue(KrakenClient):
    """Implements core.orders.OrderVenue on Kraken Futures (live, demo or the simulator)."""

    name = "kraken"

    def __init__(
        self,
        exchange: ccxt.krakenfutures,
        *,
        clock: Clock,
        fill_lookup_pages: int = 5,
        max_fill_pages: int = 10,
    ) -> None:
        """fill_lookup_pages: /fills pages (100 fills each) order_by_client_id searches;
        max_fill_pages: pages fills(since) reads before it stops (and logs) short of since."""
        self.exchange = exchange
        self.clock = clock
        self.fill_lookup_pages = fill_lookup_pages
        self.max_fill_pages = max_fill_pages

    # -- plumbing ---------------------------------------------------------------------------

    def _symbol(self, kraken_id: object) -> str:
        """The unified symbol of a Kraken id (some answers spell it in lower case)."""
        raw = str(kraken_id or "")
        by_id = self.exchange.markets_by_id or {}
        for candidate in (raw, raw.upper()):
            if candidate in by_id:
                return str(by_id[candidate][0]["symbol"])
        return raw

    def _stamp(self, ms: int | None) -> datetime:
        return _utc(ms) or self.clock.now()

    # -- orders -----------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> Order:
        """Send one order carrying cliOrdId = request.client_id.

        Raises DuplicateClientIdError when an open order has this client id (look it up
        with order_by_client_id), VenueRetryableError when the outcome is unknown
        (timeout, 5xx, 429: look it up before resending), VenueError when refused.
        """
        self._ensure_markets()
        kind, price, params = create_args(request)
        placed = self._call(
            f"create_order {request.client_id}",
            lambda: self.exchange.create_order(
                request.symbol, kind, request.side.value, request.size, price, params
            ),
        )
        filled = _float(placed.get("filled"))
        return Order(
            venue_order_id=str(placed["id"]),
            client_id=request.client_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            size=request.size,
            filled=filled,
            status=submitted_status(request, placed.get("status"), filled),
            price=request.price if request.type is OrderType.LIMIT else None,
            trigger_price=request.trigger_price if request.type in TRIGGERS else None,
            reduce_only=bool(params.get("reduceOnly")),
            ts=self._stamp(placed.get("timestamp")),
        )

    def cancel(self, venue_order_id: str) -> Order | None:
        """The order after the attempt: cancelled, or as it ended if it had already closed
        (filled) within Kraken's ~5 s status window; None when Kraken does not know it."""
        self._ensure_markets()
        try:
            answer = self.exchange.cancel_order(venue_order_id)
        except ccxt.OrderNotFound:  # Kraken's 'filled' and 'notFound' both land here
            return self._order_by_venue_id(venue_order_id)
        except ccxt.BaseError as exc:
            raise translate(exc, f"cancel_order {venue_order_id}") from exc
        status: Raw = (answer.get("info") or {}).get("cancelStatus") or {}
        event = next((e for e in status.get("orderEvents") or [] if _event_body(e)), None)
        if event is None:  # an answer without the order: read it from /orders/status
            return self._order_by_venue_id(venue_order_id)
        body = _event_body(event) or {}
        return order_from_event(
            event,
            self._symbol(body.get("symbol")),
            OrderStatus.CANCELLED,
            _utc(self.exchange.parse8601(body.get("timestamp"))),
        )

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
        listed = self._call("fetch_open_orders", self.exchange.fetch_open_orders)
        orders = [
            order_from_open_row(
                o["info"], self._symbol(o["info"].get("symbol")), _utc(o.get("timestamp"))
            )
            for o in listed
        ]
        return [o for o in orders if symbol is None or o.symbol == symbol]

    def _open_by_client_id(self, client_id: str) -> Order | None:
        return next((o for o in self.open_orders() if o.client_id == client_id), None)

    def _statuses(self, what: str, params: Raw) -> list[Order]:
        listed = self._call(what, lambda: self.exchange.fetch_orders(params=params))
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
        """Open positions; the mark comes from the (public, free) tickers."""
        self._ensure_markets()
        listed = self._call("fetch_positions", self.exchange.fetch_positions)
        held = [p for p in listed if _float(p.get("contracts")) > 0]
        if not held:
            return []
        symbols = sorted({str(p["symbol"]) for p in held})
        tickers = self._call("fetch_tickers", lambda: self.exchange.fetch_tickers(symbols))
        return [
            PositionReport(
                symbol=str(p["symbol"]),
                side=PositionSide(str(p["side"]).lower()),
                size=_float(p.get("contracts")),
                entry_price=_float(p.get("entryPrice")),
                mark_price=_maybe_float((tickers.get(p["symbol"]) or {}).get("markPrice")),
                unrealized_pnl=_maybe_float(p.get("unrealizedPnl")),
            )
            for p in held
        ]

    def balance(self) -> Balance:
        """The multi-collateral ('flex') wallet: equity = portfolioValue (collateral plus
        unrealised PnL), margin_used = initialMargin of the open positions. Refuses an
        answer without that wallet (VenueError)."""
        self._ensure_markets()
        answer = self._call("fetch_balance", self.exchange.fetch_balance)
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
            answer = self._call("fills", lambda p=params: self.exchange.privateGetFills(p))
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
