"""A perpetual market as a venue defines it, and its latest ticker."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """One perpetual as the venue defines it, with the precision orders must respect."""

    symbol: str  # unified ccxt symbol, e.g. BTC/USD:USD
    venue_symbol: str  # venue id, e.g. PF_XBTUSD
    base: str  # base asset as the registry names it (BTC, never XBT)
    settle: str
    contract_size: float
    tick_size: float
    lot_size: float
    min_size: float
    max_leverage: float


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    last: float | None
    bid: float | None
    ask: float | None
    volume_24h_usd: float | None
    problem: str | None = None  # why the venue's answer for this market is unusable
