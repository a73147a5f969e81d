"""Paper trading: a deterministic matching engine and the OrderVenue built on it."""

from venues.paper.config import PaperConfig
from venues.paper.driver import FeedDriver, FundingSchedule
from venues.paper.engine import PaperEngine
from venues.paper.errors import DuplicateClientIdError, OrderRejectedError, RejectReason
from venues.paper.orders import CancelOutcome, CancelResult, Execution, Liquidity, Placement
from venues.paper.venue import PaperOrderVenue

__all__ = [
    "CancelOutcome",
    "CancelResult",
    "DuplicateClientIdError",
    "Execution",
    "FeedDriver",
    "FundingSchedule",
    "Liquidity",
    "OrderRejectedError",
    "PaperConfig",
    "PaperEngine",
    "PaperOrderVenue",
    "Placement",
    "RejectReason",
]
