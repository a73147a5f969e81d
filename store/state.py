"""The engine's state-repository port (core/engine/state.py) on the DuckDB store.

Each method is one short transaction of store/execution.py or store/safety.py on the
connection given (the cycle's shared one), so a process killed at any point leaves
each table before or after a change, never half of one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb

from core.engine.state import AttributedFill
from core.invariants import AccountSnapshot, InvariantReport
from core.orders import Fill
from core.position_events import PositionEvent
from core.positions import Position
from core.reconcile import OrderOwner
from core.system_state import SystemStateRecord
from core.wal import IntentEntry
from store import execution as ex
from store import safety
from store.db import open_store


class DuckDBState:
    """StateRepository on one open DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    # -- the write-ahead log --------------------------------------------------------------

    def intent(self, intent_id: str) -> IntentEntry | None:
        return ex.intent(self.con, intent_id)

    def save_intent(self, entry: IntentEntry, cycle_id: int | None) -> None:
        ex.save_intent(self.con, entry, cycle_id)

    def unresolved_intents(self) -> list[IntentEntry]:
        return ex.unresolved_intents(self.con)

    def intents_by_client_id(self) -> dict[str, IntentEntry]:
        return ex.intents_by_client_id(self.con)

    def order_owners(self) -> dict[str, OrderOwner]:
        return ex.order_owners(self.con)

    def stop_sends(self, cycle_id: int) -> dict[str, int]:
        return ex.stop_sends(self.con, cycle_id)

    def orders_placed(self, cycle_id: int) -> int:
        return ex.orders_placed(self.con, cycle_id)

    # -- positions, their events, fills ---------------------------------------------------

    def live_positions(self) -> list[Position]:
        return ex.live_positions(self.con)

    def save_positions(self, positions: Sequence[Position], at: datetime) -> None:
        ex.save_positions(self.con, list(positions), at)

    def record_events(
        self, events: Sequence[PositionEvent], cycle_id: int | None, at: datetime
    ) -> None:
        ex.record_events(self.con, list(events), cycle_id, at)

    def save_progress(
        self,
        positions: Sequence[Position],
        events: Sequence[PositionEvent],
        fills: Sequence[AttributedFill],
        cycle_id: int | None,
        at: datetime,
    ) -> None:
        ex.save_progress(self.con, list(positions), list(events), list(fills), cycle_id, at)

    def new_fills(self, fills: Sequence[Fill]) -> list[Fill]:
        return ex.new_fills(self.con, list(fills))

    def fills_of_order(self, venue_order_id: str) -> list[Fill]:
        return ex.fills_of_order(self.con, venue_order_id)

    def last_fill_time(self) -> datetime | None:
        return ex.last_fill_time(self.con)

    # -- small values ---------------------------------------------------------------------

    def get_value(self, key: str) -> str | None:
        return ex.get_value(self.con, key)

    def set_value(self, key: str, value: str) -> None:
        ex.set_value(self.con, key, value)

    # -- the system state and the account -------------------------------------------------

    def current_record(self, now: datetime) -> SystemStateRecord:
        return safety.current_record(self.con, now)

    def append_record(self, record: SystemStateRecord, cycle_id: int | None, at: datetime) -> None:
        safety.append_record(self.con, record, cycle_id, at)

    def high_water(self) -> float | None:
        return safety.high_water(self.con)

    def record_checks(
        self, cycle_id: int, report: InvariantReport, account: AccountSnapshot
    ) -> None:
        safety.record_checks(self.con, cycle_id, report, account)

    def last_account(self) -> AccountSnapshot | None:
        return safety.last_account(self.con)


@contextmanager
def store_state(db_path: Path) -> Iterator[DuckDBState]:
    """The engine's state on the store at `db_path` (the cycle's shared connection inside a
    cycle_session, else one opened for the block and closed after it)."""
    with open_store(db_path) as con:
        yield DuckDBState(con)
