"""The service's deployments: what `trader run` serves and prefect.yaml declares."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment

from flows.backfill import backfill
from flows.cycle import trading_cycle
from flows.ops import halt_trading, resume_trading, trading_status

# A cycle still running when the next is due: the new one is cancelled, never stacked.
ONE_AT_A_TIME = ConcurrencyLimitConfig(
    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
)


def service_deployments(interval_s: int, parameters: dict[str, Any]) -> list[RunnerDeployment]:
    cycle = trading_cycle.to_deployment(
        name="cycle",
        interval=interval_s,
        parameters=parameters,
        concurrency_limit=ONE_AT_A_TIME,
        description="One trading cycle per interval (SPEC §1)",
        tags=["smc-trader"],
    )
    hourly_backfill = backfill.to_deployment(
        name="hourly-backfill",
        cron="7 * * * *",
        parameters={
            **{k: v for k, v in parameters.items() if k not in ("live", "paper")},
            "days": 3,
        },
        concurrency_limit=ONE_AT_A_TIME,
        description="Re-fetch the last 3 days of candles for tradeable markets",
        tags=["smc-trader"],
    )
    db = {k: v for k, v in parameters.items() if k in ("config_dir", "db")}
    # Operator actions, unscheduled: run from the UI's "Run" button, audited as flow runs.
    ops = [
        trading_status.to_deployment(name="status", parameters=db, tags=["smc-trader", "ops"]),
        halt_trading.to_deployment(name="halt", parameters=db, tags=["smc-trader", "ops"]),
        resume_trading.to_deployment(name="resume", parameters=db, tags=["smc-trader", "ops"]),
    ]
    return [cycle, hourly_backfill, *ops]
