"""Every open position gets a working stop, and a stop is never sent where it cannot work.

Two pure functions the execution stage calls with the cycle's mark prices:

- `guard_stop`: the pre-trade gate of a stop order the position machine asks for.
  A trigger already through the mark (after a gap) would be refused by the venue
  (or fire at once); it is re-priced to a valid level beyond the mark, or the
  position is closed reduce-only, as `execution.crossed_stop_action` says.
- `plan_protection`: for an open position without a working stop whose last
  attempt was refused, the next attempt (guarded too), at most
  `execution.stop_attempts_per_cycle` sends per position and cycle. A refused
  stop is never resent blindly at the same price, and a position that stays
  unprotected is escalated by the invariant monitor (DEGRADED, then HALTED).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import StrEnum

from core.actions import Action, MoveStop, PlaceStop
from core.orders import PositionSide
from core.position_events import CloseRequested
from core.positions import Position, PositionState, apply
from core.precision import round_away

log = logging.getLogger("smc_trader.protection")


class CrossedStopAction(StrEnum):
    REPRICE = "reprice"  # a new trigger `crossed_stop_buffer_pct` beyond the mark
    CLOSE = "close"  # close the position with a reduce-only market order


@dataclass(frozen=True, slots=True)
class ProtectionRules:
    crossed_stop_action: CrossedStopAction = CrossedStopAction.CLOSE
    crossed_stop_buffer_pct: float = 0.005
    stop_attempts_per_cycle: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.crossed_stop_buffer_pct < 0.5:
            raise ValueError(
                f"crossed_stop_buffer_pct must be in (0, 0.5), got {self.crossed_stop_buffer_pct}"
            )
        if self.stop_attempts_per_cycle < 1:
            raise ValueError("stop_attempts_per_cycle must be at least 1")


def crossed(side: PositionSide, trigger: float, mark: float | None, tick: float) -> bool:
    """True when a stop at `trigger` is not beyond the mark by at least a tick (a long's stop
    must sit below the mark): the venue would refuse it, or it would fire at once."""
    if mark is None or mark <= 0:
        return False
    if side is PositionSide.LONG:
        return trigger > mark - tick
    return trigger < mark + tick


def repriced_trigger(side: PositionSide, mark: float, buffer_pct: float, tick: float) -> float:
    """A valid stop `buffer_pct` beyond the mark, on the tick grid, rounded away from it."""
    if side is PositionSide.LONG:
        return max(round_away(mark * (1 - buffer_pct), tick, up=False), tick)
    return round_away(mark * (1 + buffer_pct), tick, up=True)


def guard_stop(
    position: Position, action: PlaceStop | MoveStop, mark: float | None, rules: ProtectionRules
) -> tuple[Position, list[Action]]:
    """The stop action to send (or what replaces it) and the position it implies.

    A trigger already through the mark: re-priced beyond it (the record's stop
    price follows), or for a PLACE_STOP with `close` configured, the position's
    close instead (a MOVE_STOP then keeps the working stop: it is not moved).
    Anything else passes unchanged.
    """
    if not crossed(position.side, action.trigger_price, mark, position.tick_size):
        return position, [action]
    assert mark is not None  # crossed() is False without a mark
    closable = position.state in (PositionState.OPEN_UNPROTECTED, PositionState.PROTECTED)
    if rules.crossed_stop_action is CrossedStopAction.CLOSE and closable:
        if isinstance(action, MoveStop):
            log.warning(
                "STOP_CROSSED %s %s: move to %s is through the mark %s; the working stop stays",
                position.symbol, position.position_id, action.trigger_price, mark,
            )
            return position, []
        log.warning(
            "STOP_CROSSED %s %s: stop %s is through the mark %s; closing reduce-only",
            position.symbol, position.position_id, action.trigger_price, mark,
        )
        return apply(position, CloseRequested(position.position_id, "stop through the mark"))
    trigger = repriced_trigger(position.side, mark, rules.crossed_stop_buffer_pct,
                               position.tick_size)
    log.warning(
        "STOP_REPRICED %s %s: stop %s is through the mark %s; sent at %s instead",
        position.symbol, position.position_id, action.trigger_price, mark, trigger,
    )
    return replace(position, stop_price=trigger), [replace(action, trigger_price=trigger)]


def needs_stop(position: Position) -> bool:
    """Open, holding contracts, no stop confirmed, and the last attempt was refused (an
    attempt in flight is the write-ahead log's to settle, never sent twice)."""
    return (
        position.state in (PositionState.OPEN_UNPROTECTED, PositionState.CLOSING)
        and position.stop_order_id is None
        and position.size >= position.lot_size / 2
        and position.stop_rejections > 0
    )


def plan_protection(
    position: Position, mark: float | None, rules: ProtectionRules, sent_this_cycle: int
) -> tuple[Position, list[Action]]:
    """The next stop attempt for a position whose stop was refused, guarded against the
    mark; nothing once `stop_attempts_per_cycle` stops were sent for it this cycle."""
    if not needs_stop(position):
        return position, []
    if sent_this_cycle >= rules.stop_attempts_per_cycle:
        log.warning(
            "UNPROTECTED %s %s: stop refused %d time(s) (%s); next attempt next cycle",
            position.symbol, position.position_id, position.stop_rejections,
            position.stop_problem,
        )
        return position, []
    action = PlaceStop(
        position_id=position.position_id,
        symbol=position.symbol,
        side=position.side.exit_order_side,
        size=position.size,
        trigger_price=position.stop_price,
        client_id=position.stop_client_id,
    )
    return guard_stop(position, action, mark, rules)
