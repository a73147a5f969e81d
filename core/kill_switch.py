"""Kill-switch plan (SPEC §8): what to do on HALT so that open positions stay protected.

Pure: positions and open orders in, an ordered plan of typed steps out; the gateway
executes it. The seed's kill switch cancelled every open order, stop-losses
included. This plan never cancels a protective stop; it first PLACES a stop for any
position (or part of one) left without, then cancels entries, then take-profits
if configured, then flattens if configured.

Order roles, decided per order against the open positions:
- PROTECTIVE_STOP: a STOP on the exit side of an open position, reduce-only or not
  (an unflagged one still protects; cancelling it could leave the position bare).
- OTHER_STOP: a reduce-only STOP that protects no open position: kept (it cannot
  open a position; reconciliation cleans it up).
- TAKE_PROFIT: a TAKE_PROFIT, or a reduce-only LIMIT, on the exit side of an open position.
- ENTRY: any other order that is not reduce-only: cancelled.
- OTHER_REDUCE_ONLY: any other reduce-only order: kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from core.errors import TraderError
from core.orders import Order, OrderSide, OrderStatus, OrderType, PositionReport, PositionSide
from schemas.config import SafetyConfig

StopSource = Callable[[str], float | None] | Mapping[str, float]


class OrderRole(StrEnum):
    PROTECTIVE_STOP = "protective_stop"
    OTHER_STOP = "other_stop"
    TAKE_PROFIT = "take_profit"
    ENTRY = "entry"
    OTHER_REDUCE_ONLY = "other_reduce_only"


class StepKind(StrEnum):
    PLACE_STOP = "PLACE_STOP"
    CANCEL_ORDER = "CANCEL_ORDER"
    FLATTEN = "FLATTEN"


class UnprotectedReason(StrEnum):
    NO_STOP_PRICE = "no stop price known for this position"
    INVALID_STOP_PRICE = "stop price is not a positive finite number"
    STOP_CROSSED = "stop price is already through the mark price"


class UnsafeKillSwitchPlanError(TraderError):
    """A plan would cancel a stop of an open position before placing its replacement."""


@dataclass(frozen=True, slots=True)
class PlaceStop:
    """Place a reduce-only stop-market order for `size` contracts of an open position."""

    symbol: str
    side: OrderSide  # the position's exit side
    size: float
    trigger_price: float
    kind: StepKind = StepKind.PLACE_STOP
    reduce_only: bool = True  # a protective stop must never open a position


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel one open order; `role` says why it may go."""

    venue_order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    role: OrderRole
    kind: StepKind = StepKind.CANCEL_ORDER


@dataclass(frozen=True, slots=True)
class Flatten:
    """Close a position with a reduce-only market order. Every field is set."""

    symbol: str
    side: OrderSide  # the position's exit side: a flatten always knows its side here
    size: float
    kind: StepKind = StepKind.FLATTEN


Step = PlaceStop | CancelOrder | Flatten


@dataclass(frozen=True, slots=True)
class Unprotected:
    """A position (or part of one) the plan could not protect: page the operator."""

    symbol: str
    uncovered_size: float
    reason: UnprotectedReason


@dataclass(frozen=True, slots=True)
class KillSwitchPlan:
    steps: tuple[Step, ...]
    kept: tuple[tuple[Order, OrderRole], ...]
    unprotected: tuple[Unprotected, ...]

    def lines(self) -> list[str]:
        """One line per step, kept order and unprotected position, in plan order."""
        out = [_step_line(s) for s in self.steps]
        out += [f"KEEP {o.symbol} {o.type} {o.venue_order_id} ({role})" for o, role in self.kept]
        out += [f"UNPROTECTED {u.symbol} {u.uncovered_size}: {u.reason}" for u in self.unprotected]
        return out


def classify_order(order: Order, positions: Sequence[PositionReport]) -> OrderRole:
    """The role of `order` given the open positions (see the module docstring)."""
    protects = (order.symbol, order.side) in _exit_keys(positions)
    if order.type is OrderType.STOP and (protects or order.reduce_only):
        return OrderRole.PROTECTIVE_STOP if protects else OrderRole.OTHER_STOP
    is_tp_type = order.type is OrderType.TAKE_PROFIT or (
        order.type is OrderType.LIMIT and order.reduce_only
    )
    if protects and is_tp_type:
        return OrderRole.TAKE_PROFIT
    return OrderRole.OTHER_REDUCE_ONLY if order.reduce_only else OrderRole.ENTRY


def plan_kill_switch(
    positions: list[PositionReport],
    open_orders: list[Order],
    safety: SafetyConfig,
    stop_for: StopSource,
) -> KillSwitchPlan:
    """The ordered kill-switch plan: PLACE missing stops, cancel entries, then TPs
    (only if `safety.kill_switch_cancel_take_profits`), then flatten (only if
    `safety.kill_switch_flatten`).

    Never cancels a stop of an open position. A position whose missing stop has no
    usable price is reported in `unprotected`, not silently skipped. Orders that
    are not OPEN or have nothing left to fill are ignored.
    """
    live = [p for p in positions if p.size > 0]
    working = [o for o in open_orders if o.status is OrderStatus.OPEN and _remaining(o) > 0]
    roles = [(o, classify_order(o, live)) for o in working]
    places, unprotected = _protect(live, roles, stop_for)
    cancel_roles = {OrderRole.ENTRY}
    if safety.kill_switch_cancel_take_profits:
        cancel_roles.add(OrderRole.TAKE_PROFIT)
    # Entries before TPs: an entry fill adds exposure, a TP fill only removes it.
    cancels = [_cancel(o, r) for o, r in roles if r is OrderRole.ENTRY]
    cancels += [_cancel(o, r) for o, r in roles if r is OrderRole.TAKE_PROFIT and r in cancel_roles]
    flattens = [_flatten(p) for p in live] if safety.kill_switch_flatten else []
    plan = KillSwitchPlan(
        steps=(*places, *cancels, *flattens),
        kept=tuple((o, r) for o, r in roles if r not in cancel_roles),
        unprotected=tuple(unprotected),
    )
    verify_plan(plan, live)
    return plan


def verify_plan(plan: KillSwitchPlan, positions: Sequence[PositionReport]) -> None:
    """Refuse (UnsafeKillSwitchPlanError) a plan that cancels a stop of an open position
    before a PLACE_STOP for the same position appears earlier in the plan."""
    exits = _exit_keys(positions)
    replaced: set[tuple[str, OrderSide]] = set()
    for step in plan.steps:
        if isinstance(step, PlaceStop):
            replaced.add((step.symbol, step.side))
        elif isinstance(step, CancelOrder) and step.order_type is OrderType.STOP:
            key = (step.symbol, step.side)
            if key in exits and key not in replaced:
                raise UnsafeKillSwitchPlanError(
                    f"plan cancels stop {step.venue_order_id} of open position {step.symbol} "
                    "before placing its replacement"
                )


def _protect(
    positions: Iterable[PositionReport],
    roles: Sequence[tuple[Order, OrderRole]],
    stop_for: StopSource,
) -> tuple[list[PlaceStop], list[Unprotected]]:
    places: list[PlaceStop] = []
    unprotected: list[Unprotected] = []
    for position in positions:
        exit_side = position.side.exit_order_side
        covered = sum(
            (
                _remaining(o)
                for o, r in roles
                if r is OrderRole.PROTECTIVE_STOP
                and (o.symbol, o.side) == (position.symbol, exit_side)
            ),
            Decimal(0),
        )
        uncovered = _dec(position.size) - covered
        if uncovered <= 0:
            continue
        price = _lookup(stop_for, position.symbol)
        problem = _stop_problem(position, price)
        if problem is not None or price is None:
            unprotected.append(
                Unprotected(
                    position.symbol, float(uncovered), problem or UnprotectedReason.NO_STOP_PRICE
                )
            )
            continue
        places.append(PlaceStop(position.symbol, exit_side, float(uncovered), float(price)))
    return places, unprotected


def _stop_problem(position: PositionReport, price: float | None) -> UnprotectedReason | None:
    if price is None:
        return UnprotectedReason.NO_STOP_PRICE
    if not math.isfinite(price) or price <= 0:
        return UnprotectedReason.INVALID_STOP_PRICE
    mark = position.mark_price
    if mark is None:
        return None  # nothing to compare with; the venue rejects a crossed stop anyway
    crossed = price >= mark if position.side is PositionSide.LONG else price <= mark
    return UnprotectedReason.STOP_CROSSED if crossed else None


def _lookup(stop_for: StopSource, symbol: str) -> float | None:
    if isinstance(stop_for, Mapping):
        return stop_for.get(symbol)
    return stop_for(symbol)


def _exit_keys(positions: Iterable[PositionReport]) -> set[tuple[str, OrderSide]]:
    return {(p.symbol, p.side.exit_order_side) for p in positions if p.size > 0}


def _remaining(order: Order) -> Decimal:
    # Decimal of the printed sizes: 0.3 - 0.1 must leave 0.2 for the lot grid, not 0.19999.
    return _dec(order.size) - _dec(order.filled)


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _cancel(order: Order, role: OrderRole) -> CancelOrder:
    return CancelOrder(order.venue_order_id, order.symbol, order.side, order.type, role)


def _flatten(position: PositionReport) -> Flatten:
    return Flatten(position.symbol, position.side.exit_order_side, position.size)


def _step_line(step: Step) -> str:
    if isinstance(step, PlaceStop):
        return f"{step.kind} {step.symbol} {step.side} {step.size} @ {step.trigger_price}"
    if isinstance(step, CancelOrder):
        return f"{step.kind} {step.symbol} {step.order_type} {step.venue_order_id} ({step.role})"
    return f"{step.kind} {step.symbol} {step.side} {step.size}"
