"""Order, fill, position and account records shared by every venue and the gateway.

Prices and sizes are floats at the interfaces and are always put on the
market's grid with `core.precision` (Decimal arithmetic) before an order is
built, never with ad-hoc rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"

    @property
    def entry_order_side(self) -> OrderSide:
        return OrderSide.BUY if self is PositionSide.LONG else OrderSide.SELL

    @property
    def exit_order_side(self) -> OrderSide:
        return OrderSide.SELL if self is PositionSide.LONG else OrderSide.BUY


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"  # stop-market, triggered by the mark price
    TAKE_PROFIT = "take_profit"  # take-profit market, triggered by the mark price


class OrderStatus(StrEnum):
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What the gateway asks a venue to do. client_id is the idempotency key."""

    symbol: str
    side: OrderSide
    type: OrderType
    size: float  # in contracts, already a multiple of the lot size
    client_id: str  # derived from the intent; at most 100 characters (Kraken cliOrdId)
    price: float | None = None  # LIMIT only
    trigger_price: float | None = None  # STOP and TAKE_PROFIT only
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"order {self.client_id}: size must be positive, got {self.size}")
        if self.type is OrderType.LIMIT and self.price is None:
            raise ValueError(f"order {self.client_id}: a limit order needs a price")
        if self.type in (OrderType.STOP, OrderType.TAKE_PROFIT) and self.trigger_price is None:
            raise ValueError(f"order {self.client_id}: a {self.type} order needs a trigger_price")
        if not self.client_id or len(self.client_id) > 100:
            raise ValueError(f"order client_id must be 1..100 characters, got {self.client_id!r}")


@dataclass(frozen=True, slots=True)
class Order:
    """A venue's view of one order."""

    venue_order_id: str
    client_id: str | None  # None for orders the bot did not place (found at the venue)
    symbol: str
    side: OrderSide
    type: OrderType
    size: float
    filled: float
    status: OrderStatus
    price: float | None = None
    trigger_price: float | None = None
    reduce_only: bool = False
    ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    fill_id: str
    venue_order_id: str
    client_id: str | None
    symbol: str
    side: OrderSide
    size: float
    price: float
    fee: float
    ts: datetime


@dataclass(frozen=True, slots=True)
class RealisedPnl:
    """One fill as the venue's account log booked it: the PnL it realised and its fee.

    The account log reaches further back than the fills list, so an exit older than the
    fills look-back can still be recovered from it. fill_id is the venue's execution id
    (the fill id /fills reports); position_before / position_after are signed contracts
    (long > 0), None when the venue did not say.
    """

    entry_id: str
    symbol: str
    fill_id: str | None
    ts: datetime
    realised_pnl: float
    fee: float
    price: float | None = None
    position_before: float | None = None
    position_after: float | None = None

    @property
    def closed_position(self) -> bool:
        """True when this fill left the position flat (an exit, not a partial reduction)."""
        return self.position_after == 0 and bool(self.position_before)


@dataclass(frozen=True, slots=True)
class PositionReport:
    """A venue's view of one open position."""

    symbol: str
    side: PositionSide
    size: float  # contracts, positive
    entry_price: float
    mark_price: float | None = None
    unrealized_pnl: float | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    equity: float  # wallet balance + unrealised PnL, settlement currency
    margin_used: float  # initial margin of open positions
    currency: str = "USD"

    @property
    def margin_utilization(self) -> float:
        return self.margin_used / self.equity if self.equity > 0 else float("inf")


@runtime_checkable
class OrderVenue(Protocol):
    """Orders, positions and the account. Implemented by paper and kraken venues."""

    def submit(self, request: OrderRequest) -> Order:
        """Place an order. Raises VenueRetryableError when the outcome is unknown."""
        ...

    def cancel(self, venue_order_id: str) -> Order | None:
        """Cancel one order; None if the venue no longer knows it."""
        ...

    def order_by_client_id(self, client_id: str) -> Order | None:
        """The order placed with this client id (open or recently closed), if any."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[Order]: ...

    def positions(self) -> list[PositionReport]: ...

    def balance(self) -> Balance: ...

    def fills(self, since: datetime | None = None) -> list[Fill]: ...
