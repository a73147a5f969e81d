"""The state-repository port of the engine, and its in-memory implementation.

The engine (this package) reads and writes the write-ahead log, position records,
fills, system state and account marks only through `StateRepository`. Live
cycles use the DuckDB implementation (store/state.py); backtests and sweeps use
`MemoryState`, which keeps everything in dicts and lists and follows exactly the
same rules (an intent moves only along the log's transition table and is never
overwritten; a fill is stored once).
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from core.invariants import AccountSnapshot, InvariantReport
from core.orders import Fill
from core.position_events import PositionEvent
from core.positions import TERMINAL_STATES, Position
from core.reconcile import OrderOwner
from core.system_state import SystemStateRecord, initial_record
from core.wal import FINAL_STATES, WAL_TRANSITIONS, IntentEntry, InvalidIntentTransition

AttributedFill = tuple[Fill, str | None]  # a fill and the position it was applied to


class StateRepository(Protocol):
    """Where the engine keeps what must survive a cycle (and, live, a crash)."""

    # -- the write-ahead log --------------------------------------------------------------
    def intent(self, intent_id: str) -> IntentEntry | None: ...
    def save_intent(self, entry: IntentEntry, cycle_id: int | None) -> None:
        """Insert, or move along WAL_TRANSITIONS; refuses (InvalidIntentTransition) the rest."""
        ...
    def unresolved_intents(self) -> list[IntentEntry]: ...
    def intents_by_client_id(self) -> dict[str, IntentEntry]: ...
    def order_owners(self) -> dict[str, OrderOwner]: ...
    def stop_sends(self, cycle_id: int) -> dict[str, int]: ...
    def orders_placed(self, cycle_id: int) -> int: ...

    # -- positions, their events, fills ---------------------------------------------------
    def live_positions(self) -> list[Position]: ...
    def save_positions(self, positions: Sequence[Position], at: datetime) -> None: ...
    def record_events(
        self, events: Sequence[PositionEvent], cycle_id: int | None, at: datetime
    ) -> None: ...
    def save_progress(
        self,
        positions: Sequence[Position],
        events: Sequence[PositionEvent],
        fills: Sequence[AttributedFill],
        cycle_id: int | None,
        at: datetime,
    ) -> None:
        """Positions, events and fills in one atomic step (all or none)."""
        ...
    def new_fills(self, fills: Sequence[Fill]) -> list[Fill]: ...
    def fills_of_order(self, venue_order_id: str) -> list[Fill]: ...
    def last_fill_time(self) -> datetime | None: ...

    # -- small values ---------------------------------------------------------------------
    def get_value(self, key: str) -> str | None: ...
    def set_value(self, key: str, value: str) -> None: ...

    # -- the system state and the account -------------------------------------------------
    def current_record(self, now: datetime) -> SystemStateRecord: ...
    def append_record(
        self, record: SystemStateRecord, cycle_id: int | None, at: datetime
    ) -> None: ...
    def high_water(self) -> float | None: ...
    def record_checks(
        self, cycle_id: int, report: InvariantReport, account: AccountSnapshot
    ) -> None: ...
    def last_account(self) -> AccountSnapshot | None: ...


def check_move(entry: IntentEntry, stored: IntentEntry | None) -> None:
    """Refuse (InvalidIntentTransition) a save the log's table forbids: re-inserting an id
    already logged, a move the table lacks, or rewriting a final intent's venue order id."""
    if stored is None:
        return
    same = entry.state is stored.state
    if not same and entry.state not in WAL_TRANSITIONS[stored.state]:
        raise InvalidIntentTransition(
            f"intent {entry.intent_id}: the log holds it {stored.state}; "
            f"{stored.state} -> {entry.state} is not allowed (an intent is never overwritten)"
        )
    if same and stored.state in FINAL_STATES and entry.venue_order_id != stored.venue_order_id:
        raise InvalidIntentTransition(
            f"intent {entry.intent_id}: final ({stored.state}) with venue order "
            f"{stored.venue_order_id}; refusing to rewrite it as {entry.venue_order_id}"
        )


@functools.lru_cache(maxsize=65536)
def _position_id(payload: str) -> object:
    """The payload's position id: parsed once per payload text (a backtest asks every hour
    about every intent ever logged)."""
    return json.loads(payload).get("position_id")


@dataclass
class MemoryState:
    """StateRepository in memory: for backtests and sweeps (and tests)."""

    intents: dict[str, IntentEntry] = field(default_factory=dict)
    intent_cycles: dict[str, int | None] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    events: list[tuple[int | None, datetime, PositionEvent]] = field(default_factory=list)
    fills: dict[str, AttributedFill] = field(default_factory=dict)  # insertion = time order
    fill_cycles: dict[str, int | None] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    history: list[tuple[int | None, datetime, SystemStateRecord]] = field(default_factory=list)
    marks: dict[int, tuple[InvariantReport, AccountSnapshot]] = field(default_factory=dict)
    _high_water: float | None = field(default=None, repr=False, compare=False)
    _high_water_stale: bool = field(default=True, repr=False, compare=False)

    # -- the write-ahead log --------------------------------------------------------------

    def intent(self, intent_id: str) -> IntentEntry | None:
        return self.intents.get(intent_id)

    def save_intent(self, entry: IntentEntry, cycle_id: int | None) -> None:
        stored = self.intents.get(entry.intent_id)
        check_move(entry, stored)
        self.intents[entry.intent_id] = entry
        self.intent_cycles.setdefault(entry.intent_id, cycle_id)

    def unresolved_intents(self) -> list[IntentEntry]:
        pending = [e for e in self.intents.values() if not e.is_final]
        return sorted(pending, key=lambda e: (e.created_at, e.intent_id))

    def intents_by_client_id(self) -> dict[str, IntentEntry]:
        return {e.client_id: e for e in self.intents.values() if e.client_id is not None}

    def order_owners(self) -> dict[str, OrderOwner]:
        out = {}
        for e in self.intents.values():
            if e.client_id is None:
                continue
            pid = _position_id(e.payload)
            record = self.positions.get(pid) if isinstance(pid, str) else None
            closed = record is not None and record.state in TERMINAL_STATES
            out[e.client_id] = OrderOwner(pid, recorded=record is not None, closed=closed)
        return out

    def stop_sends(self, cycle_id: int) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for iid, e in self.intents.items():
            if self.intent_cycles.get(iid) == cycle_id and e.action_type.value in (
                "place_stop",
                "move_stop",
            ):
                pid = _position_id(e.payload)
                if isinstance(pid, str):
                    counts[pid] += 1
        return dict(counts)

    def orders_placed(self, cycle_id: int) -> int:
        return sum(
            1
            for iid, e in self.intents.items()
            if self.intent_cycles.get(iid) == cycle_id
            and e.client_id is not None
            and e.state.value == "acknowledged"
        )

    # -- positions, their events, fills ---------------------------------------------------

    def live_positions(self) -> list[Position]:
        live = [p for p in self.positions.values() if p.state not in TERMINAL_STATES]
        return sorted(live, key=lambda p: p.position_id)

    def save_positions(self, positions: Sequence[Position], at: datetime) -> None:
        for p in positions:
            self.positions[p.position_id] = p

    def record_events(
        self, events: Sequence[PositionEvent], cycle_id: int | None, at: datetime
    ) -> None:
        self.events += [(cycle_id, at, e) for e in events]

    def save_progress(
        self,
        positions: Sequence[Position],
        events: Sequence[PositionEvent],
        fills: Sequence[AttributedFill],
        cycle_id: int | None,
        at: datetime,
    ) -> None:
        self.save_positions(positions, at)
        self.record_events(events, cycle_id, at)
        for fill, pid in fills:
            if fill.fill_id not in self.fills:
                self.fills[fill.fill_id] = (fill, pid)
                self.fill_cycles[fill.fill_id] = cycle_id

    def new_fills(self, fills: Sequence[Fill]) -> list[Fill]:
        return [f for f in fills if f.fill_id not in self.fills]

    def fills_of_order(self, venue_order_id: str) -> list[Fill]:
        mine = [f for f, _ in self.fills.values() if f.venue_order_id == venue_order_id]
        return sorted(mine, key=lambda f: (f.ts, f.fill_id))

    def last_fill_time(self) -> datetime | None:
        return max((f.ts for f, _ in self.fills.values()), default=None)

    # -- small values ---------------------------------------------------------------------

    def get_value(self, key: str) -> str | None:
        return self.values.get(key)

    def set_value(self, key: str, value: str) -> None:
        self.values[key] = value

    # -- the system state and the account -------------------------------------------------

    def current_record(self, now: datetime) -> SystemStateRecord:
        return self.history[-1][2] if self.history else initial_record(now)

    def append_record(self, record: SystemStateRecord, cycle_id: int | None, at: datetime) -> None:
        self.history.append((cycle_id, at, record))

    def high_water(self) -> float | None:
        # kept as records arrive: a backtest asks every hour, over thousands of marks
        if self._high_water_stale:
            self._high_water = max(
                (r.equity_high_water for r, _ in self.marks.values()), default=None
            )
            self._high_water_stale = False
        return self._high_water

    def record_checks(
        self, cycle_id: int, report: InvariantReport, account: AccountSnapshot
    ) -> None:
        replaced = cycle_id in self.marks
        self.marks[cycle_id] = (report, account)
        if replaced or self._high_water_stale:
            self._high_water_stale = True  # a cycle recorded again: recount on the next ask
        elif self._high_water is None or report.equity_high_water > self._high_water:
            self._high_water = report.equity_high_water

    def last_account(self) -> AccountSnapshot | None:
        if not self.marks:
            return None
        report, account = self.marks[max(self.marks)]
        return AccountSnapshot(
            account.equity,
            account.margin_used,
            report.equity_high_water,
            account.positions,
            account.ts,
            account.unprotected_cycles,
        )
