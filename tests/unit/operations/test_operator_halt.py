"""`trader halt` always lands: applied at once when the store is free, waited for while a
cycle holds it, else queued durably and applied by the next account read (before the
next decision), exactly once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.system_state import SystemState
from schemas.config import SafetyConfig
from store.db import connect_store, open_store
from store.operator_requests import apply_pending, pending, queue_halt
from store.publish import publish
from tasks.safety import halt, status
from trader.cli import main

HOLD = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "trading.duckdb"
    con = connect_store(path)
    publish(con, path)
    con.close()
    return path


def hold_lock(db: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the store's lock, as a running cycle does."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_free_store_is_halted_at_once_and_the_read_copy_shows_it(db):
    outcome = halt(db, "test halt", "alice")
    assert outcome.applied_by == "this command"
    assert outcome.record is not None and outcome.record.state is SystemState.HALTED
    assert pending(db) == []
    lines = status(db, SafetyConfig())
    assert lines[0].startswith("state: HALTED since ")
    assert "cause: operator halt: test halt" in lines


def test_a_halt_while_a_cycle_holds_the_store_is_queued_then_applied_once(db):
    holder = hold_lock(db, 30)
    try:
        outcome = halt(db, "queued halt", "bob", wait_s=1.0)
        assert (outcome.record, outcome.applied_by) == (None, None)
        (_, request), = pending(db)
        assert (request.reason, request.who) == ("queued halt", "bob")
        lines = status(db, SafetyConfig())  # the read copy: never waits for the holder
        assert any(line.startswith("PENDING operator halt queued") for line in lines)
        assert any("read copy of cycle" in line for line in lines)
    finally:
        holder.kill()
        holder.wait()
    queued_file = pending(db)[0][0]
    saved = queued_file.read_text()
    with open_store(db) as con:  # what a cycle's account read does
        (record,) = apply_pending(con, db, cycle_id=12)
        assert record.state is SystemState.HALTED
        assert record.cause == "operator halt: queued halt"
        # a crash after the record but before the file went: never applied twice
        queued_file.write_text(saved)
        assert apply_pending(con, db, cycle_id=13) == []
        rows = con.execute("SELECT count(*) FROM system_state_history").fetchall()
    assert rows == [(1,)]
    assert pending(db) == []


def test_a_halt_waits_for_a_short_hold_and_applies_itself(db):
    holder = hold_lock(db, 1.5)
    started = time.monotonic()
    outcome = halt(db, "waited halt", "carol", wait_s=30.0)
    holder.wait()
    assert outcome.applied_by == "this command"
    assert outcome.record is not None and outcome.record.state is SystemState.HALTED
    assert time.monotonic() - started < 30.0


def test_the_cli_prints_one_line_per_fact_and_no_traceback_while_the_store_is_held(
    db, capsys
):
    holder = hold_lock(db, 30)
    try:
        code = main(["halt", "--db", str(db), "--reason", "cli halt", "--wait", "0.5"])
    finally:
        holder.kill()
        holder.wait()
    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith("HALT queued (")
    assert "the next cycle applies it before any decision" in out
    assert "Traceback" not in out + err


def test_an_empty_reason_is_refused_before_anything_is_queued(db):
    with pytest.raises(ValueError, match="non-empty"):
        queue_halt(db, " ", "alice")
    assert pending(db) == []
