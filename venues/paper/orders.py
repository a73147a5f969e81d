"""The engine's working orders and what it reports back (executions, placements, cancels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.market import MarketInfo
from core.orders import Fill, Order, OrderSide, OrderStatus, OrderType
from venues.paper.book import from_lots


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class CancelOutcome(StrEnum):
    """Kraken's `cancelStatus.status` values."""

    CANCELLED = "cancelled"
    FILLED = "filled"  # too late: the order had filled
    NOT_FOUND = "notFound"  # unknown, or already cancelled


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill with what the shared Fill record does not carry (what an account log books)."""

    fill: Fill
    liquidity: Liquidity
    order_type: OrderType
    filled_before: float  # the order's filled size before this execution
    realised_pnl: float = 0.0  # PnL of the part that closed exposure, before the fee
    position_before: float = 0.0  # signed contracts of the market, long > 0
    position_after: float = 0.0
    cash_after: float = 0.0  # the wallet after realised PnL and fee


@dataclass(frozen=True, slots=True)
class Placement:
    """A submission that was accepted: the order after submission and any immediate fills."""

    order: Order
    executions: tuple[Execution, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryForgotten:
    """What the engine no longer keeps: closed orders and executions older than `before`
    that nothing still needs (see PaperEngine.forget_history). Counts since the start."""

    executions: int = 0
    orders: int = 0
    before: datetime | None = None


@dataclass(frozen=True, slots=True)
class CancelResult:
    outcome: CancelOutcome
    order: Order | None  # the order after the attempt; None when the venue never knew it


@dataclass(slots=True)
class WorkingOrder:
    """Mutable engine state of one order; only the engine changes it."""

    venue_order_id: str
    client_id: str | None
    market: MarketInfo
    side: OrderSide
    type: OrderType
    size_lots: int
    price: float | None
    trigger_price: float | None
    reduce_only: bool
    created: datetime
    updated: datetime
    filled_lots: int = 0
    status: OrderStatus = OrderStatus.OPEN
    triggered: bool = False  # a stop / take-profit whose trigger was hit, now filling
    fill_value: float = field(default=0.0)  # sum of lots * price, for the average fill price

    @property
    def sign(self) -> int:
        return 1 if self.side is OrderSide.BUY else -1

    @property
    def remaining_lots(self) -> int:
        return self.size_lots - self.filled_lots

    @property
    def is_open(self) -> bool:
        return self.status is OrderStatus.OPEN

    @property
    def average_price(self) -> float | None:
        return self.fill_value / self.filled_lots if self.filled_lots else None

    def snapshot(self) -> Order:
        return Order(
            venue_order_id=self.venue_order_id,
            client_id=self.client_id,
            symbol=self.market.symbol,
            side=self.side,
            type=self.type,
            size=from_lots(self.size_lots, self.market),
            filled=from_lots(self.filled_lots, self.market),
            status=self.status,
            price=self.price,
            trigger_price=self.trigger_price,
            reduce_only=self.reduce_only,
            ts=self.created,
        )
