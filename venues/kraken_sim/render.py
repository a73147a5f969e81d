"""Engine state as Kraken Futures JSON, in the shapes ccxt's krakenfutures parses.

Field names follow Kraken's REST reference and the response samples quoted in
ccxt/krakenfutures.py (parse_order, parse_trade, parse_position, parse_balance).
Numbers are written as Kraken writes them, as recorded in ccxt's static test
fixtures: decimal strings in /tickers, /openorders, /orders/status, /fills,
/openpositions and /accounts; JSON numbers in sendorder / cancelorder events,
/instruments and the account log. A value Kraken would not know is left out or
null, never NaN.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from decimal import Decimal

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
# sendorder's triggerSignal -> /orders/status' word (Kraken calls the index price SPOT_PRICE)
STATUS_SIGNAL = {"mark": "MARK_PRICE", "last": "LAST_PRICE", "index": "SPOT_PRICE"}
TRIGGERS = (OrderType.STOP, OrderType.TAKE_PROFIT)


def num(value: float | None) -> str | None:
    """A number as a decimal string without exponent ("0.00001", "60000.0"); None when it
    is unknown or not finite."""
    if value is None or not math.isfinite(value):
        return None
    return format(Decimal(repr(float(value))), "f")


def finite(value: float | None) -> float | None:
    """value for a JSON number field; None for one that is unknown or not finite."""
    return value if value is not None and math.isfinite(value) else None


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
        # what the trigger becomes when it fires: a limit order, or for a stop-market an
        # immediate-or-cancel order
        "type": "lmt" if order.price is not None else "ioc",
        "symbol": kraken_id,
        "side": order.side.value,
        "quantity": _size(order, order.size_lots),
        "limitPrice": order.price,
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
        "unfilledSize": num(_size(order, order.remaining_lots)),
        "filledSize": num(_size(order, order.filled_lots)),
        "receivedTime": iso(order.created),
        "lastUpdateTime": iso(order.updated),
        "status": "partiallyFilled" if order.filled_lots else "untouched",
        "reduceOnly": order.reduce_only,
    }
    if order.client_id is not None:
        row["cliOrdId"] = order.client_id
    if order.price is not None:
        row["limitPrice"] = num(order.price)
    if order.type in TRIGGERS:
        row["stopPrice"] = num(order.trigger_price)
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
        "quantity": num(_size(order, order.size_lots)),
        "filled": num(_size(order, order.filled_lots)),
        "limitPrice": num(order.price),
        "reduceOnly": order.reduce_only,
        "timestamp": iso(order.created),
        "lastUpdateTimestamp": iso(order.updated),
    }
    if order.type in TRIGGERS:
        body["priceTriggerOptions"] = {
            "triggerPrice": num(order.trigger_price),
            "triggerSide": trigger_side(order).upper(),
            "triggerSignal": STATUS_SIGNAL[signal],
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
        "size": num(fill.size),
        "price": num(fill.price),
        "fillTime": iso(fill.ts),
        "fillType": execution.liquidity.value,
    }
    if fill.client_id is not None:
        row["cliOrdId"] = fill.client_id
    return row


def account_log_rows(execution: Execution, kraken_id: str, number: int) -> list[dict[str, object]]:
    """The two GET /account-log rows of the `number`-th execution (0-based), newest first as
    Kraken lists them: its cash leg (realised PnL and fee booked in the USD wallet) and its
    position leg (the contract's signed size before and after). Numbers are JSON numbers."""
    fill = execution.fill
    contract = kraken_id.lower()
    cash_before = execution.cash_after - execution.realised_pnl + fill.fee
    common = {
        "contract": contract,
        "date": iso(fill.ts),
        "execution": fill.fill_id,
        "info": "futures trade",
        "margin_account": "flex",
        "mark_price": finite(fill.price),
        "trade_price": finite(fill.price),
        "funding_rate": None,
        "realized_funding": None,
        "conversion_spread_percentage": None,
        "liquidation_fee": None,
    }
    cash = {
        **common,
        "id": 2 * number + 2,
        "asset": "usd",
        "booking_uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cash/{fill.fill_id}")),
        "fee": finite(fill.fee),
        "old_balance": finite(cash_before),
        "new_balance": finite(execution.cash_after),
        "realized_pnl": finite(execution.realised_pnl),
        "new_average_entry_price": None,
        "old_average_entry_price": None,
    }
    position = {
        **common,
        "id": 2 * number + 1,
        "asset": contract,
        "booking_uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"position/{fill.fill_id}")),
        "fee": None,
        "old_balance": finite(execution.position_before),
        "new_balance": finite(execution.position_after),
        "realized_pnl": None,
    }
    return [cash, position]


def position_json(
    report: PositionReport, kraken_id: str, opened: datetime | None
) -> dict[str, object]:
    """One row of GET /openpositions (cross margin, funding settled into the wallet). Kraken
    reports no unrealised PnL here: a client computes it from the mark."""
    return {
        "side": report.side.value,
        "symbol": kraken_id,
        "price": num(report.entry_price),
        "fillTime": iso(opened) if opened else None,
        "size": num(report.size),
        "unrealizedFunding": "0.0",
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
                "quantity": num(engine.cash),
                "value": num(engine.cash),
                "collateral": num(engine.cash),
                "available": num(available),
            }
        },
        "initialMargin": num(position_margin),
        "initialMarginWithOrders": num(with_orders),
        "maintenanceMargin": num(position_margin / 2),
        "balanceValue": num(engine.cash),
        "portfolioValue": num(equity),
        "collateralValue": num(engine.cash),
        "pnl": num(unrealised),
        "unrealizedFunding": "0.0",
        "totalUnrealized": num(unrealised),
        "totalUnrealizedAsMargin": num(unrealised),
        "availableMargin": num(available),
        "marginEquity": num(equity),
    }
    cash = {"type": "cashAccount", "balances": {"usd": "0.0", "xbt": "0.0"}}
    return {"flex": flex, "cash": cash}


def _size(order: WorkingOrder, lots: int) -> float:
    return from_lots(lots, order.market)
