"""Fills in, position events out: each venue fill applied once, to the position it belongs to.

Fills are attributed through the write-ahead log's client ids (an order of ours always
carries one). Each event is cumulative for its venue order, built from every fill of
that order (stored or new, each counted once by fill id), so a repeated or late report
is harmless. Fills read are saved together with the positions they change
(`save_progress`, one atomic step): a crash never marks a fill seen without its effect.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from core.actions import ActionType
from core.cycle import Clock
from core.engine.state import AttributedFill, StateRepository
from core.orders import Fill, OrderVenue
from core.position_events import (
    EntryCancelled,
    EntryFilled,
    EntryPartiallyFilled,
    FlattenFilled,
    PositionEvent,
    StopFilled,
    TpFilled,
)
from core.positions import Position, PositionState
from core.wal import IntentEntry

log = logging.getLogger("smc_trader.execution")

_ENTRY_STATES = frozenset(
    {PositionState.PENDING_ENTRY, PositionState.OPEN_UNPROTECTED, PositionState.PROTECTED}
)


class FillBook:
    """One stage's reading of venue fills: attributed, turned into events, saved with them."""

    def __init__(
        self,
        venue: OrderVenue,
        state: StateRepository,
        cycle_id: int,
        clock: Clock,
        *,
        fill_reread: timedelta = timedelta(hours=6),
    ) -> None:
        """fill_reread: fills are asked for from this long before the newest one stored, so
        one reported late (after a newer fill) is still seen; each is applied once, by id."""
        self.venue = venue
        self.state = state
        self.cycle_id = cycle_id
        self.clock = clock
        self.fill_reread = fill_reread
        self.applied = 0  # fills read and attributed this stage
        self._unsaved_fills: list[AttributedFill] = []  # see save_progress

    def _now(self) -> datetime:
        return self.clock.now()

    def fill_events(self, positions: dict[str, Position]) -> list[PositionEvent]:
        """Events for fills not applied before, attributed through the log's client ids.

        Each event is cumulative for its venue order (every fill of the order, stored or
        new, each counted once by fill id): a filled size is the order's own, never an
        estimate plus a fill. Entries whose order ended follow their fills."""
        newest = self.state.last_fill_time()
        since = newest - self.fill_reread if newest is not None else None
        fills = self.state.new_fills(self.venue.fills(since))
        intents = self.state.intents_by_client_id()
        taken = {f.fill_id for f, _ in self._unsaved_fills}
        fills = [f for f in fills if f.fill_id not in taken]
        grouped: dict[str, list[Fill]] = defaultdict(list)
        owners: dict[str, tuple[IntentEntry, str]] = {}
        attributed: list[tuple[Fill, str | None]] = []
        for fill in fills:
            entry = intents.get(fill.client_id or "")
            pid = _owner(entry, positions) if entry else None
            attributed.append((fill, pid))
            if entry is not None and pid is not None:
                grouped[fill.venue_order_id].append(fill)
                owners[fill.venue_order_id] = (entry, pid)
            else:
                log.warning(
                    "fill %s on %s has no intent of ours (client id %s): recorded only",
                    fill.fill_id,
                    fill.symbol,
                    fill.client_id,
                )
        events = []
        for venue_order_id, new in grouped.items():
            entry, pid = owners[venue_order_id]
            every = self._order_fills(venue_order_id) + new
            event = _fill_event(entry, pid, venue_order_id, every, positions)
            if event is not None:
                events.append(event)
        self._unsaved_fills += attributed  # recorded with the positions they change
        self.applied += len(fills)
        return events

    def _order_fills(self, venue_order_id: str) -> list[Fill]:
        """The order's fills already read: stored ones and those read earlier this stage."""
        stored = self.state.fills_of_order(venue_order_id)
        seen = {f.fill_id for f in stored}
        unsaved = [
            f for f, _ in self._unsaved_fills
            if f.venue_order_id == venue_order_id and f.fill_id not in seen
        ]
        return stored + unsaved

    def ended_entry_events(
        self, positions: dict[str, Position], ended: dict[str, float]
    ) -> list[PositionEvent]:
        """EntryCancelled for entries whose order ended (`ended`, from the gateway: position
        -> what the order filled) with less than asked, once the record holds what the order
        filled (its fills applied first); the others wait in `ended`."""
        events: list[PositionEvent] = []
        for pid, filled in list(ended.items()):
            p = positions.get(pid)
            if p is None or p.entry_complete or p.state not in _ENTRY_STATES:
                del ended[pid]
                continue
            if p.entry_filled >= filled - p.lot_size / 2:
                del ended[pid]
                events.append(EntryCancelled(pid, f"entry order ended with {filled} filled"))
        return events

    def save_progress(self, positions: dict[str, Position], applied: list[PositionEvent]) -> None:
        """Positions, the events applied to them and the fills read since the last save, in
        one transaction (a fill saved apart from its position is lost in a crash between)."""
        self.state.save_progress(
            list(positions.values()), applied, self._unsaved_fills, self.cycle_id, self._now()
        )
        self._unsaved_fills = []



def _owner(entry: IntentEntry, positions: dict[str, Position]) -> str | None:
    """The position an intent's fills belong to: the one it names, or for a flatten (which
    names none: it closes what the venue holds) the single record closing that symbol."""
    pid = entry.details().get("position_id")
    if isinstance(pid, str):
        return pid
    if entry.action_type is ActionType.FLATTEN:
        closing = [
            p.position_id
            for p in positions.values()
            if p.symbol == entry.symbol and p.state is PositionState.CLOSING
        ]
        return closing[0] if len(closing) == 1 else None
    return None


def _fill_event(
    entry: IntentEntry,
    pid: str,
    venue_order_id: str,
    group: list[Fill],
    positions: dict[str, Position],
) -> PositionEvent | None:
    """The cumulative event of one venue order from all its fills."""
    info = entry.details()
    size = sum(f.size for f in group)
    price = sum(f.size * f.price for f in group) / size
    position = positions.get(pid)
    if position is None:
        return None
    lot = position.lot_size
    ordered = info.get("size")
    done = not isinstance(ordered, int | float) or size >= float(ordered) - lot / 2
    basis = position.size_basis_ts
    reflected = sum(f.size for f in group if basis is not None and f.ts <= basis)
    kind = entry.action_type
    if kind is ActionType.PLACE_ENTRY:
        return (EntryFilled if done else EntryPartiallyFilled)(pid, size, price)
    if kind in (ActionType.PLACE_STOP, ActionType.MOVE_STOP):
        return StopFilled(pid, size, price, venue_order_id, done, reflected)
    if kind is ActionType.PLACE_TP:
        level = int(info["level"])  # type: ignore[call-overload]
        return TpFilled(pid, level, size, price, venue_order_id, done, reflected)
    if kind is ActionType.FLATTEN:  # a market order: done once it answered
        return FlattenFilled(pid, size, price, venue_order_id, True, reflected)
    return None


