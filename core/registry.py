"""Market registry (SPEC §2): the single authority on what may be traded.

Tiers come from 24 h futures volume and bid/ask spread against per-tier
thresholds; the pinned majors are tier A whatever their numbers. Every later
stage asks the registry (or the Markets frame it produced), never a list of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl

from core.market import MarketInfo, Ticker
from schemas.config import MarketsConfig, Tier
from schemas.frames import Markets, polars_schema

log = logging.getLogger("smc_trader.registry")

PINNED_BYPASS_LOG = "Tier A coin bypassing filters (trusted major)"
UNKNOWN_CANDIDATE_LOG = "MARKETS_UNKNOWN_CANDIDATE"
BAD_TICKER_LOG = "MARKET_BAD_TICKER"
_reported_problems: set[tuple[str, str]] = set()  # (symbol, problem) already logged


def _log_problem_once(symbol: str, problem: str) -> None:
    """A malformed venue answer is logged the first time it is seen, not every cycle."""
    if (symbol, problem) in _reported_problems:
        return
    _reported_problems.add((symbol, problem))
    log.warning(
        "%s symbol=%s: %s; the market is REJECT until the venue answers",
        BAD_TICKER_LOG,
        symbol,
        problem,
    )


@dataclass(frozen=True, slots=True)
class Classification:
    tier: Tier
    reason: str


def spread_bps(ticker: Ticker | None) -> float | None:
    if ticker is None or ticker.bid is None or ticker.ask is None:
        return None
    mid = (ticker.bid + ticker.ask) / 2
    if mid <= 0 or ticker.ask < ticker.bid:
        return None
    return (ticker.ask - ticker.bid) / mid * 1e4


def classify(
    base: str, volume_usd: float | None, spread: float | None, config: MarketsConfig
) -> Classification:
    """The tier of one market and why. Refuses nothing: an unmeasurable market is REJECT."""
    if base in config.pinned_tier_a:
        return Classification(Tier.A, "pinned major")
    if volume_usd is None or spread is None:
        return Classification(Tier.REJECT, "no volume or spread from the venue")
    for tier in (Tier.A, Tier.B, Tier.C):
        limits = config.tiers[tier]
        if volume_usd >= limits.min_volume_24h_usd and spread <= limits.max_spread_bps:
            return Classification(
                tier,
                f"volume {volume_usd:,.0f} >= {limits.min_volume_24h_usd:,.0f} and "
                f"spread {spread:.1f} <= {limits.max_spread_bps:g} bps",
            )
    c = config.tiers[Tier.C]
    return Classification(
        Tier.REJECT,
        f"below tier C: volume {volume_usd:,.0f} (min {c.min_volume_24h_usd:,.0f}), "
        f"spread {spread:.1f} bps (max {c.max_spread_bps:g})",
    )


def warn_unknown_candidates(markets: Iterable[MarketInfo], config: MarketsConfig) -> list[str]:
    """The candidate symbols no listed perpetual of the configured settlement carries,
    logged (one line naming them all); returns them."""
    listed = {m.base for m in markets if m.settle == config.settle}
    unknown = [s for s in config.candidate_symbols if s not in listed]
    if unknown:
        log.warning(
            "%s %s: markets.candidate_symbols names base assets the venue lists no %s-settled "
            "perpetual for; they are not traded (check the spelling: bases as the registry "
            "names them, e.g. BTC not XBT)",
            UNKNOWN_CANDIDATE_LOG,
            ",".join(unknown),
            config.settle,
        )
    return unknown


def build_registry(
    markets: Iterable[MarketInfo], tickers: Mapping[str, Ticker], config: MarketsConfig
) -> pl.DataFrame:
    """The Markets frame: every perpetual in the configured universe, tiered and validated.

    A market whose ticker the venue marked as unusable (Ticker.problem) is REJECT with
    that problem as its reason; the other markets are unaffected. Candidate symbols the
    venue does not list are warned about (once per call, i.e. once per cycle).
    """
    rows = registry_rows(markets, tickers, config)
    return Markets.validate(pl.DataFrame(rows, schema=polars_schema(Markets), orient="row"))


def registry_rows(
    markets: Iterable[MarketInfo], tickers: Mapping[str, Ticker], config: MarketsConfig
) -> list[dict[str, object]]:
    """The Markets rows `build_registry` validates, sorted by symbol (a backtest keeps them
    as rows: core/market_book.py)."""
    markets = list(markets)
    warn_unknown_candidates(markets, config)
    universe = set(config.candidate_symbols) | set(config.pinned_tier_a)
    rows = []
    for m in markets:
        if m.settle != config.settle:
            continue
        if config.candidate_symbols and m.base not in universe:
            continue
        ticker = tickers.get(m.symbol)
        spread = spread_bps(ticker)
        volume = ticker.volume_24h_usd if ticker else None
        if ticker is not None and ticker.problem:
            _log_problem_once(m.symbol, ticker.problem)
            c = Classification(Tier.REJECT, f"unusable ticker: {ticker.problem}")
        else:
            c = classify(m.base, volume, spread, config)
        pinned = m.base in config.pinned_tier_a
        if pinned:
            log.info("%s: %s", m.symbol, PINNED_BYPASS_LOG)  # expected (SPEC §10): not a warning
        rows.append(
            {
                "symbol": m.symbol,
                "venue_symbol": m.venue_symbol,
                "base": m.base,
                "settle": m.settle,
                "contract_size": m.contract_size,
                "tick_size": m.tick_size,
                "lot_size": m.lot_size,
                "min_size": m.min_size,
                "max_leverage": m.max_leverage,
                "last": ticker.last if ticker else None,
                "bid": ticker.bid if ticker else None,
                "ask": ticker.ask if ticker else None,
                "volume_24h_usd": volume,
                "spread_bps": spread,
                "tier": str(c.tier),
                "pinned": pinned,
                "tradeable": c.tier is not Tier.REJECT,
                "reason": c.reason,
            }
        )
    return sorted(rows, key=_symbol)


def _symbol(row: Mapping[str, object]) -> str:
    return str(row["symbol"])


class MarketRegistry:
    """Read-only questions about this cycle's markets. Built from the Markets frame."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self._rows = {r["symbol"]: r for r in frame.iter_rows(named=True)}

    def tradeable_symbols(self) -> list[str]:
        return [s for s, r in self._rows.items() if r["tradeable"]]

    def tier(self, symbol: str) -> Tier:
        row = self._rows.get(symbol)
        return Tier(row["tier"]) if row else Tier.REJECT

    def is_tradeable(self, symbol: str) -> bool:
        row = self._rows.get(symbol)
        return bool(row and row["tradeable"])

    def tier_counts(self) -> dict[str, int]:
        counts = {str(t): 0 for t in Tier}
        for row in self._rows.values():
            counts[row["tier"]] += 1
        return counts
