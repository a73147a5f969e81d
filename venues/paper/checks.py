"""Pre-trade checks of one order request against its market's grid. Pure functions."""

from __future__ import annotations

from core.market import MarketInfo
from core.orders import OrderRequest, OrderType
from core.precision import is_multiple
from venues.paper.book import to_lots
from venues.paper.errors import OrderRejectedError, RejectReason


def checked_lots(request: OrderRequest, market: MarketInfo) -> int:
    """The request's size in lots. Refuses sizes off the lot grid or below the minimum."""
    lots = to_lots(request.size, market)
    if lots is None:
        raise OrderRejectedError(
            request.client_id,
            RejectReason.INVALID_SIZE,
            f"size {request.size} is not a multiple of {market.symbol}'s lot {market.lot_size}; "
            "floor it with core.precision.floor_to_step",
        )
    if request.size < market.min_size:
        raise OrderRejectedError(
            request.client_id,
            RejectReason.INVALID_SIZE,
            f"size {request.size} is below {market.symbol}'s minimum {market.min_size}",
        )
    return lots


def _on_tick(request: OrderRequest, market: MarketInfo, name: str, value: float) -> None:
    if value <= 0 or not is_multiple(value, market.tick_size):
        raise OrderRejectedError(
            request.client_id,
            RejectReason.INVALID_PRICE,
            f"{name} {value} is not a positive multiple of {market.symbol}'s tick "
            f"{market.tick_size}; round it with core.precision.round_to_step",
        )


def check_prices(request: OrderRequest, market: MarketInfo) -> None:
    """Refuses prices off the tick grid and price fields the order type does not use."""
    if request.type is OrderType.LIMIT:
        assert request.price is not None  # OrderRequest guarantees it
        _on_tick(request, market, "price", request.price)
        if request.trigger_price is not None:
            raise OrderRejectedError(
                request.client_id,
                RejectReason.INVALID_PRICE,
                "a limit order takes no trigger_price; send a STOP or TAKE_PROFIT order instead",
            )
        return
    if request.type is OrderType.MARKET:
        if request.price is not None:
            raise OrderRejectedError(
                request.client_id,
                RejectReason.INVALID_PRICE,
                "a market order takes no limit price; send a LIMIT order instead",
            )
        return
    assert request.trigger_price is not None  # OrderRequest guarantees it
    _on_tick(request, market, "trigger_price", request.trigger_price)
    if request.price is not None:  # a stop-limit / take-profit-limit
        _on_tick(request, market, "price", request.price)
