"""Builders for the auction and risk-manager tests: markets, signals, positions, accounts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

from core.auction import AuctionResult, run_auction
from core.risk import AccountState, OpenPosition, SystemState, apply_risk
from schemas.config import SafetyConfig
from schemas.frames import Markets
from schemas.risk import RiskConfig
from schemas.signals import Signals

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CYCLE = "cycle-0001"


def market(symbol: str, **over: Any) -> dict[str, Any]:
    """One Markets row: a linear perpetual, tier A, lot 0.001, tick 0.01, 50x."""
    row: dict[str, Any] = {
        "symbol": symbol,
        "venue_symbol": "PF_" + symbol.split("/")[0] + "USD",
        "base": symbol.split("/")[0],
        "settle": "USD",
        "contract_size": 1.0,
        "tick_size": 0.01,
        "lot_size": 0.001,
        "min_size": 0.001,
        "max_leverage": 50.0,
        "last": 100.0,
        "bid": 99.99,
        "ask": 100.01,
        "volume_24h_usd": 1e8,
        "spread_bps": 2.0,
        "tier": "A",
        "pinned": False,
        "tradeable": True,
        "reason": "thresholds met",
    }
    row.update(over)
    return row


def markets_frame(rows: Iterable[Mapping[str, Any]], *, validate: bool = True) -> pl.DataFrame:
    """A Markets frame; validate=False keeps rows the registry would refuse (missing precision)."""
    frame = pl.DataFrame(list(rows), schema_overrides={"last": pl.Float64, "bid": pl.Float64})
    return Markets.validate(frame) if validate else frame


def signal(symbol: str, side: str = "long", **over: Any) -> dict[str, Any]:
    """One Signals row at entry 100 with a 2% stop and TPs at 1R, 2R, 3R."""
    sign = 1.0 if side == "long" else -1.0
    row: dict[str, Any] = {
        "symbol": symbol,
        "ts": NOW,
        "strategy": "smc",
        "side": side,
        "entry": 100.0,
        "stop": 100.0 - sign * 2.0,
        "tp1": 100.0 + sign * 2.0,
        "tp2": 100.0 + sign * 4.0,
        "tp3": 100.0 + sign * 6.0,
        "regime": "tight_smc",
        "score": 0.8,
    }
    row.update(over)
    return row


def signals_frame(rows: Iterable[Mapping[str, Any]], *, validate: bool = True) -> pl.DataFrame:
    """A Signals frame; validate=False keeps deliberately bad rows (NaN price, wrong stop)."""
    frame = pl.DataFrame(
        list(rows),
        schema_overrides={
            "ts": pl.Datetime("us", "UTC"),
            **{c: pl.Float64 for c in ("entry", "stop", "tp1", "tp2", "tp3", "score")},
        },
    )
    return Signals.validate(frame) if validate else frame


def position(symbol: str, side: str = "long", **over: Any) -> OpenPosition:
    fields: dict[str, Any] = {
        "symbol": symbol,
        "side": side,
        "size": 0.5,
        "entry_price": 100.0,
        "mark_price": 101.0,
        "margin": 16.0,
    }
    fields.update(over)
    return OpenPosition(**fields)


def account(
    equity: float = 1_000.0,
    margin_used: float = 0.0,
    high_water: float | None = None,
    state: SystemState = SystemState.NORMAL,
) -> AccountState:
    return AccountState(equity, margin_used, high_water if high_water else equity, state)


def auction_and_risk(
    signals: pl.DataFrame | None,
    positions: list[OpenPosition],
    markets: pl.DataFrame,
    acct: AccountState,
    safety: SafetyConfig | None = None,
    risk: RiskConfig | None = None,
) -> tuple[AuctionResult, pl.DataFrame]:
    """One cycle's allocation and sizing with the shipped configuration unless given."""
    safety = safety or SafetyConfig()
    risk = risk or RiskConfig()
    result = run_auction(signals, positions, markets, acct, safety, risk)
    intents = apply_risk(
        result.allocations, markets, acct, safety, risk, positions, cycle_id=CYCLE, ts=NOW
    )
    return result, intents


def as_selected(allocations: pl.DataFrame, **columns: Any) -> pl.DataFrame:
    """Allocations with every new candidate marked selected (and `columns` set): feeds the
    risk manager rows the auction would not pass, to prove it re-checks every gate itself."""
    new = pl.col("kind") == "new"
    return allocations.with_columns(
        pl.when(new).then(pl.lit("selected")).otherwise(pl.col("decision")).alias("decision"),
        pl.when(new)
        .then(pl.lit(None, dtype=pl.String))
        .otherwise(pl.col("reason"))
        .alias("reason"),
        **{name: pl.lit(value) for name, value in columns.items()},
    )
