"""The execution gateway: actions in, orders out, every step in the write-ahead log first.

For an action that creates an order:
  PENDING (recorded) -> SENT (recorded just before the request) -> ACKNOWLEDGED | REJECTED,
  or UNKNOWN when the request failed without a verdict (timeout, 5xx, lost acknowledgement).
Before anything else each run resolves every non-final intent against the venue by
client order id: an order the venue has is acknowledged, never submitted again. That is
what makes a Prefect retry of the execution task safe.

Fills are applied to positions exactly once (by fill id); acknowledgements, rejections
and fills become position events; the position machine turns them into the next actions.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.actions import (
    Action,
    ActionType,
    Cancel,
    CloseRecord,
    Flatten,
    ImportPosition,
    MoveStop,
    NoAction,
    PlaceEntry,
    PlaceStop,
    PlaceTp,
    client_id_for,
    describe,
)
from core.cycle import Clock
from core.engine.state import StateRepository
from core.errors import (
    DuplicateClientIdError,
    RateLimitedError,
    VenueError,
    VenueRetryableError,
)
from core.orders import Order, OrderRequest, OrderStatus, OrderType, OrderVenue
from core.position_events import (
    EntryRejected,
    PositionEvent,
    StopMoved,
)
from core.positions import Position, PositionState
from core.wal import (
    Decision,
    IntentEntry,
    IntentState,
    advance,
    apply_resolution,
    new_intent,
    position_event,
    resolve_pending,
)

log = logging.getLogger("smc_trader.execution")

MAX_ROUNDS = 4  # ack -> event -> action chains are short (entry -> stop -> TPs)
_ENTRY_STATES = frozenset(
    {PositionState.PENDING_ENTRY, PositionState.OPEN_UNPROTECTED, PositionState.PROTECTED}
)


CANCEL_ATTEMPTS = 3  # a cancel creates nothing: a transient failure is retried at once


@dataclass
class ExecutionReport:
    placed: int = 0
    cancelled: int = 0
    rejected: int = 0
    unknown: int = 0
    fills_applied: int = 0
    errors: list[str] = field(default_factory=list)


def order_request(action: Action) -> OrderRequest | None:
    """The venue order an action creates; None for actions that create none."""
    if isinstance(action, PlaceEntry):
        return OrderRequest(
            action.symbol,
            action.side,
            action.order_type,
            action.size,
            action.client_id,
            price=action.price,
        )
    if isinstance(action, PlaceStop | MoveStop):
        return OrderRequest(
            action.symbol,
            action.side,
            OrderType.STOP,
            action.size,
            action.client_id,
            trigger_price=action.trigger_price,
            reduce_only=True,
        )
    if isinstance(action, PlaceTp):
        return OrderRequest(
            action.symbol,
            action.side,
            OrderType.TAKE_PROFIT,
            action.size,
            action.client_id,
            trigger_price=action.trigger_price,
            reduce_only=True,
        )
    return None


class Gateway:
    """One cycle's execution against one order venue, journalled in the state's log."""

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
        self.report = ExecutionReport()
        # stop orders sent per position this cycle, across stages and task retries
        self.stop_sends: Counter[str] = Counter(state.stop_sends(cycle_id))
        self.ended_entries: dict[str, float] = {}  # position -> what its ended entry filled

    # -- the log ---------------------------------------------------------------------------

    def _save(self, entry: IntentEntry) -> IntentEntry:
        self.state.save_intent(entry, self.cycle_id)
        return entry

    def _now(self) -> datetime:
        return self.clock.now()

    # -- resolution --------------------------------------------------------------------------

    def resolve_unresolved(self) -> list[PositionEvent]:
        """Settle every non-final intent by asking the venue for its client id."""
        pending = self.state.unresolved_intents()
        if not pending:
            return []
        lookups = {}
        for entry in pending:
            if entry.client_id is None:
                continue
            try:
                lookups[entry.client_id] = self.venue.order_by_client_id(entry.client_id)
            except VenueRetryableError as exc:
                log.warning("intent %s: lookup deferred: %s", entry.intent_id, exc)
        events = []
        by_id = {e.intent_id: e for e in pending}
        for entry in pending:
            found = lookups.get(entry.client_id or "")
            if entry.action_type is ActionType.PLACE_ENTRY and found is not None:
                self._note_entry_order(entry, found)
        for resolution in resolve_pending(pending, lookups):
            entry = self._save(
                apply_resolution(by_id[resolution.intent_id], resolution, at=self._now())
            )
            log.info(
                "intent %s resolved: %s (%s)",
                entry.intent_id,
                resolution.decision,
                resolution.reason,
            )
            if resolution.decision is Decision.RESUBMIT and entry.client_id is not None:
                action = _action_from(entry)
                if action is not None:
                    sent = self._send(entry, action)
                    self._retire_replaced(entry, sent)
                    events += sent
            elif (event := position_event(entry)) is not None:
                self._retire_replaced(entry, [event])
                events.append(event)
        return events

    def recover_lost_events(self, positions: dict[str, Position]) -> list[PositionEvent]:
        """Events a crash lost between the intent log and the position records.

        - A pending entry whose order is not in the log was never sent (the log is written
          first): EntryRejected, as for any unsent entry, so the record stops blocking its
          market.
        - An acknowledged order of a position's current stop, stop move or TP attempt that
          the record does not name (the process died after logging the acknowledgement):
          its event again, so the record knows the order (and cancels it on close), and a
          stop move retires the stop it replaced.
        """
        logged = self.state.intents_by_client_id()
        events: list[PositionEvent] = []
        for p in positions.values():
            if p.state is PositionState.PENDING_ENTRY:
                if p.entry_client_id not in logged:
                    log.warning("%s: entry never recorded in the log; rejected", p.position_id)
                    events.append(EntryRejected(p.position_id, "entry never logged, not sent"))
                continue
            named = {p.stop_order_id, *p.tp_order_ids.values()}
            move = client_id_for(p.position_id, ActionType.MOVE_STOP, attempt=p.stop_attempt)
            for cid in (p.stop_client_id, move, *(p.tp_client_id(t.level) for t in p.tps)):
                entry = logged.get(cid)
                if entry is None or entry.state is not IntentState.ACKNOWLEDGED:
                    continue
                event = position_event(entry) if entry.venue_order_id not in named else None
                if event is not None:
                    log.warning("intent %s: acknowledgement missing from the record", cid)
                    self._retire_replaced(entry, [event])
                    events.append(event)
        return events

    # -- sending -----------------------------------------------------------------------------

    def execute(self, action: Action) -> list[PositionEvent]:
        """Carry out one action; the position events its outcome implies."""
        if isinstance(action, CloseRecord | ImportPosition | NoAction):
            log.info("local action %s", describe(action))
            return []
        if isinstance(action, Cancel):
            self._cancel(action)
            return []
        if isinstance(action, Flatten):
            return self._flatten(action)
        known = self.state.intent(action.client_id)
        if known is not None:
            # Same client id already in the log: never a second order for it.
            return [e for e in [position_event(known)] if e is not None] if known.is_final else []
        entry = self._save(new_intent(action, at=self._now()))
        events = self._send(entry, action)
        self._retire_replaced(entry, events)
        return events

    def _retire_replaced(self, entry: IntentEntry, events: list[PositionEvent]) -> None:
        """Cancel the stop a move replaces, once the new stop is acknowledged (StopMoved):
        a refused move keeps the old stop working, and a move acknowledged or resubmitted
        while resolving the log after a crash still retires the stop it replaces."""
        if entry.action_type is not ActionType.MOVE_STOP:
            return
        if not any(isinstance(e, StopMoved) for e in events):
            return
        info = entry.details()
        self._cancel(
            Cancel(
                str(info["position_id"]),
                str(info["symbol"]),
                "stop moved",
                venue_order_id=str(info["replaces_order_id"]),
            )
        )

    def _send(self, entry: IntentEntry, action: Action) -> list[PositionEvent]:
        request = order_request(action)
        if request is None:
            return []
        if isinstance(action, PlaceStop | MoveStop):
            self.stop_sends[action.position_id] += 1
        if entry.state is not IntentState.SENT:  # a resubmission was already moved to SENT
            entry = self._save(advance(entry, IntentState.SENT, at=self._now()))
        try:
            order = self.venue.submit(request)
        except DuplicateClientIdError:
            order = self.venue.order_by_client_id(request.client_id)
            if order is None:
                return self._reject(entry, "duplicate client id, yet the venue cannot find it")
        except RateLimitedError as exc:
            # Kraken refuses a rate-limited request before doing anything: a lookup by client
            # id settles it now (found: ours; absent: never placed) instead of a failed stage.
            settled = self._settle_now(entry, request.client_id, exc)
            if settled is None:
                return []
            if not settled:
                return self._reject(entry, f"rate limited, not placed: {exc}")
            order = settled
        except VenueRetryableError as exc:
            self._unknown(entry, exc)
            return []
        except VenueError as exc:
            return self._reject(entry, str(exc))
        self.report.placed += 1
        entry = self._save(
            advance(
                entry, IntentState.ACKNOWLEDGED, at=self._now(), venue_order_id=order.venue_order_id
            )
        )
        if entry.action_type is ActionType.PLACE_ENTRY:
            self._note_entry_order(entry, order)
        event = position_event(entry)
        return [event] if event is not None else []

    def _unknown(self, entry: IntentEntry, exc: Exception) -> None:
        self.report.unknown += 1
        self._save(advance(entry, IntentState.UNKNOWN, at=self._now(), reason=str(exc)))
        log.warning(
            "intent %s outcome unknown (will resolve by client id): %s", entry.intent_id, exc
        )

    def _settle_now(
        self, entry: IntentEntry, client_id: str, exc: Exception
    ) -> Order | bool | None:
        """After a refusal that did nothing: the order if the venue has it anyway, False when
        it does not, None (left UNKNOWN for the log to resolve) when the lookup failed too."""
        try:
            found = self.venue.order_by_client_id(client_id)
        except VenueRetryableError:
            self._unknown(entry, exc)
            return None
        return found if found is not None else False

    def _note_entry_order(self, entry: IntentEntry, order: Order) -> None:
        """An entry order that has ended (a market order is immediate-or-cancel): once its
        fills are applied, the entry is complete with what it filled."""
        pid = entry.details().get("position_id")
        if isinstance(pid, str) and order.status is not OrderStatus.OPEN:
            self.ended_entries[pid] = order.filled

    def _reject(self, entry: IntentEntry, reason: str) -> list[PositionEvent]:
        self.report.rejected += 1
        self.report.errors.append(f"{entry.intent_id}: {reason}")
        log.error(
            "Execution failed: %s %s %s: %s", entry.action_type, entry.symbol, entry.side, reason
        )
        entry = self._save(advance(entry, IntentState.REJECTED, at=self._now(), reason=reason))
        event = position_event(entry)
        return [event] if event is not None else []

    def _cancel(self, action: Cancel) -> None:
        target = action.venue_order_id
        try:
            if target is None and action.client_id is not None:
                order = self.venue.order_by_client_id(action.client_id)
                target = order.venue_order_id if order else None
            if target is None:
                return
            if self._cancel_with_retries(target) is not None:
                self.report.cancelled += 1
        except VenueError as exc:
            # A failed cancel leaves an extra reduce-only exit at worst; next cycle retries.
            log.warning("cancel %s for %s failed: %s", target, action.position_id, exc)

    def _cancel_with_retries(self, venue_order_id: str) -> Order | None:
        """A cancel is safe to repeat (it creates nothing), so a transient failure is retried
        at once, up to CANCEL_ATTEMPTS times; a refusal is not."""
        for attempt in range(1, CANCEL_ATTEMPTS + 1):
            try:
                return self.venue.cancel(venue_order_id)
            except VenueRetryableError:
                if attempt == CANCEL_ATTEMPTS:
                    raise
        return None

    def _flatten(self, action: Flatten) -> list[PositionEvent]:
        """Reduce-only market close of whatever the venue holds on the symbol (no side given).

        The order carries the action's client id (a record's flatten attempt) or, for a
        flatten of no record, a fresh id from the same scheme; an id already in the log is
        never sent again (a non-final one is settled by client id)."""
        client_id = action.client_id or self._fresh_flatten_id(action.symbol)
        known = self.state.intent(client_id)
        if known is not None:
            log.info("flatten %s: already in the log (%s); not sent again", client_id, known.state)
            return []
        held = [p for p in self.venue.positions() if p.symbol == action.symbol and p.size > 0]
        entry = self._save(new_intent(action, at=self._now(), intent_id=client_id))
        if not held:
            log.info("flatten %s: nothing held at the venue", action.symbol)
            reason = "nothing held at the venue"
            self._save(advance(entry, IntentState.REJECTED, at=self._now(), reason=reason))
            return []
        report = held[0]
        side = report.side.exit_order_side
        entry = self._save(advance(entry, IntentState.SENT, at=self._now()))
        request = OrderRequest(
            action.symbol, side, OrderType.MARKET, report.size, client_id, reduce_only=True
        )
        try:
            order = self.venue.submit(request)
        except RateLimitedError as exc:  # refused before anything was done: settle it now
            settled = self._settle_now(entry, client_id, exc)
            if settled is None:
                return []
            if not settled:
                return self._reject(entry, f"rate limited, not placed: {exc}")
            order = settled
        except VenueRetryableError as exc:  # maybe carried out: resolved later by client id
            self.report.unknown += 1
            self._save(advance(entry, IntentState.UNKNOWN, at=self._now(), reason=str(exc)))
            log.warning("flatten %s outcome unknown (resolved by client id): %s", client_id, exc)
            return []
        except VenueError as exc:
            return self._reject(entry, str(exc))
        self.report.placed += 1
        self._save(
            advance(
                entry, IntentState.ACKNOWLEDGED, at=self._now(), venue_order_id=order.venue_order_id
            )
        )
        return []

    def _fresh_flatten_id(self, symbol: str) -> str:
        """The first unused flatten id of this cycle and symbol (attempt 0, 1, ...)."""
        for attempt in range(1000):
            cid = recordless_flatten_id(self.cycle_id, symbol, attempt)
            if self.state.intent(cid) is None:
                return cid
        raise VenueError(f"flatten {symbol}: 1000 flattens in cycle {self.cycle_id}; refusing")

    # -- fills -------------------------------------------------------------------------------

def recordless_flatten_id(cycle_id: int, symbol: str, attempt: int = 0) -> str:
    """The client id of a flatten that belongs to no record (the kill switch's, an
    operator's): the one scheme, keyed by cycle and market."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", symbol)
    return client_id_for(f"c{cycle_id}-{safe}", ActionType.FLATTEN, attempt=attempt)


def _action_from(entry: IntentEntry) -> Action | None:
    """Rebuild a protective order action from its logged description (for a resubmission)."""
    info = entry.details()
    side = info.get("side")
    try:
        from core.orders import OrderSide

        order_side = OrderSide(str(side))
    except ValueError:
        return None
    pid, symbol, cid = str(info["position_id"]), str(info["symbol"]), str(entry.client_id)
    size, trigger = float(info["size"]), float(info.get("trigger_price") or 0)
    if entry.action_type is ActionType.PLACE_STOP:
        return PlaceStop(pid, symbol, order_side, size, trigger, cid)
    if entry.action_type is ActionType.PLACE_TP:
        return PlaceTp(pid, symbol, order_side, int(info["level"]), size, trigger, cid)
    if entry.action_type is ActionType.MOVE_STOP:
        return MoveStop(pid, symbol, order_side, size, trigger, str(info["replaces_order_id"]), cid)
    return None


__all__ = ["ExecutionReport", "Gateway", "order_request", "recordless_flatten_id"]
