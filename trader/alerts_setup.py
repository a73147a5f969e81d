"""Alert delivery: a Prefect notification block and two automations on the Prefect server.

- "smc-trader: cycle alert": every `smc-trader.alert.*` event a cycle emits
  (core/alerts.py: HALTED, DEGRADED for more than N cycles, an unprotected position)
  is sent to the block with the event's subject and body.
- "smc-trader: failed runs": `alerts.failed_runs` trading-cycle runs Failed or Crashed
  within `alerts.failed_within_s`. A run that dies cannot alert for itself, so this one
  is watched by the server.

The block is `alerts.notification_block`: created here from SMC_TRADER_ALERT_WEBHOOK
(environment or .env.local; a webhook that receives JSON {"subject", "body"}) when set,
else whatever block of that name an operator made in the UI (Slack, e-mail, ...).
Without either, alerts are only logged (`ALERT ...`) and emitted as Prefect events.
`trader run` applies this at start; `trader alerts apply` does it for the work pool path.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from uuid import UUID

from dotenv import dotenv_values
from prefect.automations import Automation, EventTrigger, Posture, SendNotification

from schemas.operations import AlertsConfig
from tasks.settings import SecretMaskFilter, load_config

log = logging.getLogger("smc_trader.alerts")

WEBHOOK_ENV = "SMC_TRADER_ALERT_WEBHOOK"
CYCLE_ALERT = "smc-trader: cycle alert"
FAILED_RUNS = "smc-trader: failed runs"
FAILED_RUNS_BODY = (
    "{{ flow_run.name }} ended {{ flow_run.state.name }}: {{ flow_run.state.message }}\n"
    "At least {n} trading-cycle runs failed or crashed within {window}.\n"
    "Flow run id: {{ flow_run.id }}"
)


@dataclass(frozen=True)
class AlertSetup:
    block_id: UUID
    block_name: str
    automations: tuple[str, ...]


def webhook_url(env_file: Path = Path(".env.local")) -> str | None:
    """SMC_TRADER_ALERT_WEBHOOK from the environment, else .env.local (masked in logs)."""
    file_values = dotenv_values(env_file) if env_file.exists() else {}
    url = os.environ.get(WEBHOOK_ENV) or file_values.get(WEBHOOK_ENV)
    if url:
        SecretMaskFilter.register(url)
    return url or None


def _block_id(name: str) -> UUID | None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        documents = client.read_block_documents(limit=200, include_secrets=False)
    return next((d.id for d in documents if d.name == name), None)


def _webhook_block(name: str, url: str) -> UUID:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=name,
        url=url,
        method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    return block.save(name, overwrite=True)


def _replace_automation(automation: Automation) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for old in client.read_automations_by_name(automation.name):
            client.delete_automation(old.id)
    automation.create()


def apply_alerts(config: AlertsConfig, url: str | None) -> AlertSetup | None:
    """Create or replace the block (from `url`) and both automations. None, with a log
    line saying why, when there is no block to send to."""
    if url:
        block_id = _webhook_block(config.notification_block, url)
    else:
        block_id = _block_id(config.notification_block)
    if block_id is None:
        log.info(
            "alerts: no notification block %r and no %s: alerts are logged (ALERT ...) and "
            "emitted as Prefect events, not sent", config.notification_block, WEBHOOK_ENV,
        )
        return None
    cycle_alert = Automation(
        name=CYCLE_ALERT,
        description="HALTED, DEGRADED for too long, or an unprotected position (core/alerts.py)",
        trigger=EventTrigger(expect={"smc-trader.alert.*"}, posture=Posture.Reactive, threshold=1),
        actions=[SendNotification(
            block_document_id=block_id,
            subject="{{ event.payload.subject }}",
            body="{{ event.payload.body }}",
        )],
    )
    window = timedelta(seconds=config.failed_within_s)
    failed_runs = Automation(
        name=FAILED_RUNS,
        description=f"{config.failed_runs} failed or crashed trading-cycle runs within {window}",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match_related={
                "prefect.resource.role": "flow", "prefect.resource.name": "trading-cycle"
            },
            posture=Posture.Reactive,
            threshold=config.failed_runs,
            within=window,
        ),
        actions=[SendNotification(
            block_document_id=block_id,
            subject=f"smc-trader: {config.failed_runs} trading-cycle runs failed",
            body=FAILED_RUNS_BODY.replace("{n}", str(config.failed_runs)).replace(
                "{window}", str(window)
            ),
        )],
    )
    for automation in (cycle_alert, failed_runs):
        _replace_automation(automation)
    log.info("alerts: automations %r and %r send to block %r", CYCLE_ALERT, FAILED_RUNS,
             config.notification_block)
    return AlertSetup(block_id, config.notification_block, (CYCLE_ALERT, FAILED_RUNS))


def ensure_alerts(config: AlertsConfig) -> AlertSetup | None:
    """What `trader run` calls at start: apply_alerts with the configured webhook."""
    return apply_alerts(config, webhook_url())


def cmd_alerts(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup = ensure_alerts(config.alerts)
    if setup is None:
        print(f"no block {config.alerts.notification_block!r} and no {WEBHOOK_ENV}: "
              "nothing to send alerts to (they are still logged as ALERT lines)")
        return 1
    print(f"alerts go to block {setup.block_name!r} ({setup.block_id}) through automations "
          + ", ".join(repr(a) for a in setup.automations))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "alerts", help=f"create the alert block (from {WEBHOOK_ENV}) and automations"
    )
    p.add_argument("action", choices=["apply"])
    p.add_argument("--config", type=Path, default=None)
    p.set_defaults(func=cmd_alerts)
