"""Issue 12 through real cycles on the session's Prefect server: a reader held open never
blocks a cycle and sees the newest one; the dashboard artifact, run names and the status
artifact; a halt queued while a cycle holds the store lands before the next decision,
logs the kill-switch pattern once, and pages through the alert automation; two failed
runs page too."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from flows.cycle import trading_cycle
from flows.ops import trading_status
from schemas.allocation import Reason
from store.publish import read_copy_of
from tests.support.webhook import WebhookReceiver
from tests.unit.store.test_publish import readme_sql
from trader.alerts_setup import CYCLE_ALERT, FAILED_RUNS, WEBHOOK_ENV
from trader.cli import main

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

READER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("open", flush=True)
    for line in sys.stdin:
        print(con.execute(line).fetchall()[0][0], flush=True)
    """
)
HOLD = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.readline()
    """
)


def ask(reader: subprocess.Popen, query: str) -> str:
    assert reader.stdin is not None and reader.stdout is not None
    reader.stdin.write(query + "\n")
    reader.stdin.flush()
    return reader.stdout.readline().strip()


async def _latest_artifact(key: str):
    async with get_client() as client:
        (artifact,) = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC, limit=1,
        )
        run = await client.read_flow_run(artifact.flow_run_id) if artifact.flow_run_id else None
    return artifact, run


def test_a_reader_held_open_across_three_cycles_never_blocks_them_and_sees_the_third(
    prefect_server, tmp_path, cli_logs, capsys
):
    db = tmp_path / "trading.duckdb"
    assert main(["cycle", "--db", str(db)]) == 0
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(read_copy_of(db).views_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        assert ask(reader, "SELECT max(cycle_id) FROM cycles") == "1"
        assert main(["cycle", "--db", str(db), "--cycles", "3"]) == 0
        # the same connection, held the whole time, now reads the third of those cycles
        assert ask(reader, "SELECT max(cycle_id) FROM cycles") == "4"
        assert ask(reader, "SELECT count(*) FROM cycles WHERE finished_at IS NOT NULL") == "4"
        assert reader.poll() is None
    finally:
        reader.kill()
        reader.wait()
    log = cli_logs()
    assert log.count(" CYCLE_END ") == 4
    assert "Conflicting lock" not in log
    assert "read copy published: cycle 4" in log
    # the README's examples, as written, through `trader sql -c`
    capsys.readouterr()
    for statement in readme_sql():
        assert main(["sql", "--db", str(db), "-c", statement]) == 0, statement
    assert "why_no_trades" not in capsys.readouterr().err

    # the dashboard artifact of the last cycle, on a run named after the cycle and clock
    artifact, run = asyncio.run(_latest_artifact("cycle-sim-summary"))
    text = artifact.data
    assert text.startswith("## Cycle 4 · sim · ")
    for section in ("### Equity, last 24 h", "### Positions (", "### Gate funnel",
                    "### Orders: placed", "### Markets errored"):
        assert section in text, section
    assert "![equity, last 24 h](data:image/png;base64,iVBOR" in text
    assert "| markets | data | daily bias | structure | regime | OTE | risk | signals |" in text
    assert "initial state: no state change recorded in 4 cycle(s)" in text
    assert run is not None and run.name.startswith("cycle 4 · 2025-")

    # the status flow shows the same as `trader status`, as an artifact
    trading_status(db=str(db))
    status, _ = asyncio.run(_latest_artifact("trading-status"))
    assert "state: NORMAL since " in status.data
    assert "gate funnel: " in status.data and "equity 24 h: " in status.data


@pytest.fixture
def alert_hook(monkeypatch):
    with WebhookReceiver() as hook:
        monkeypatch.setenv(WEBHOOK_ENV, hook.url)
        yield hook
    asyncio.run(_delete_alert_setup())


async def _delete_alert_setup() -> None:
    async with get_client() as client:
        for name in (CYCLE_ALERT, FAILED_RUNS):
            for automation in await client.read_automations_by_name(name):
                await client.delete_automation(automation.id)


def test_a_halt_queued_during_a_cycle_lands_before_the_next_decision_and_pages(
    prefect_server, tmp_path, cli_logs, alert_hook, capsys
):
    db = tmp_path / "trading.duckdb"
    common = ["--db", str(db)]
    assert main(["alerts", "apply"]) == 0
    assert main(["cycle", *common]) == 0

    # a cycle holds the store (another process): the halt is queued, not lost, no traceback
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        capsys.readouterr()
        assert main(["halt", *common, "--reason", "queued by test", "--wait", "0.5"]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("HALT queued (") and "Traceback" not in out + err
    finally:
        holder.communicate("\n", timeout=30)

    before = len(cli_logs())
    assert main(["cycle", *common]) == 0
    cycle_log = cli_logs()[before:]
    assert "operator halt applied in cycle 2" in cycle_log
    # applied at the account read before the auction: cycle 2's signals were all refused
    con = duckdb.connect(str(db), read_only=True)
    try:
        intents = con.execute(
            "SELECT status, reason, count(*) FROM order_intents WHERE cycle_id = 2 GROUP BY ALL"
        ).fetchall()
        placed = con.execute(
            "SELECT count(*) FROM wal WHERE cycle_id = 2 AND action_type = 'place_entry'"
        ).fetchall()
    finally:
        con.close()
    assert intents and all((s, r) == ("refused", Reason.SYSTEM_HALTED) for s, r, _ in intents)
    assert placed == [(0,)]
    kill_lines = [line for line in cycle_log.splitlines() if "Kill switch active" in line]
    assert len(kill_lines) == 1 and " ERROR " in kill_lines[0]
    assert all(" INFO " in line for line in cycle_log.splitlines() if "kill switch: KEEP" in line)
    assert "CYCLE_END cycle_id=2" in cycle_log and "system_state=HALTED" in cycle_log

    body = alert_hook.wait_for(lambda b: "HALTED" in b.get("subject", ""), timeout_s=60)
    assert body is not None, f"no halt alert reached the webhook: {alert_hook.bodies}"
    assert "cycle 2" in body["subject"]
    assert "cause: operator halt: queued by test" in body["body"]
    assert "CYCLE_END cycle_id=2" in body["body"] and "/runs/flow-run/" in body["body"]

    # two failed runs: the server-side automation pages (a failed run cannot page itself)
    for _ in range(2):
        with pytest.raises(Exception, match="does not exist"):
            trading_cycle(config_dir=str(tmp_path / "missing"), db=str(db))
    failed = alert_hook.wait_for(lambda b: "runs failed" in b.get("subject", ""), timeout_s=60)
    assert failed is not None, f"no failed-runs alert: {alert_hook.bodies}"
    assert "ConfigError" in failed["body"] and "within 1:00:00" in failed["body"]
