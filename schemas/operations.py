"""Operations configuration: alerts (and what `trader run` sets up for them)."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Frozen


class AlertsConfig(Frozen):
    """When an alert fires and where it goes (a Prefect notification block, via automations)."""

    notification_block: str = Field(
        "smc-trader-alerts",
        description="Prefect notification block the alert automations send to (created from "
        "SMC_TRADER_ALERT_WEBHOOK when set; or make one of any type in the UI)",
    )
    degraded_cycles: int = Field(
        3, ge=1, description="alert when DEGRADED for more than this many consecutive cycles"
    )
    repeat_every_cycles: int = Field(
        60, ge=1, description="a condition that still holds is alerted again every N cycles"
    )
    failed_runs: int = Field(
        2, ge=1, description="alert when this many trading-cycle runs fail or crash ..."
    )
    failed_within_s: int = Field(
        3600, ge=60, description="... within this many seconds"
    )
