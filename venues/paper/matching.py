"""When a resting or triggered order fills inside one bar, and at what price.

Trigger orders (stop-market, take-profit) fill at their trigger price, or at
the bar's open when the bar gapped through it (the first traded price past the
trigger). Resting limit orders fill at their limit price: a resting order is
filled at its own price even when the market gaps through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.orders import OrderSide, OrderType
from core.precision import round_away


@dataclass(frozen=True, slots=True)
class Bar:
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None  # base units; None for a single price tick

    def __post_init__(self) -> None:
        if min(self.open, self.high, self.low, self.close) <= 0:
            raise ValueError(f"bar at {self.ts}: prices must be positive, got {self}")
        if self.low > min(self.open, self.close) or self.high < max(self.open, self.close):
            raise ValueError(
                f"bar at {self.ts}: low {self.low} / high {self.high} do not enclose "
                f"open {self.open} and close {self.close}; pass a consistent OHLC bar"
            )


def limit_touched(side: OrderSide, limit: float, bar: Bar) -> bool:
    return bar.low <= limit if side is OrderSide.BUY else bar.high >= limit


def is_triggered(kind: OrderType, side: OrderSide, trigger: float, bar: Bar) -> bool:
    """A sell stop fires when price falls to it, a sell take-profit when price rises to it."""
    falls_to = (kind is OrderType.STOP) == (side is OrderSide.SELL)
    return bar.low <= trigger if falls_to else bar.high >= trigger


def trigger_fill_price(kind: OrderType, side: OrderSide, trigger: float, bar: Bar) -> float:
    """The trigger price, or the open when the bar opened already past it."""
    falls_to = (kind is OrderType.STOP) == (side is OrderSide.SELL)
    return min(bar.open, trigger) if falls_to else max(bar.open, trigger)


def taker_price(price: float, side: OrderSide, slippage_bps: float, tick: float) -> float:
    """price moved against the taker by the slippage, then onto the tick grid (away from him)."""
    factor = 1 + slippage_bps / 10_000 if side is OrderSide.BUY else 1 - slippage_bps / 10_000
    return round_away(price * factor, tick, up=side is OrderSide.BUY)


def limit_crosses(side: OrderSide, limit: float, mark: float) -> bool:
    """A limit order that would trade at once against the current price (taker)."""
    return limit >= mark if side is OrderSide.BUY else limit <= mark
