"""Operator halts that land even while a cycle holds the store.

`trader halt` first writes its request as a file beside the store (data/trading-requests/,
written to a temporary name, synced, then renamed: never half-written), then applies it
itself if the store is free. While a cycle holds the store, the cycle applies every
pending request at its next account read: before the auction when the request came
before it, else before the invariant check, so the kill switch runs in that same cycle.
An applied request is recorded in the store (kv) before its file goes, so a crash in
between never applies it twice.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from core.system_state import SystemStateRecord, operator_halt
from store.db import one, transaction
from store.safety import append_record, current_record

log = logging.getLogger("smc_trader.operator")

APPLIED_KEY = "operator_request.applied.{}"


@dataclass(frozen=True, slots=True)
class HaltRequest:
    request_id: str
    reason: str
    who: str
    requested_at: str  # ISO, UTC

    @property
    def at(self) -> datetime:
        return datetime.fromisoformat(self.requested_at)


def requests_dir(db_path: Path) -> Path:
    """data/trading.duckdb -> data/trading-requests/"""
    db_path = Path(db_path)
    return db_path.with_name(f"{db_path.stem}-requests")


def queue_halt(db_path: Path, reason: str, who: str) -> HaltRequest:
    """Write a halt request durably. Refuses (ValueError) an empty reason or name."""
    if not reason.strip() or not who.strip():
        raise ValueError("operator halt needs a non-empty reason and operator name")
    now = datetime.now(UTC)
    request = HaltRequest(f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}", reason, who,
                          now.isoformat())
    folder = requests_dir(db_path)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"halt-{request.request_id}.json"
    tmp = folder / f".{final.name}.tmp"
    with open(tmp, "w") as out:
        json.dump(asdict(request), out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, final)
    return request


def pending(db_path: Path) -> list[tuple[Path, HaltRequest]]:
    """Queued halt requests, oldest first (an unreadable file is logged and left alone)."""
    folder = requests_dir(db_path)
    found = []
    for path in sorted(folder.glob("halt-*.json")) if folder.is_dir() else []:
        try:
            found.append((path, HaltRequest(**json.loads(path.read_text()))))
        except (OSError, ValueError, TypeError) as exc:
            log.error("operator request %s unreadable, not applied: %s", path, exc)
    return found


def _applied(con: duckdb.DuckDBPyConnection, request_id: str) -> bool:
    row = one(con.execute("SELECT 1 FROM kv WHERE key = ?", [APPLIED_KEY.format(request_id)]))
    return row is not None


def apply_pending(
    con: duckdb.DuckDBPyConnection, db_path: Path, cycle_id: int | None = None
) -> list[SystemStateRecord]:
    """Apply every queued halt to the store behind `con`; returns the records appended."""
    records = []
    for path, request in pending(db_path):
        if not _applied(con, request.request_id):
            record = operator_halt(
                current_record(con, request.at), request.reason, request.who, request.at
            )
            append_record(con, record, cycle_id, request.at)
            with transaction(con):
                con.execute(
                    "INSERT OR REPLACE INTO kv VALUES (?, ?)",
                    [APPLIED_KEY.format(request.request_id), datetime.now(UTC).isoformat()],
                )
            records.append(record)
            log.warning(
                "operator halt applied%s (requested %s by %s): %s",
                f" in cycle {cycle_id}" if cycle_id is not None else "",
                request.requested_at, request.who, request.reason,
            )
        path.unlink(missing_ok=True)
    return records
