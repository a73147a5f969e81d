"""Auction and risk-manager parameters (SPEC §4, §5). Safety thresholds live in SafetyConfig.

Every number the auction, the risk manager and the TP plan use has its one
default here (or in SafetyConfig); core code reads it, never restates it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from schemas.base import Frozen

Weight = Annotated[float, Field(gt=0.0, le=1.0)]

TRADEABLE_TIERS = ("A", "B", "C")


def _default_tier_weights() -> dict[str, float]:
    return {"A": 1.0, "B": 0.85, "C": 0.7}


def _default_regime_weights() -> dict[str, float]:
    return {"tight_smc": 1.0}


class RiskConfig(Frozen):
    risk_per_trade_pct: float = Field(
        0.01, gt=0, lt=0.1, description="equity risked between entry and stop, per trade"
    )
    min_notional_viable: float = Field(10.0, gt=0, description="dust floor in USD after clamps")
    default_leverage: float = Field(
        3.0,
        ge=1.0,
        description="leverage assumed for margin (notional / leverage), capped by each "
        "market's max_leverage",
    )
    entry_cost_reserve_bps: float = Field(
        10.0,
        ge=0.0,
        lt=500.0,
        description="fees and slippage an entry may cost (basis points of its notional), "
        "taken off equity before the margin gate, so paying them cannot push margin "
        "utilisation over the DEGRADED level",
    )
    tp_min_distance_bps: float = Field(
        10.0,
        ge=0.0,
        description="a take-profit closer than this to the current price (basis points of "
        "the price) is skipped as too close",
    )
    tier_weights: dict[str, Weight] = Field(
        default_factory=_default_tier_weights,
        description="auction score multiplier per market tier (A, B, C)",
    )
    regime_weights: dict[str, Weight] = Field(
        default_factory=_default_regime_weights,
        description="auction score multiplier per signal regime; others get other_regime_weight",
    )
    other_regime_weight: Weight = Field(
        0.8, description="auction score multiplier of a regime not listed in regime_weights"
    )
    incumbent_score: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="auction score of a held position: the top of the 0..1 signal scale, "
        "so a held position ranks first and is reaffirmed rather than churned",
    )

    @field_validator("tier_weights")
    @classmethod
    def _known_tiers(cls, weights: dict[str, float]) -> dict[str, float]:
        missing = [t for t in TRADEABLE_TIERS if t not in weights]
        unknown = [t for t in weights if t not in TRADEABLE_TIERS]
        if missing or unknown:
            raise ValueError(
                f"risk.tier_weights needs exactly {list(TRADEABLE_TIERS)}: "
                f"missing {missing}, unknown {unknown}"
            )
        return weights
