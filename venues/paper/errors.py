"""Why the paper engine refuses an order. The reason strings are Kraken's `sendStatus` values."""

from __future__ import annotations

from enum import StrEnum

from core.errors import ConfigError, VenueError
from core.errors import DuplicateClientIdError as AnyDuplicateClientIdError


class RejectReason(StrEnum):
    """Kraken Futures `sendorder` statuses for an order that was not placed."""

    INVALID_SIZE = "invalidSize"
    INVALID_PRICE = "invalidPrice"
    DUPLICATE_CLIENT_ID = "clientOrderIdAlreadyExist"
    CLIENT_ID_TOO_LONG = "clientOrderIdTooLong"
    WOULD_NOT_REDUCE = "wouldNotReducePosition"
    INSUFFICIENT_FUNDS = "insufficientAvailableFunds"
    MARKET_SUSPENDED = "marketSuspended"  # no price known yet: nothing to fill a market order at
    UNKNOWN_MARKET = "contractNotFound"


class OrderRejectedError(VenueError):
    """The venue refused the order; nothing was placed. Not retryable as is: fix the order."""

    def __init__(self, client_id: str, reason: RejectReason, message: str) -> None:
        super().__init__(f"order {client_id!r} rejected ({reason}): {message}")
        self.client_id = client_id
        self.reason = reason


class DuplicateClientIdError(OrderRejectedError, AnyDuplicateClientIdError):
    """An open order already carries this client id: look it up instead of resubmitting."""

    def __init__(self, client_id: str, open_order_id: str) -> None:
        super().__init__(
            client_id,
            RejectReason.DUPLICATE_CLIENT_ID,
            f"open order {open_order_id} already uses this client id; "
            "look it up with order_by_client_id instead of sending it again",
        )
        self.open_order_id = open_order_id


class PaperStateError(ConfigError):
    """A saved paper account cannot be restored as it is; nothing was restored.

    Start-up stops (a ConfigError): trading on with a fresh account would lose the
    saved positions and orders without anyone deciding so.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(
            f"saved paper account unreadable at {where}: {problem}; nothing was restored. "
            "Restore the saved state from a backup, or delete it to start a fresh paper "
            "account (its positions and orders are then lost)"
        )
        self.where = where
        self.problem = problem
