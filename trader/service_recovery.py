"""Runs a dead service left "Running": marked Crashed when the service starts again.

A cycle interrupted with its service (Ctrl-C, systemd restart, reboot, SIGKILL) never
reports an end, so the Prefect server keeps it Running and keeps its deployment
concurrency slot (limit 1). The server's lease that would free the slot lives in its
memory and is lost when the server restarts too; from then on every scheduled cycle is
CANCELLED by the CANCEL_NEW collision strategy and nothing trades, silently. One service
runs a store's deployments, so when it starts, any run of them still Running or Pending
belongs to a process that is gone: it is marked Crashed and the slot is freed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed

log = logging.getLogger("smc_trader.recovery")

UNFINISHED = [StateType.RUNNING, StateType.PENDING, StateType.CANCELLING]
POOL_SUFFIX = "-pool"


def deployment_names(pool: bool) -> list[str]:
    """"flow/deployment" names of what `trader run` serves, or of prefect.yaml's pool path."""
    from flows.deployments import service_deployments

    suffix = POOL_SUFFIX if pool else ""
    return [f"{d.flow_name}/{d.name}{suffix}" for d in service_deployments(60, {})]


async def _recover(names: list[str]) -> list[str]:
    recovered = []
    async with get_client() as client:
        for name in names:
            try:
                deployment = await client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=UNFINISHED))
                ),
            )
            for run in runs:
                message = (
                    "its service stopped while it ran (found unfinished when the service "
                    "started again)"
                )
                await client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                log.warning("flow run %r of %s was left %s: marked Crashed (%s)",
                            run.name, name, run.state_name, message)
                recovered.append(run.name)
            limit = deployment.global_concurrency_limit
            if limit is not None and limit.active_slots:
                await client.update_global_concurrency_limit(
                    limit.name, GlobalConcurrencyLimitUpdate(active_slots=0)
                )
                log.warning("%s: freed %d concurrency slot(s) held by a run that is gone",
                            name, limit.active_slots)
    return recovered


def recover_unfinished_runs(names: list[str]) -> list[str]:
    """Mark every unfinished run of these deployments Crashed and free their concurrency
    slots. Returns the names of the runs marked. Call only where no run of them can be
    alive: when the one service that runs them starts."""
    return asyncio.run(_recover(names))


def cmd_recover_runs(args: argparse.Namespace) -> int:
    names = deployment_names(pool=args.pool)
    recovered = recover_unfinished_runs(names)
    print(f"{len(recovered)} unfinished run(s) marked Crashed" + (
        f": {', '.join(recovered)}" if recovered else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "recover-runs",
        help="mark runs a stopped service left Running as Crashed, freeing the cycle's slot",
    )
    p.add_argument("--pool", action="store_true", help="the work-pool deployments (prefect.yaml)")
    p.set_defaults(func=cmd_recover_runs)
