"""Base of every configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Frozen, unknown keys refused: a typo in YAML is an error, not a silent default."""

    model_config = ConfigDict(frozen=True, extra="forbid")
