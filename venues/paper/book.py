"""Net position per market and the lot arithmetic behind it.

Sizes live as integer lot counts inside the engine so that partial fills,
reduce-only cuts and flips never accumulate float drift; they become floats
only at the record boundary (core.orders).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.market import MarketInfo


def to_lots(size: float, market: MarketInfo) -> int | None:
    """size as a whole number of lots, or None when it is off the lot grid."""
    q = Decimal(repr(size)) / Decimal(repr(market.lot_size))
    if q != q.to_integral_value():
        return None
    return int(q)


def from_lots(lots: int, market: MarketInfo) -> float:
    """lots back to contracts, exactly (Decimal product, one rounding to float)."""
    return float(lots * Decimal(repr(market.lot_size)))


def units_per_lot(market: MarketInfo) -> float:
    """Base-asset units carried by one lot: the factor from lots to notional."""
    return market.lot_size * market.contract_size


@dataclass(slots=True)
class PositionBook:
    """Signed net position of one market: lots > 0 long, < 0 short, 0 flat."""

    lots: int = 0
    avg_price: float = 0.0
    last_fill: datetime | None = None

    def apply(self, signed_lots: int, price: float, unit: float, ts: datetime) -> float:
        """Add a fill; returns the realised PnL of the part that closed exposure."""
        self.last_fill = ts
        if self.lots == 0 or (self.lots > 0) == (signed_lots > 0):
            total = abs(self.lots) + abs(signed_lots)
            self.avg_price = (abs(self.lots) * self.avg_price + abs(signed_lots) * price) / total
            self.lots += signed_lots
            return 0.0
        closed = min(abs(self.lots), abs(signed_lots))
        direction = 1 if self.lots > 0 else -1
        realised = closed * unit * (price - self.avg_price) * direction
        self.lots += signed_lots
        if self.lots == 0:
            self.avg_price = 0.0
        elif (self.lots > 0) != (direction > 0):
            self.avg_price = price  # flipped: the remainder opened at this fill's price
        return realised

    def unrealised(self, mark: float | None, unit: float) -> float:
        if self.lots == 0 or mark is None:
            return 0.0
        return self.lots * unit * (mark - self.avg_price)
