"""The events the position machine (core/positions.py) accepts: small, frozen, typed.

Fill events are cumulative per venue order: `filled_size` is what that order has
filled so far, summed over its fills (each applied once, by fill id). Applying
the same cumulative figure twice changes nothing, so a repeated or late report
is harmless, and a fill the record already reflects (a size taken from the
venue at `Position.size_basis_ts`) is counted through `reflected`, never twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


class _Event:
    """Refuses a non-positive size or price on the fields the event lists in `_positive`."""

    __slots__ = ()
    _positive: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in self._positive:
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{type(self).__name__}: {name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class EntryPartiallyFilled(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("filled_size", "avg_price")
    position_id: str
    filled_size: float  # cumulative entry fill so far
    avg_price: float


@dataclass(frozen=True, slots=True)
class EntryFilled(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("filled_size", "avg_price")
    position_id: str
    filled_size: float  # cumulative, final: the entry order is done
    avg_price: float


@dataclass(frozen=True, slots=True)
class EntryRejected(_Event):
    position_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class EntryCancelled(_Event):
    """The entry order ended (cancelled, expired, or an IOC remainder dropped)."""

    position_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StopPlaced(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("trigger_price", "size")
    position_id: str
    venue_order_id: str
    trigger_price: float
    size: float


@dataclass(frozen=True, slots=True)
class StopMoved(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("trigger_price", "size")
    position_id: str
    venue_order_id: str  # the replacement stop
    trigger_price: float
    size: float


@dataclass(frozen=True, slots=True)
class StopRejected(_Event):
    position_id: str
    client_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StopCancelled(_Event):
    position_id: str
    venue_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StopMissing(_Event):
    """Reconciliation found the position at the venue without its stop."""

    position_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StopFilled(_Event):
    """A stop order filled `filled_size` so far (cumulative for that order).

    `done`: the order is finished (its whole size filled). A stop that filled
    only partly keeps working; if its rest is cancelled, reconciliation reports
    the stop missing. `venue_order_id` None means the position's current stop.
    `reflected`: the part of `filled_size` whose fills the record's size already
    reflects (fills at or before `size_basis_ts`).
    """

    _positive: ClassVar[tuple[str, ...]] = ("filled_size", "price")
    position_id: str
    filled_size: float
    price: float
    venue_order_id: str | None = None
    done: bool = True
    reflected: float = 0.0


@dataclass(frozen=True, slots=True)
class TpPlaced(_Event):
    _positive: ClassVar[tuple[str, ...]] = ("trigger_price", "size")
    position_id: str
    level: int
    venue_order_id: str
    trigger_price: float
    size: float


@dataclass(frozen=True, slots=True)
class TpRejected(_Event):
    position_id: str
    level: int
    client_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TpCancelled(_Event):
    position_id: str
    level: int
    venue_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TpFilled(_Event):
    """A take-profit order of `level` filled `filled_size` so far (cumulative, as StopFilled)."""

    _positive: ClassVar[tuple[str, ...]] = ("filled_size", "price")
    position_id: str
    level: int
    filled_size: float
    price: float
    venue_order_id: str | None = None
    done: bool = True
    reflected: float = 0.0


@dataclass(frozen=True, slots=True)
class CloseRequested(_Event):
    """A deliberate decision to close a known position (operator, kill switch, strategy)."""

    position_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class FlattenFilled(_Event):
    """A flatten order filled `filled_size` so far (cumulative, as StopFilled)."""

    _positive: ClassVar[tuple[str, ...]] = ("filled_size", "price")
    position_id: str
    filled_size: float
    price: float
    venue_order_id: str | None = None
    done: bool = True
    reflected: float = 0.0


@dataclass(frozen=True, slots=True)
class PositionGone(_Event):
    """The venue no longer holds the position (confirmed by a second check).

    `realised_pnl` is the venue's own figure when the exit could not be seen in
    fills (an exit older than the fill look-back), None when unknown.
    """

    position_id: str
    reason: str
    realised_pnl: float | None = None


@dataclass(frozen=True, slots=True)
class SizeCorrected(_Event):
    """The venue holds a different size on the same side: its truth replaces the record's.

    `basis_ts` is when the venue reported `venue_size`: fills at or before it are
    already in that size and are not applied to it again when they arrive late.
    """

    position_id: str
    venue_size: float
    basis_ts: datetime
    reason: str

    def __post_init__(self) -> None:
        if not self.venue_size > 0:
            raise ValueError(f"SizeCorrected: venue_size must be positive, got {self.venue_size}")
        if self.basis_ts.tzinfo is None:
            raise ValueError("SizeCorrected: basis_ts must be timezone-aware UTC")


PositionEvent = (
    EntryPartiallyFilled
    | EntryFilled
    | EntryRejected
    | EntryCancelled
    | StopPlaced
    | StopMoved
    | StopRejected
    | StopCancelled
    | StopMissing
    | StopFilled
    | TpPlaced
    | TpRejected
    | TpCancelled
    | TpFilled
    | CloseRequested
    | FlattenFilled
    | PositionGone
    | SizeCorrected
)
EVENT_TYPES: tuple[type, ...] = (
    EntryPartiallyFilled,
    EntryFilled,
    EntryRejected,
    EntryCancelled,
    StopPlaced,
    StopMoved,
    StopRejected,
    StopCancelled,
    StopMissing,
    StopFilled,
    TpPlaced,
    TpRejected,
    TpCancelled,
    TpFilled,
    CloseRequested,
    FlattenFilled,
    PositionGone,
    SizeCorrected,
)
FILL_EVENTS: tuple[type, ...] = (StopFilled, TpFilled, FlattenFilled)
