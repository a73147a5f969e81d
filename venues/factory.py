"""Build the configured venue. Nothing here falls back from one venue to another."""

from __future__ import annotations

from datetime import datetime

from core.errors import ConfigError
from schemas.config import Secrets, VenueConfig, VenueKind
from venues.base import MarketDataVenue


def make_venue(config: VenueConfig, secrets: Secrets | None = None) -> MarketDataVenue:
    """The venue the configuration names. Raises ConfigError for an unusable setting."""
    if config.kind is VenueKind.SIM:
        from venues.sim import SimVenue

        return SimVenue(seed=config.seed, count=config.sim_markets)
    if config.kind is VenueKind.REPLAY:
        from venues.replay import ReplayVenue

        start = datetime.fromisoformat(config.replay_start) if config.replay_start else None
        if start is not None and start.tzinfo is None:
            raise ConfigError(f"venue.replay_start {config.replay_start!r} needs a UTC offset (Z)")
        return ReplayVenue(config.data_dir, start=start)
    if config.kind is VenueKind.KRAKEN:
        from venues.kraken import KrakenVenue, make_client
        from venues.kraken_limits import ReadRetry

        key = (
            secrets.kraken_api_key.get_secret_value()
            if secrets and secrets.kraken_api_key
            else None
        )
        secret = (
            secrets.kraken_api_secret.get_secret_value()
            if secrets and secrets.kraken_api_secret
            else None
        )
        from venues.kraken_orders import is_loopback_url

        local = config.api_url is not None and is_loopback_url(config.api_url)
        client = make_client(
            sandbox=config.sandbox,
            api_url=config.api_url,
            timeout_ms=config.timeout_ms,
            api_key=key,
            api_secret=secret,
            rate_limit_ms=20 if local else None,
            reads=ReadRetry(
                attempts=config.read_attempts,
                backoff_s=config.read_backoff_s,
                backoff_max_s=config.read_backoff_max_s,
            ),
            cost_budget=config.cost_budget,
        )
        return KrakenVenue(client)
    raise ConfigError(f"venue.kind {config.kind!r} unknown: use sim, replay or kraken")
