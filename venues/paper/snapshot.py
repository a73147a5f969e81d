"""The paper engine's state as plain JSON data, and back, checked field by field.

`EngineState` is everything a PaperEngine holds; `write_engine_state` turns it
into JSON-ready dicts and lists, `read_engine_state` refuses anything that is
not exactly such data (PaperStateError naming the field). The open-order and
client-id indexes are not written: they follow from the orders (kept in the
order they were accepted) and their status, so they cannot disagree with them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from core.market import MarketInfo
from core.orders import Fill, OrderSide, OrderStatus, OrderType
from venues.paper.book import PositionBook
from venues.paper.config import PaperConfig
from venues.paper.errors import PaperStateError
from venues.paper.orders import Execution, HistoryForgotten, Liquidity, WorkingOrder
from venues.paper.reader import JsonObject, write_time

Json = dict[str, Any]

ENGINE_KEYS = (
    "config",
    "markets",
    "leverage",
    "ids",
    "account",
    "positions",
    "marks",
    "volumes",
    "orders",
    "executions",
    "forgotten",
)
ACCOUNT_KEYS = ("cash", "realised_pnl", "fees_paid", "funding_paid")
MARKET_KEYS = tuple(f.name for f in fields(MarketInfo))
CONFIG_KEYS = tuple(f.name for f in fields(PaperConfig))
BOOK_KEYS = ("lots", "avg_price", "last_fill")
ORDER_KEYS = (
    "venue_order_id",
    "client_id",
    "symbol",
    "side",
    "type",
    "size_lots",
    "filled_lots",
    "price",
    "trigger_price",
    "reduce_only",
    "status",
    "triggered",
    "fill_value",
    "created",
    "updated",
)
EXECUTION_KEYS = (
    "fill_id",
    "venue_order_id",
    "client_id",
    "symbol",
    "side",
    "size",
    "price",
    "fee",
    "ts",
    "liquidity",
    "order_type",
    "filled_before",
    "realised_pnl",
    "position_before",
    "position_after",
    "cash_after",
)
ORDER_FIELDS, EXECUTION_FIELDS = frozenset(ORDER_KEYS), frozenset(EXECUTION_KEYS)  # read per row
MT_STATE_WORDS = 625  # random.Random (Mersenne Twister): 624 words and the position in them


@dataclass(frozen=True, slots=True)
class EngineState:
    """A PaperEngine's whole state; orders and executions oldest first."""

    config: PaperConfig
    markets: tuple[MarketInfo, ...]
    leverage: Mapping[str, float]
    ids: tuple[Any, ...]  # random.Random.getstate() of the id generator
    cash: float
    realised_pnl: float
    fees_paid: float
    funding_paid: float
    books: Mapping[str, PositionBook]
    marks: Mapping[str, float]
    volumes: Mapping[str, float | None]
    orders: tuple[WorkingOrder, ...]
    executions: tuple[Execution, ...]
    forgotten: HistoryForgotten


# -- writing ----------------------------------------------------------------------------


def write_engine_state(state: EngineState) -> Json:
    """JSON-ready data (dicts, lists, str, int, float, bool, None) with ENGINE_KEYS."""
    version, words, gauss_next = state.ids
    return {
        "config": _write_config(state.config),
        "markets": [{k: getattr(m, k) for k in MARKET_KEYS} for m in state.markets],
        "leverage": dict(state.leverage),
        "ids": {"version": version, "words": list(words), "gauss_next": gauss_next},
        "account": {
            "cash": state.cash,
            "realised_pnl": state.realised_pnl,
            "fees_paid": state.fees_paid,
            "funding_paid": state.funding_paid,
        },
        "positions": {
            symbol: {"lots": b.lots, "avg_price": b.avg_price, "last_fill": write_time(b.last_fill)}
            for symbol, b in state.books.items()
        },
        "marks": dict(state.marks),
        "volumes": dict(state.volumes),
        "orders": [_write_order(o) for o in state.orders],
        "executions": [_write_execution(e) for e in state.executions],
        "forgotten": {
            "executions": state.forgotten.executions,
            "orders": state.forgotten.orders,
            "before": write_time(state.forgotten.before),
        },
    }


def _write_config(config: PaperConfig) -> Json:
    data = {k: getattr(config, k) for k in CONFIG_KEYS}
    data["leverage"] = dict(config.leverage)
    data["trigger_partial_kinds"] = list(config.trigger_partial_kinds)
    return data


def _write_order(o: WorkingOrder) -> Json:
    return {
        "venue_order_id": o.venue_order_id,
        "client_id": o.client_id,
        "symbol": o.market.symbol,
        "side": o.side.value,
        "type": o.type.value,
        "size_lots": o.size_lots,
        "filled_lots": o.filled_lots,
        "price": o.price,
        "trigger_price": o.trigger_price,
        "reduce_only": o.reduce_only,
        "status": o.status.value,
        "triggered": o.triggered,
        "fill_value": o.fill_value,
        "created": write_time(o.created),
        "updated": write_time(o.updated),
    }


def _write_execution(e: Execution) -> Json:
    f = e.fill
    return {
        "fill_id": f.fill_id,
        "venue_order_id": f.venue_order_id,
        "client_id": f.client_id,
        "symbol": f.symbol,
        "side": f.side.value,
        "size": f.size,
        "price": f.price,
        "fee": f.fee,
        "ts": write_time(f.ts),
        "liquidity": e.liquidity.value,
        "order_type": e.order_type.value,
        "filled_before": e.filled_before,
        "realised_pnl": e.realised_pnl,
        "position_before": e.position_before,
        "position_after": e.position_after,
        "cash_after": e.cash_after,
    }


# -- reading ----------------------------------------------------------------------------


def read_engine_state(data: object, where: str = "engine") -> EngineState:
    """The EngineState `data` describes. Refuses (PaperStateError, naming the field) any
    missing, unknown or mistyped field and any state the engine could not have reached:
    an order or execution of an unknown market, an execution of an unknown order, two
    open orders sharing a client id, fills beyond an order's size."""
    root = JsonObject(data, where, ENGINE_KEYS)
    config = _read_config(root.child("config", CONFIG_KEYS))
    markets = _read_markets(root)
    by_symbol = {m.symbol: m for m in markets}
    account = root.child("account", ACCOUNT_KEYS)
    orders = _read_orders(root, by_symbol)
    return EngineState(
        config=config,
        markets=markets,
        leverage=_read_leverage(root, by_symbol),
        ids=_read_ids(root.child("ids", ("version", "words", "gauss_next"))),
        cash=account.number("cash"),
        realised_pnl=account.number("realised_pnl"),
        fees_paid=account.number("fees_paid"),
        funding_paid=account.number("funding_paid"),
        books=_read_books(root, by_symbol),
        marks=_read_marks(root, by_symbol),
        volumes=_read_volumes(root, by_symbol),
        orders=orders,
        executions=_read_executions(root, by_symbol, {o.venue_order_id for o in orders}),
        forgotten=_read_forgotten(root.child("forgotten", ("executions", "orders", "before"))),
    )


def _read_config(obj: JsonObject) -> PaperConfig:
    leverage = {
        k: _positive(obj.at(f"leverage.{k}"), v) for k, v in obj.mapping("leverage").items()
    }
    kinds = []
    for i, kind in enumerate(obj.items("trigger_partial_kinds")):
        if kind not in {t.value for t in OrderType}:
            raise PaperStateError(obj.at(f"trigger_partial_kinds[{i}]"), f"unknown {kind!r}")
        kinds.append(kind)
    try:
        return PaperConfig(
            maker_fee=obj.number("maker_fee"),
            taker_fee=obj.number("taker_fee"),
            slippage_bps=obj.number("slippage_bps"),
            initial_cash=obj.number("initial_cash"),
            default_leverage=obj.number("default_leverage"),
            leverage=leverage,
            max_fill_fraction=obj.number("max_fill_fraction"),
            volume_participation=obj.optional_number("volume_participation"),
            check_margin=obj.flag("check_margin"),
            trigger_fill_fraction=obj.number("trigger_fill_fraction"),
            triggered_remainder=obj.text("triggered_remainder"),
            trigger_partial_kinds=tuple(kinds),
            seed=obj.integer("seed"),
        )
    except ValueError as exc:
        raise PaperStateError(obj.where, str(exc)) from None


def _positive(where: str, value: object) -> float:
    return JsonObject({"value": value}, where, ("value",)).number("value", positive=True)


def _read_markets(root: JsonObject) -> tuple[MarketInfo, ...]:
    markets: list[MarketInfo] = []
    for i, item in enumerate(root.items("markets")):
        obj = JsonObject(item, root.at(f"markets[{i}]"), MARKET_KEYS)
        market = MarketInfo(
            symbol=obj.text("symbol"),
            venue_symbol=obj.text("venue_symbol"),
            base=obj.text("base"),
            settle=obj.text("settle"),
            contract_size=obj.number("contract_size", positive=True),
            tick_size=obj.number("tick_size", positive=True),
            lot_size=obj.number("lot_size", positive=True),
            min_size=obj.number("min_size"),
            max_leverage=obj.number("max_leverage", positive=True),
        )
        if any(m.symbol == market.symbol for m in markets):
            raise PaperStateError(obj.at("symbol"), f"{market.symbol!r} is listed twice")
        markets.append(market)
    return tuple(markets)


def _same_markets(
    where: str, keys: Mapping[str, object], markets: Mapping[str, MarketInfo]
) -> None:
    if set(keys) != set(markets):
        missing, unknown = sorted(set(markets) - set(keys)), sorted(set(keys) - set(markets))
        raise PaperStateError(
            where, f"must name every market once: missing {missing}, unknown {unknown}"
        )


def _known_markets(
    where: str, keys: Mapping[str, object], markets: Mapping[str, MarketInfo]
) -> None:
    unknown = sorted(set(keys) - set(markets))
    if unknown:
        raise PaperStateError(where, f"names markets not in engine.markets: {unknown}")


def _read_leverage(root: JsonObject, markets: Mapping[str, MarketInfo]) -> dict[str, float]:
    data = root.mapping("leverage")
    _same_markets(root.at("leverage"), data, markets)
    return {s: _positive(root.at(f"leverage.{s}"), v) for s, v in data.items()}


def _read_ids(obj: JsonObject) -> tuple[Any, ...]:
    words = obj.items("words")
    if len(words) != MT_STATE_WORDS or not all(
        isinstance(w, int) and not isinstance(w, bool) and 0 <= w < 2**32 for w in words
    ):
        raise PaperStateError(obj.at("words"), f"expected {MT_STATE_WORDS} integers in [0, 2**32)")
    state = (obj.integer("version"), tuple(words), obj.optional_number("gauss_next"))
    try:
        random.Random().setstate(state)
    except (ValueError, TypeError, OverflowError) as exc:
        raise PaperStateError(obj.where, f"not a Mersenne Twister state: {exc}") from None
    return state


def _read_books(root: JsonObject, markets: Mapping[str, MarketInfo]) -> dict[str, PositionBook]:
    data = root.mapping("positions")
    _same_markets(root.at("positions"), data, markets)
    books = {}
    for symbol, item in data.items():
        obj = JsonObject(item, root.at(f"positions.{symbol}"), BOOK_KEYS)
        books[symbol] = PositionBook(
            obj.integer("lots"), obj.number("avg_price"), obj.optional_time("last_fill")
        )
    return books


def _read_marks(root: JsonObject, markets: Mapping[str, MarketInfo]) -> dict[str, float]:
    data = root.mapping("marks")
    _known_markets(root.at("marks"), data, markets)
    return {s: _positive(root.at(f"marks.{s}"), v) for s, v in data.items()}


def _read_volumes(root: JsonObject, markets: Mapping[str, MarketInfo]) -> dict[str, float | None]:
    data = root.mapping("volumes")
    _known_markets(root.at("volumes"), data, markets)
    obj = JsonObject(data, root.at("volumes"), data.keys())
    return {s: obj.optional_number(s) for s in data}


def _read_orders(root: JsonObject, markets: Mapping[str, MarketInfo]) -> tuple[WorkingOrder, ...]:
    orders: dict[str, WorkingOrder] = {}
    open_clients: dict[str, str] = {}
    for i, item in enumerate(root.items("orders")):
        obj = JsonObject(item, root.at(f"orders[{i}]"), ORDER_FIELDS)
        order = _read_order(obj, markets)
        if order.venue_order_id in orders:
            raise PaperStateError(obj.at("venue_order_id"), "used by an earlier order too")
        if order.is_open and order.client_id is not None:
            other = open_clients.setdefault(order.client_id, order.venue_order_id)
            if other != order.venue_order_id:
                raise PaperStateError(
                    obj.at("client_id"), f"open order {other} already carries this client id"
                )
        orders[order.venue_order_id] = order
    return tuple(orders.values())


def _read_order(obj: JsonObject, markets: Mapping[str, MarketInfo]) -> WorkingOrder:
    symbol = obj.text("symbol")
    if symbol not in markets:
        raise PaperStateError(obj.at("symbol"), f"{symbol!r} is not in engine.markets")
    order = WorkingOrder(
        venue_order_id=obj.text("venue_order_id"),
        client_id=obj.optional_text("client_id"),
        market=markets[symbol],
        side=obj.choice("side", OrderSide),
        type=obj.choice("type", OrderType),
        size_lots=obj.integer("size_lots", minimum=1),
        price=obj.optional_number("price", positive=True),
        trigger_price=obj.optional_number("trigger_price", positive=True),
        reduce_only=obj.flag("reduce_only"),
        created=obj.time("created"),
        updated=obj.time("updated"),
        filled_lots=obj.integer("filled_lots", minimum=0),
        status=obj.choice("status", OrderStatus),
        triggered=obj.flag("triggered"),
        fill_value=obj.number("fill_value"),
    )
    _check_order(obj, order)
    return order


def _check_order(obj: JsonObject, o: WorkingOrder) -> None:
    """Refuses fill counts and price fields the engine never produces for an order."""
    if o.filled_lots > o.size_lots:
        raise PaperStateError(obj.at("filled_lots"), f"{o.filled_lots} exceeds size_lots")
    if o.status is OrderStatus.OPEN and o.remaining_lots == 0:
        raise PaperStateError(obj.at("status"), "an order with nothing left to fill is not open")
    if o.status is OrderStatus.FILLED and o.remaining_lots:
        raise PaperStateError(obj.at("status"), "filled, yet lots remain")
    if o.status is OrderStatus.REJECTED:
        raise PaperStateError(obj.at("status"), "the engine keeps no rejected orders")
    if o.type is OrderType.LIMIT and (o.price is None or o.trigger_price is not None):
        raise PaperStateError(obj.where, "a limit order has a price and no trigger_price")
    if o.type is OrderType.MARKET and (o.price is not None or o.trigger_price is not None):
        raise PaperStateError(obj.where, "a market order has neither price nor trigger_price")
    if o.type in (OrderType.STOP, OrderType.TAKE_PROFIT) and o.trigger_price is None:
        raise PaperStateError(obj.at("trigger_price"), f"a {o.type} order needs one")
    if o.triggered and o.type not in (OrderType.STOP, OrderType.TAKE_PROFIT):
        raise PaperStateError(obj.at("triggered"), f"a {o.type} order has no trigger")


def _read_executions(
    root: JsonObject, markets: Mapping[str, MarketInfo], order_ids: set[str]
) -> tuple[Execution, ...]:
    executions = []
    for i, item in enumerate(root.items("executions")):
        obj = JsonObject(item, root.at(f"executions[{i}]"), EXECUTION_FIELDS)
        symbol, venue_order_id = obj.text("symbol"), obj.text("venue_order_id")
        if symbol not in markets:
            raise PaperStateError(obj.at("symbol"), f"{symbol!r} is not in engine.markets")
        if venue_order_id not in order_ids:
            raise PaperStateError(obj.at("venue_order_id"), "no such order in engine.orders")
        fill = Fill(
            fill_id=obj.text("fill_id"),
            venue_order_id=venue_order_id,
            client_id=obj.optional_text("client_id"),
            symbol=symbol,
            side=obj.choice("side", OrderSide),
            size=obj.number("size", positive=True),
            price=obj.number("price", positive=True),
            fee=obj.number("fee"),
            ts=obj.time("ts"),
        )
        executions.append(
            Execution(
                fill,
                obj.choice("liquidity", Liquidity),
                obj.choice("order_type", OrderType),
                obj.number("filled_before"),
                realised_pnl=obj.number("realised_pnl"),
                position_before=obj.number("position_before"),
                position_after=obj.number("position_after"),
                cash_after=obj.number("cash_after"),
            )
        )
    return tuple(executions)


def _read_forgotten(obj: JsonObject) -> HistoryForgotten:
    return HistoryForgotten(
        obj.integer("executions", minimum=0),
        obj.integer("orders", minimum=0),
        obj.optional_time("before"),
    )
