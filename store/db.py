"""The DuckDB store: one file, opened per unit of work and closed right after.

DuckDB locks the whole file per process (readers included), so no reader opens
this file: readers query the read copy published after each cycle
(store/publish.py, `trader sql`). An opener that finds the file locked (an operator
command holds it for a moment) waits a few seconds before giving up. Every write runs
inside a transaction that rolls back on failure, with parameters bound, never
formatted into SQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from core.errors import TraderError
from store.migrations import MIGRATIONS

log = logging.getLogger("smc_trader.store")


# How long an opener waits for another process's lock: operator commands hold the file
# for well under a second; a cycle holds it for its whole run.
LOCK_WAIT_S = 10.0


class StoreError(TraderError, RuntimeError):
    """The store cannot be opened or migrated; the message says what to do."""


class StoreLockedError(StoreError):
    """Another process holds the store's lock (a cycle, or a reader that should not)."""


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    return "lock" in str(exc).lower()


def _connect(
    path: Path, *, read_only: bool, lock_wait_s: float = LOCK_WAIT_S
) -> duckdb.DuckDBPyConnection:
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise StoreError(f"{path} does not exist yet: run a cycle first (trader cycle)")
    deadline = time.monotonic() + lock_wait_s
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _is_lock_conflict(exc):
                raise StoreError(f"cannot open {path}: {exc}") from exc
            if time.monotonic() >= deadline:
                raise StoreLockedError(
                    f"cannot open {path}: {exc}. Another process holds it (DuckDB locks the "
                    "file, readers included): SQL readers must use the read copy "
                    "(trader sql, or the *-read.duckdb file beside it), never this file"
                ) from exc
            time.sleep(0.2)
    # Without this timestamps come back as 'Etc/UTC', which the frame schemas refuse.
    con.execute("SET TimeZone='UTC'")
    return con


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration not yet applied, each in its own transaction. Returns the version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ DEFAULT now())"
    )
    # fetchall: a half-read result keeps the connection busy and DuckDB 2.0 then refuses
    # con.register on it (ResourceInUseException).
    rows = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
    current = int(rows[0][0]) if rows else 0
    known = max((m.version for m in MIGRATIONS), default=0)
    if current > known:
        raise StoreError(
            f"database schema version {current} is newer than this code knows ({known}): "
            "upgrade the code (git pull) before running it on this file"
        )
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_version (version, name) VALUES (?, ?)",
                [migration.version, migration.name],
            )
            con.execute("COMMIT")
        except duckdb.Error:
            con.execute("ROLLBACK")
            raise
        log.info("store migrated to version %d (%s)", migration.version, migration.name)
        current = migration.version
    return current


def connect_store(path: Path, lock_wait_s: float = LOCK_WAIT_S) -> duckdb.DuckDBPyConnection:
    """A migrated read-write connection the caller closes (for a stage with many writes:
    opening and closing the file costs tens of milliseconds each time). Raises
    StoreLockedError when another process still holds the file after `lock_wait_s`."""
    con = _connect(path, read_only=False, lock_wait_s=lock_wait_s)
    try:
        migrate(con)
    except BaseException:
        con.close()
        raise
    return con


def connect_read_only(path: Path, lock_wait_s: float = LOCK_WAIT_S) -> duckdb.DuckDBPyConnection:
    """A read-only connection the caller closes. Raises StoreError if the file is missing,
    StoreLockedError if another process still holds it after `lock_wait_s`."""
    return _connect(path, read_only=True, lock_wait_s=lock_wait_s)


# The connection of the cycle in progress, per file: opening and closing DuckDB costs tens
# of milliseconds, and a cycle writes dozens of times. Closed when the cycle ends, so the
# file is never held between cycles.
_SESSIONS: dict[Path, duckdb.DuckDBPyConnection] = {}


@contextmanager
def cycle_session(
    path: Path, on_close: Callable[[duckdb.DuckDBPyConnection, Path], object] | None = None
) -> Iterator[None]:
    """Within this block, open_store(path) reuses one connection; closed at the end, after
    `on_close(connection, path)` (the read copy's publication), whether the block failed
    or not. `on_close` must not raise: it would hide the block's own error."""
    key = path.resolve()
    if key in _SESSIONS:
        yield
        return
    _SESSIONS[key] = connect_store(path)
    try:
        yield
    finally:
        con = _SESSIONS.pop(key)
        try:
            if on_close is not None:
                on_close(con, path)
        finally:
            con.close()


def session_connection(path: Path) -> duckdb.DuckDBPyConnection | None:
    """The cycle's shared connection to `path`, if a cycle_session is open."""
    return _SESSIONS.get(path.resolve())


@contextmanager
def open_store(path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A migrated connection to the store, closed when the block ends (or the cycle's
    shared connection inside a cycle_session)."""
    shared = None if read_only else _SESSIONS.get(path.resolve())
    if shared is not None:
        yield shared
        return
    con = _connect(path, read_only=read_only)
    try:
        if not read_only:
            migrate(con)
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, rolled back on any exception, so nothing is left half-written."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def one(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of an executed query, with the result fully consumed.

    DuckDB 2.0 keeps a half-read result open and then refuses register/sql on the
    connection (ResourceInUseException), so never call fetchone() directly.
    """
    rows = result.fetchall()
    return rows[0] if rows else None
