"""Checks made before Prefect starts a run, so that a predictable failure is one line.

Without them an unreachable venue surfaces inside the flow run as a chain of ccxt and
Prefect tracebacks (100+ lines) that buries the one fact that matters.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from core.errors import VenueUnavailableError
from schemas.config import VenueConfig
from venues.kraken import make_client

TIMEOUT_S = 5.0


def kraken_endpoint(config: VenueConfig) -> tuple[str, int]:
    """(host, port) of the Kraken Futures REST API this configuration talks to."""
    client = make_client(sandbox=config.sandbox, api_url=config.api_url)
    api = client.urls["api"]
    url = api.get("public") if isinstance(api, dict) else api
    parts = urlsplit(str(url))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def require_reachable(config: VenueConfig) -> None:
    """Refuses (VenueUnavailableError, one line) when the API host does not resolve or does
    not accept a connection within a few seconds."""
    host, port = kraken_endpoint(config)
    try:
        socket.create_connection((host, port), timeout=TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise VenueUnavailableError(
            f"cannot reach Kraken Futures at {host}:{port}: {reason}; check the network "
            "(or run the sim venue, or a local simulator with --api-url)"
        ) from None
