"""Risk-manager parameters (SPEC §5). Safety thresholds live in SafetyConfig."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Frozen


class RiskConfig(Frozen):
    risk_per_trade_pct: float = Field(
        0.01, gt=0, lt=0.1, description="equity risked between entry and stop, per trade"
    )
    min_notional_viable: float = Field(10.0, gt=0, description="dust floor in USD after clamps")
