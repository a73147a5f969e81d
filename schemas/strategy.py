"""Strategy parameters (SPEC §3). Every relaxation is off by default."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Frozen


class StrategyConfig(Frozen):
    swing_length: int = Field(5, ge=1, le=50, description="bars each side that confirm a swing")
