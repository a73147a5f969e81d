"""Paper trading: a deterministic matching engine and the OrderVenue built on it."""

from venues.paper.account import (
    FORMAT_VERSION,
    PaperAccountState,
    load_paper_account,
    save_paper_account,
)
from venues.paper.config import PaperConfig
from venues.paper.driver import FeedDriver, FundingSchedule
from venues.paper.engine import PaperEngine
from venues.paper.errors import (
    DuplicateClientIdError,
    OrderRejectedError,
    PaperStateError,
    RejectReason,
)
from venues.paper.orders import (
    CancelOutcome,
    CancelResult,
    Execution,
    HistoryForgotten,
    Liquidity,
    Placement,
)
from venues.paper.venue import PaperOrderVenue

__all__ = [
    "FORMAT_VERSION",
    "CancelOutcome",
    "CancelResult",
    "DuplicateClientIdError",
    "Execution",
    "FeedDriver",
    "FundingSchedule",
    "HistoryForgotten",
    "Liquidity",
    "OrderRejectedError",
    "PaperAccountState",
    "PaperConfig",
    "PaperEngine",
    "PaperOrderVenue",
    "PaperStateError",
    "Placement",
    "RejectReason",
    "load_paper_account",
    "save_paper_account",
]
