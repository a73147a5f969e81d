"""Typed actions: what the position machine and reconciliation ask the gateway to do.

Each action type is its own frozen dataclass that declares exactly the fields
it has; nothing is shared "just in case". A FLATTEN has a symbol and a reason
and no side, because the venue's position decides what a flatten sells or buys
(SPEC §6: a `None.value` on a side-less flatten once stopped all flattening).
Code that handles actions in general goes through `describe`, which never
assumes an optional field is set.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum, StrEnum
from typing import ClassVar

from core.orders import OrderSide, OrderType, PositionSide

MAX_CLIENT_ID = 100  # Kraken Futures cliOrdId limit
TP_LEVELS = (1, 2, 3)
UNKNOWN_SIDE = "unknown"


class ActionType(StrEnum):
    PLACE_ENTRY = "place_entry"
    PLACE_STOP = "place_stop"
    PLACE_TP = "place_tp"
    MOVE_STOP = "move_stop"
    CANCEL = "cancel"
    FLATTEN = "flatten"
    CLOSE_RECORD = "close_record"
    IMPORT_POSITION = "import_position"
    NO_ACTION = "no_action"


def _require_positive(name: str, value: float, owner: str) -> None:
    if not value > 0:
        raise ValueError(f"{owner}: {name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class PlaceEntry:
    """Open a position: a market or limit order on the entry side."""

    action_type: ClassVar[ActionType] = ActionType.PLACE_ENTRY
    position_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    size: float
    client_id: str
    price: float | None = None  # LIMIT only

    def __post_init__(self) -> None:
        _require_positive("size", self.size, self.client_id)
        if self.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise ValueError(
                f"{self.client_id}: an entry is market or limit, not {self.order_type}"
            )
        if (self.order_type is OrderType.LIMIT) != (self.price is not None):
            raise ValueError(f"{self.client_id}: a price is required for limit entries only")


@dataclass(frozen=True, slots=True)
class PlaceStop:
    """A reduce-only stop-market exit; side is the exit order side."""

    action_type: ClassVar[ActionType] = ActionType.PLACE_STOP
    position_id: str
    symbol: str
    side: OrderSide
    size: float
    trigger_price: float
    client_id: str

    def __post_init__(self) -> None:
        _require_positive("size", self.size, self.client_id)
        _require_positive("trigger_price", self.trigger_price, self.client_id)


@dataclass(frozen=True, slots=True)
class PlaceTp:
    """A reduce-only take-profit exit for ladder level 1..3."""

    action_type: ClassVar[ActionType] = ActionType.PLACE_TP
    position_id: str
    symbol: str
    side: OrderSide
    level: int
    size: float
    trigger_price: float
    client_id: str

    def __post_init__(self) -> None:
        if self.level not in TP_LEVELS:
            raise ValueError(f"{self.client_id}: TP level must be 1..3, got {self.level}")
        _require_positive("size", self.size, self.client_id)
        _require_positive("trigger_price", self.trigger_price, self.client_id)


@dataclass(frozen=True, slots=True)
class MoveStop:
    """Replace the working stop `replaces_order_id` by one at a new trigger and size.

    The gateway places the new stop before it cancels the old one, so the
    position is never without a stop in between.
    """

    action_type: ClassVar[ActionType] = ActionType.MOVE_STOP
    position_id: str
    symbol: str
    side: OrderSide
    size: float
    trigger_price: float
    replaces_order_id: str
    client_id: str

    def __post_init__(self) -> None:
        _require_positive("size", self.size, self.client_id)
        _require_positive("trigger_price", self.trigger_price, self.client_id)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel one of our orders, named by venue order id or by client id (at least one)."""

    action_type: ClassVar[ActionType] = ActionType.CANCEL
    position_id: str
    symbol: str
    reason: str
    venue_order_id: str | None = None
    client_id: str | None = None

    def __post_init__(self) -> None:
        if self.venue_order_id is None and self.client_id is None:
            raise ValueError(f"cancel for {self.position_id}: needs a venue_order_id or client_id")


@dataclass(frozen=True, slots=True)
class Flatten:
    """Close whatever the venue holds on `symbol` with a reduce-only market order. No side.

    `client_id` comes from `client_id_for` (the position's, or the gateway derives one
    for a flatten that belongs to no record); `position_id` names the record it closes.
    """

    action_type: ClassVar[ActionType] = ActionType.FLATTEN
    symbol: str
    reason: str
    client_id: str | None = None
    position_id: str | None = None


@dataclass(frozen=True, slots=True)
class CloseRecord:
    """Close the bot's record of a position; never an exchange action."""

    action_type: ClassVar[ActionType] = ActionType.CLOSE_RECORD
    position_id: str
    symbol: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportPosition:
    """Adopt a venue position the bot did not know (PHANTOM), with any stop adopted with it."""

    action_type: ClassVar[ActionType] = ActionType.IMPORT_POSITION
    position_id: str
    symbol: str
    side: PositionSide
    size: float
    entry_price: float
    stop_order_id: str | None = None  # an existing venue stop adopted instead of a new one
    stop_price: float | None = None


@dataclass(frozen=True, slots=True)
class NoAction:
    """Nothing to do, said explicitly so the decision is logged."""

    action_type: ClassVar[ActionType] = ActionType.NO_ACTION
    reason: str
    position_id: str | None = None
    symbol: str | None = None


Action = (
    PlaceEntry
    | PlaceStop
    | PlaceTp
    | MoveStop
    | Cancel
    | Flatten
    | CloseRecord
    | ImportPosition
    | NoAction
)

ACTION_CLASSES: dict[ActionType, type] = {
    cls.action_type: cls
    for cls in (
        PlaceEntry,
        PlaceStop,
        PlaceTp,
        MoveStop,
        Cancel,
        Flatten,
        CloseRecord,
        ImportPosition,
        NoAction,
    )
}


def _plain(value: object) -> object:
    """A JSON-friendly value: enums by value, datetimes as ISO text."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def describe(action: Action) -> dict[str, object]:
    """A flat dict of the action for the write-ahead log and log lines.

    Always has the keys `action`, `symbol`, `side`, `position_id` and
    `client_id`; a field the action type does not have (or leaves None) shows
    as None, except `side`, which shows as 'unknown'. Refuses (TypeError)
    anything that is not one of the action classes.
    """
    if type(action) not in ACTION_CLASSES.values():
        raise TypeError(f"describe() takes an action, got {type(action).__name__}")
    out: dict[str, object] = {
        "action": action.action_type.value,
        "symbol": None,
        "side": UNKNOWN_SIDE,
        "position_id": None,
        "client_id": None,
    }
    for f in fields(action):
        out[f.name] = _plain(getattr(action, f.name))
    if out["side"] is None:
        out["side"] = UNKNOWN_SIDE
    return out


_CODES: dict[ActionType, str] = {
    ActionType.PLACE_ENTRY: "en",
    ActionType.PLACE_STOP: "sl",
    ActionType.PLACE_TP: "tp",
    ActionType.MOVE_STOP: "mv",
    ActionType.FLATTEN: "fl",
}
_SAFE = re.compile(r"[A-Za-z0-9_.-]+")


def client_id_for(
    position_id: str, action_type: ActionType, *, level: int | None = None, attempt: int = 0
) -> str:
    """The deterministic client order id of (position, action type, level, attempt).

    Same inputs, same id: a retried submission is recognised at the venue.
    Readable `<position>-<code><level>-<attempt>` when that fits 100 safe
    characters; otherwise the position part is shortened and a digest of the
    full tuple keeps the id unique. Refuses action types that place no order,
    a level outside 1..3 on a TP (or any level elsewhere), and negative attempts.
    """
    if not position_id:
        raise ValueError("client_id_for needs a non-empty position_id")
    code = _CODES.get(action_type)
    if code is None:
        raise ValueError(f"{action_type} places no order and has no client id")
    if (action_type is ActionType.PLACE_TP) != (level is not None):
        raise ValueError(f"{action_type}: level is required for PLACE_TP only, got {level}")
    if level is not None and level not in TP_LEVELS:
        raise ValueError(f"TP level must be 1..3, got {level}")
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    tail = f"-{code}{level if level is not None else ''}-{attempt}"
    readable = f"{position_id}{tail}"
    if _SAFE.fullmatch(position_id) and len(readable) <= MAX_CLIENT_ID:
        return readable
    # Long or unusual ids: keep a readable prefix, let the digest carry uniqueness.
    digest = hashlib.sha256(f"{position_id}\x00{tail}".encode()).hexdigest()[:20]
    prefix = re.sub(r"[^A-Za-z0-9_.]", "_", position_id)
    room = MAX_CLIENT_ID - len(tail) - len(digest) - 2
    if room < 0:
        raise ValueError(f"attempt {attempt} makes the client id longer than {MAX_CLIENT_ID}")
    return f"{prefix[:room]}-h{digest}{tail}"
