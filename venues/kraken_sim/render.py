"""Engine state as Kraken Futures JSON, in the shapes ccxt's krakenfutures parses.

Field names follow Kraken's REST reference and the response samples quoted in
ccxt/krakenfutures.py (parse_order, parse_trade, parse_position, parse_balance).
"""

from __future__ import annotations

from datetime import UTC, datetime

from core.orders import OrderSide, OrderStatus, OrderType, PositionReport
from venues.paper.book import from_lots
from venues.paper.engine import PaperEngine
from venues.paper.orders import Execution, WorkingOrder

# Kraken's orderType for each of ours: as sent to sendorder, and as listed by openorders.
SEND_TYPE = {
    OrderType.LIMIT: "lmt",
    OrderType.MARKET: "mkt",
    OrderType.STOP: "stp",
    OrderType.TAKE_PROFIT: "take_profit",
}
OPEN_ORDER_TYPE = {**SEND_TYPE, OrderType.STOP: "stop"}
TRIGGERS = (OrderType.STOP, OrderType.TAKE_PROFIT)


def iso(ts: datetime) -> str:
    """Kraken's timestamp form: 2019-09-05T16:33:50.734Z."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def trigger_side(order: WorkingOrder) -> str:
    """A sell stop or a buy take-profit fires when the price falls to it."""
    falls_to = (order.type is OrderType.STOP) == (order.side is OrderSide.SELL)
    return "trigger_below" if falls_to else "trigger_above"


def order_json(order: WorkingOrder, kraken_id: str) -> dict[str, object]:
    """The `order` object of PLACE and CANCEL events."""
    return {
        "orderId": order.venue_order_id,
        "cliOrdId": order.client_id,
        "type": SEND_TYPE[order.type],
        "symbol": kraken_id,
        "side": order.side.value,
        "quantity": _size(order, order.size_lots),
        "filled": _size(order, order.filled_lots),
        "limitPrice": order.price,
        "stopPrice": order.trigger_price,
        "reduceOnly": order.reduce_only,
        "timestamp": iso(order.created),
        "lastUpdateTimestamp": iso(order.updated),
    }


def trigger_json(order: WorkingOrder, kraken_id: str, signal: str) -> dict[str, object]:
    """The `orderTrigger` object of a stop / take-profit PLACE event."""
    return {
        "uid": order.venue_order_id,
        "clientId": order.client_id,
        "type": "ioc",  # a stop-market becomes an immediate-or-cancel order when it fires
        "symbol": kraken_id,
        "side": order.side.value,
        "quantity": _size(order, order.size_lots),
        "limitPrice": None,
        "triggerPrice": order.trigger_price,
        "triggerSide": trigger_side(order),
        "triggerSignal": f"{signal}_price",
        "reduceOnly": order.reduce_only,
        "timestamp": iso(order.created),
        "lastUpdateTimestamp": iso(order.updated),
    }


def place_event(order: WorkingOrder, kraken_id: str, signal: str) -> dict[str, object]:
    if order.type in TRIGGERS:
        return {"type": "PLACE", "orderTrigger": trigger_json(order, kraken_id, signal)}
    return {
        "type": "PLACE",
        "uid": order.venue_order_id,
        "order": order_json(order, kraken_id),
        "reducedQuantity": None,
    }


def cancel_event(order: WorkingOrder, kraken_id: str) -> dict[str, object]:
    return {"type": "CANCEL", "uid": order.venue_order_id, "order": order_json(order, kraken_id)}


def execution_event(
    execution: Execution, order: WorkingOrder, kraken_id: str, protection: float | None
) -> dict[str, object]:
    """An EXECUTION event; a market order shows as the ioc order Kraken turns it into."""
    fill = execution.fill
    is_market = order.type is OrderType.MARKET
    return {
        "type": "EXECUTION",
        "executionId": fill.fill_id,
        "price": fill.price,
        "amount": fill.size,
        "orderPriorEdit": None,
        "orderPriorExecution": {
            "orderId": order.venue_order_id,
            "cliOrdId": order.client_id,
            "type": "ioc" if is_market else "lmt",
            "symbol": kraken_id,
            "side": order.side.value,
            "quantity": _size(order, order.size_lots),
            "filled": execution.filled_before,
            "limitPrice": protection if is_market else order.price,
            "reduceOnly": order.reduce_only,
            "timestamp": iso(order.created),
            "lastUpdateTimestamp": iso(order.created),
        },
        "takerReducedQuantity": None,
    }


def open_order_json(order: WorkingOrder, kraken_id: str, signal: str) -> dict[str, object]:
    """One row of GET /openorders."""
    row: dict[str, object] = {
        "order_id": order.venue_order_id,
        "symbol": kraken_id,
        "side": order.side.value,
        "orderType": OPEN_ORDER_TYPE[order.type],
        "unfilledSize": _size(order, order.remaining_lots),
        "filledSize": _size(order, order.filled_lots),
        "receivedTime": iso(order.created),
        "lastUpdateTime": iso(order.updated),
        "status": "partiallyFilled" if order.filled_lots else "untouched",
        "reduceOnly": order.reduce_only,
    }
    if order.client_id is not None:
        row["cliOrdId"] = order.client_id
    if order.price is not None:
        row["limitPrice"] = order.price
    if order.type in TRIGGERS:
        row["stopPrice"] = order.trigger_price
        row["triggerSignal"] = f"{signal}_price"
    return row


def _status_word(order: WorkingOrder) -> str:
    if order.status is OrderStatus.FILLED:
        return "FULLY_EXECUTED"
    if order.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
        return "CANCELLED"
    if order.type in TRIGGERS and not order.triggered:
        return "TRIGGER_PLACED"
    return "PARTIALLY_FILLED" if order.filled_lots else "ENTERED_BOOK"


def status_json(order: WorkingOrder, kraken_id: str, signal: str) -> dict[str, object]:
    """One entry of GET /orders/status."""
    body: dict[str, object] = {
        "type": "TRIGGER_ORDER" if order.type in TRIGGERS else "ORDER",
        "orderId": order.venue_order_id,
        "cliOrdId": order.client_id,
        "symbol": kraken_id,
        "side": order.side.value,
        "quantity": _size(order, order.size_lots),
        "filled": _size(order, order.filled_lots),
        "limitPrice": order.price,
        "reduceOnly": order.reduce_only,
        "timestamp": iso(order.created),
        "lastUpdateTimestamp": iso(order.updated),
    }
    if order.type in TRIGGERS:
        body["priceTriggerOptions"] = {
            "triggerPrice": order.trigger_price,
            "triggerSide": trigger_side(order).upper(),
            "triggerSignal": f"{signal}_price".upper(),
        }
        body["triggerTime"] = None
    return {"order": body, "status": _status_word(order), "updateReason": None, "error": None}


def fill_json(execution: Execution, kraken_id: str) -> dict[str, object]:
    """One row of GET /fills."""
    fill = execution.fill
    row: dict[str, object] = {
        "fill_id": fill.fill_id,
        "symbol": kraken_id,
        "side": fill.side.value,
        "order_id": fill.venue_order_id,
        "size": fill.size,
        "price": fill.price,
        "fillTime": iso(fill.ts),
        "fillType": execution.liquidity.value,
    }
    if fill.client_id is not None:
        row["cliOrdId"] = fill.client_id
    return row


def position_json(
    report: PositionReport, kraken_id: str, opened: datetime | None
) -> dict[str, object]:
    """One row of GET /openpositions (cross margin, funding settled into the wallet)."""
    return {
        "side": report.side.value,
        "symbol": kraken_id,
        "price": report.entry_price,
        "fillTime": iso(opened) if opened else None,
        "size": report.size,
        "unrealizedFunding": 0.0,
        "unrealizedPnl": report.unrealized_pnl,
        "pnlCurrency": "USD",
    }


def accounts_json(engine: PaperEngine) -> dict[str, object]:
    """GET /accounts: the multi-collateral ('flex') wallet in USD, and an empty cash account."""
    unrealised = engine.unrealised_pnl()
    equity = engine.cash + unrealised
    position_margin = engine.position_margin()
    with_orders = position_margin + engine.order_margin()
    available = equity - with_orders
    flex = {
        "type": "multiCollateralMarginAccount",
        "currencies": {
            "USD": {
                "quantity": engine.cash,
                "value": engine.cash,
                "collateral": engine.cash,
                "available": available,
            }
        },
        "initialMargin": position_margin,
        "initialMarginWithOrders": with_orders,
        "maintenanceMargin": position_margin / 2,
        "balanceValue": engine.cash,
        "portfolioValue": equity,
        "collateralValue": engine.cash,
        "pnl": unrealised,
        "unrealizedFunding": 0.0,
        "totalUnrealized": unrealised,
        "totalUnrealizedAsMargin": unrealised,
        "availableMargin": available,
        "marginEquity": equity,
    }
    cash = {"type": "cashAccount", "balances": {"usd": 0.0, "xbt": 0.0}}
    return {"flex": flex, "cash": cash}


def _size(order: WorkingOrder, lots: int) -> float:
    return from_lots(lots, order.market)
