"""The REST endpoints ccxt's krakenfutures calls, each a function of (exchange, request) -> JSON.

Paths, parameter names and response envelopes are Kraken Futures'. POST
parameters travel in the query string (ccxt) or a form body; batchorder
carries `json=<instructions>` in the body.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from venues.kraken_sim.exchange import TRIGGER_SIGNALS, ApiError, OrderSpec, SimExchange
from venues.kraken_sim.faults import (
    BATCH_BASE_COST,
    ENDPOINT_COST,
    FILLS_WITH_LAST_FILL_TIME_COST,
)

V3 = "/derivatives/api/v3/"
HISTORY = "/api/history/v3/"
CHARTS = re.compile(
    r"^/api/charts/v1/(?P<price_type>trade|mark|spot)/(?P<symbol>[^/]+)/(?P<interval>[^/]+)$"
)


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: str
    query: str  # raw, exactly as sent: part of what the signature covers
    body: str
    path_args: dict[str, str]

    @property
    def params(self) -> dict[str, list[str]]:
        merged = parse_qs(self.query, keep_blank_values=True)
        if self.body and not self.body.startswith("json="):
            for key, values in parse_qs(self.body, keep_blank_values=True).items():
                merged.setdefault(key, []).extend(values)
        return merged

    def one(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else None

    def many(self, name: str) -> list[str]:
        return self.params.get(name, [])

    def json_body(self) -> Any:
        """The `json=` payload of batchorder, url-encoded or not."""
        raw = self.body[len("json=") :] if self.body.startswith("json=") else self.one("json")
        if raw is None:
            raise ApiError("requiredArgumentMissing")
        for text in (raw, unquote_plus(raw)):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                continue
        raise ApiError("Json Parse Error")


Handler = Callable[[SimExchange, ApiRequest], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    methods: frozenset[str]
    private: bool
    handler: Handler
    enveloped: bool = True  # {"result": "success", "serverTime": ...} around the body

    def cost(self, request: ApiRequest) -> int:
        """Kraken's rate-limit cost of this request (public endpoints cost nothing)."""
        if not self.private or self.name == "account-log":
            return 0  # /history draws on its own pool, not modelled
        if self.name == "fills" and request.one("lastFillTime"):
            return FILLS_WITH_LAST_FILL_TIME_COST
        if self.name == "batchorder":
            try:
                return BATCH_BASE_COST + len(request.json_body().get("batchOrder", []))
            except (ApiError, AttributeError):
                return BATCH_BASE_COST
        return ENDPOINT_COST.get(self.name, 1)


# -- parameter parsing ----------------------------------------------------------------


def _number(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(str(value))
    except ValueError:
        return math.nan  # the caller's range check turns it into invalidSize / invalidPrice
    return number


def _flag(value: object) -> bool:
    return str(value).lower() in ("true", "1") if value is not None else False


def order_spec(get: Callable[[str], object]) -> OrderSpec:
    """sendorder's fields from a parameter getter (query string or batch instruction).
    Refuses a triggerSignal outside Kraken's enum mark / index / last (invalidArgument)."""
    signal = str(get("triggerSignal") or "mark")
    if signal not in TRIGGER_SIGNALS:
        raise ApiError("invalidArgument")
    limit = _number(get("limitPrice"))
    stop = _number(get("stopPrice"))
    cli = get("cliOrdId")
    return OrderSpec(
        order_type=str(get("orderType") or ""),
        symbol=str(get("symbol") or ""),
        side=str(get("side") or ""),
        size=_number(get("size")),
        limit_price=None if limit is None or math.isnan(limit) else limit,
        stop_price=None if stop is None or math.isnan(stop) else stop,
        cli_ord_id=str(cli) if cli not in (None, "") else None,
        reduce_only=_flag(get("reduceOnly")),
        trigger_signal=signal,
    )


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError("invalidArgument") from exc


def _ms_time(value: str | None) -> datetime | None:
    """A time given in epoch milliseconds, as the history API takes it."""
    if value is None or value == "":
        return None
    try:
        return datetime.fromtimestamp(int(float(value)) / 1000, UTC)
    except (ValueError, OverflowError) as exc:
        raise ApiError("invalidArgument") from exc


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ApiError("invalidArgument") from exc


def _seconds(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except ValueError as exc:
        raise ApiError("invalidArgument") from exc


# -- handlers ---------------------------------------------------------------------------


def instruments(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return {"instruments": ex.instruments()}


def tickers(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return {"tickers": ex.tickers()}


def ticker(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    wanted = req.path_args["symbol"].upper()
    row = next((t for t in ex.tickers() if t["symbol"] == wanted), None)
    if row is None:
        raise ApiError("contractNotFound")
    return {"ticker": row}


def charts(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    a = req.path_args
    return ex.candles(
        a["symbol"],
        a["price_type"],
        a["interval"],
        _seconds(req.one("from")),
        _seconds(req.one("to")),
    )


def accounts(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return {"accounts": ex.accounts()}


def open_positions(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return {"openPositions": ex.positions()}


def open_orders(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return {"openOrders": ex.open_orders()}


def orders_status(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return {"orders": ex.order_statuses(req.many("orderIds"), req.many("cliOrdIds"))}


def fills(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return {"fills": ex.fills(_time(req.one("lastFillTime")))}


def account_log(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return ex.account_log(
        since=_ms_time(req.one("since")),
        before=_ms_time(req.one("before")),
        from_id=_int(req.one("from")),
        to_id=_int(req.one("to")),
        ascending=(req.one("sort") or "desc") == "asc",
        count=_int(req.one("count")),
        info=req.one("info"),
    )


def send_order(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return {"sendStatus": ex.place(order_spec(req.one))}


def cancel_order(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return {"cancelStatus": ex.cancel(req.one("order_id"), req.one("cliOrdId"))}


def cancel_all_orders(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    return {"cancelStatus": ex.cancel_all(req.one("symbol"))}


def _batch_item(ex: SimExchange, item: dict[str, Any]) -> dict[str, Any]:
    action = item.get("order")
    if action == "send":
        try:
            status = ex.place(order_spec(item.get))
        except ApiError as exc:
            status = {"status": exc.code, "orderEvents": []}
        status["order_tag"] = item.get("order_tag")
        status["dateTimeReceived"] = status.pop("receivedTime", None)
        return status
    if action == "cancel":
        order_id, cli = item.get("order_id"), item.get("cliOrdId")
        return ex.cancel(str(order_id) if order_id else None, str(cli) if cli else None)
    return {"status": "invalidArgument", "orderEvents": []}  # edit is not simulated


def batch_order(ex: SimExchange, req: ApiRequest) -> dict[str, Any]:
    payload = req.json_body()
    items = payload.get("batchOrder") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise ApiError("requiredArgumentMissing")
    return {"batchStatus": [_batch_item(ex, item) for item in items if isinstance(item, dict)]}


GET, POST = frozenset({"GET"}), frozenset({"POST"})
ROUTES: dict[str, Route] = {
    f"{V3}instruments": Route("instruments", GET, False, instruments),
    f"{V3}tickers": Route("tickers", GET, False, tickers),
    f"{V3}accounts": Route("accounts", GET, True, accounts),
    f"{V3}openpositions": Route("openpositions", GET, True, open_positions),
    f"{V3}openorders": Route("openorders", GET, True, open_orders),
    f"{V3}orders/status": Route("orders/status", GET | POST, True, orders_status),
    f"{V3}fills": Route("fills", GET, True, fills),
    f"{V3}sendorder": Route("sendorder", POST, True, send_order),
    f"{V3}cancelorder": Route("cancelorder", POST, True, cancel_order),
    f"{V3}cancelallorders": Route("cancelallorders", POST, True, cancel_all_orders),
    f"{V3}batchorder": Route("batchorder", POST, True, batch_order),
    # the history API answers without the result/serverTime envelope
    f"{HISTORY}account-log": Route("account-log", GET, True, account_log, enveloped=False),
}
TICKER = re.compile(rf"^{V3}tickers/(?P<symbol>[^/]+)$")
TICKER_ROUTE = Route("tickers", GET, False, ticker)
CHARTS_ROUTE = Route("charts", GET, False, charts, enveloped=False)


def resolve(path: str) -> tuple[Route, dict[str, str]] | None:
    """The route serving this URL path, with the values of its path parameters."""
    route = ROUTES.get(path)
    if route is not None:
        return route, {}
    for pattern, candidate in ((TICKER, TICKER_ROUTE), (CHARTS, CHARTS_ROUTE)):
        match = pattern.match(path)
        if match:
            return candidate, match.groupdict()
    return None
