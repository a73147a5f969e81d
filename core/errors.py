"""Error hierarchy: the class tells the caller what to do.

- ConfigError: stop before trading and tell the operator which input to fix.
- DataError: one market's data is unusable; skip that market, keep the others.
- VenueError and its children: the exchange side. Retryable ones may be retried
  by Prefect; the others must not be.
"""

from __future__ import annotations


class TraderError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(TraderError):
    """Configuration is invalid: start-up stops, nothing trades."""


class DataError(TraderError):
    """A market's data failed validation; that market is skipped this cycle."""

    def __init__(self, symbol: str, message: str) -> None:
        super().__init__(f"{symbol}: {message}")
        self.symbol = symbol


class VenueError(TraderError):
    """The venue refused or failed a request; not safe to retry blindly."""


class VenueRetryableError(VenueError):
    """Transient venue failure (network, rate limit, maintenance): retry with backoff."""


class VenueUnavailableError(VenueRetryableError):
    """The venue is down or unreachable."""


class RateLimitedError(VenueRetryableError):
    """The venue's rate limit was hit."""


class LiveTradingNotAllowedError(ConfigError):
    """Live orders were requested without the explicit switch and credentials."""


class DuplicateClientIdError(VenueError):
    """The venue already has an order with this client id: look it up, never resend it."""
