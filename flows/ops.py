"""Operator actions as flows, so they can be run (and audited) from the Prefect UI too."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from tasks.safety import halt, resume, status
from tasks.settings import load_config


def _db(config_dir: str, db: str | None) -> tuple[Path, object]:
    config = load_config(Path(config_dir))
    return Path(db) if db else config.cycle.db_path, config


@flow(name="trading-status", flow_run_name="status {db}")
def trading_status(config_dir: str = "configs", db: str | None = None) -> str:
    """What `trader status` prints, also as the run's `trading-status` artifact."""
    path, config = _db(config_dir, db)
    text = "\n".join(status(path, config.safety))  # type: ignore[attr-defined]
    print(text)
    create_markdown_artifact(
        key="trading-status", markdown=f"```\n{text}\n```\n", description="trader status"
    )
    return text


@flow(name="halt-trading", flow_run_name="halt by {who}: {reason}")
def halt_trading(reason: str, who: str, config_dir: str = "configs", db: str | None = None) -> str:
    """Kill switch now: the next cycle cancels entries and keeps every stop."""
    path, _ = _db(config_dir, db)
    outcome = halt(path, reason, who)
    if outcome.record is not None:
        return str(outcome.record.state)
    return f"HALTED (applied by {outcome.applied_by})" if outcome.applied_by else "HALT queued"


@flow(name="resume-trading", flow_run_name="resume by {who}: {why}")
def resume_trading(
    why: str,
    who: str,
    confirm: bool = False,
    force: bool = False,
    config_dir: str = "configs",
    db: str | None = None,
) -> str:
    """Leave HALTED. `confirm` must be true: resuming is always a deliberate act."""
    if not confirm:
        raise ValueError("resume needs confirm=true: resuming trading is a deliberate act")
    path, config = _db(config_dir, db)
    return str(resume(path, config.safety, who, why, force).state)  # type: ignore[attr-defined]
