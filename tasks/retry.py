"""Which failures Prefect may retry: transient venue errors only, never order paths."""

from __future__ import annotations

from typing import Any

from core.errors import VenueRetryableError


def retry_on_transient_venue_errors(task: Any, task_run: Any, state: Any) -> bool:
    """True only for network, rate-limit and venue-unavailable errors (ccxt's NetworkError,
    RateLimitExceeded, ExchangeNotAvailable, translated at the venue edge)."""
    try:
        state.result()
    except VenueRetryableError:
        return True
    except Exception:
        return False
    return False
