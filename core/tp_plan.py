"""Take-profit plan (SPEC §6): each level validated on its own.

A level the price has already reached, or one too close to the price, is
skipped with a warning; the other levels are kept, on the tick grid. There is
no plan only when every level is invalid. Used by the risk manager for new
intents (reference = entry) and by the TP backfill (reference = mark price).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.orders import PositionSide
from core.precision import round_to_step
from schemas.risk import RiskConfig

log = logging.getLogger("smc_trader.tp_plan")

BPS = 10_000.0


class TpSkip(StrEnum):
    INVALID = "INVALID"  # missing, NaN, infinite or not positive
    NO_REFERENCE = "NO_REFERENCE"  # no usable current price or tick size to judge against
    PASSED = "PASSED"  # the price already reached it
    TOO_CLOSE = "TOO_CLOSE"  # on the grid, closer to the price than the minimum distance
    DUPLICATE = "DUPLICATE"  # rounds to the same tick as an earlier kept level


@dataclass(frozen=True, slots=True)
class TpLevel:
    index: int  # 1 for TP1
    price: float  # on the tick grid


@dataclass(frozen=True, slots=True)
class SkippedTp:
    index: int
    price: float | None  # as given
    reason: TpSkip

    def code(self) -> str:
        return f"tp{self.index}:{self.reason}"


@dataclass(frozen=True, slots=True)
class TpPlan:
    side: PositionSide
    reference: float
    levels: tuple[TpLevel, ...]
    skipped: tuple[SkippedTp, ...]

    @property
    def is_empty(self) -> bool:
        """True when every level was invalid: there is no TP plan."""
        return not self.levels

    def price(self, index: int) -> float | None:
        """The kept price of TP`index`, None when that level was skipped."""
        return next((lv.price for lv in self.levels if lv.index == index), None)

    @property
    def skipped_codes(self) -> tuple[str, ...]:
        return tuple(s.code() for s in self.skipped)


def min_tp_distance(price: float, risk: RiskConfig) -> float:
    """The `too close` distance in price units at `price` (RiskConfig.tp_min_distance_bps)."""
    return abs(price) * risk.tp_min_distance_bps / BPS


def _usable(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _judge(
    side: PositionSide, reference: float, level: float | None, tick: float, min_distance: float
) -> float | TpSkip:
    """The level on the grid, or why it is skipped (duplicates are judged by the caller)."""
    if not _usable(level):
        return TpSkip.INVALID
    assert level is not None  # narrowed by _usable
    direction = 1.0 if side is PositionSide.LONG else -1.0
    if (level - reference) * direction <= 0:
        return TpSkip.PASSED
    on_grid = round_to_step(level, tick)
    if on_grid <= 0:
        return TpSkip.INVALID
    # rounding may pull a level onto the price: judge the distance on the grid
    distance = (on_grid - reference) * direction
    if distance <= 0 or distance < min_distance:
        return TpSkip.TOO_CLOSE
    return on_grid


def plan_take_profits(
    side: PositionSide | str,
    entry_or_mark: float | None,
    levels: Sequence[float | None],
    tick_size: float | None,
    min_distance: float,
) -> TpPlan:
    """Validate each TP level on its own against the current price (entry or mark).

    Returns the kept levels rounded to the tick (same index as given, TP1 = 1)
    and the skipped ones with a TpSkip reason, each logged as a warning. Refuses
    nothing by raising: an unusable price or tick skips every level as NO_REFERENCE.
    """
    side = PositionSide(side)
    if not (_usable(entry_or_mark) and _usable(tick_size)):
        skipped = tuple(SkippedTp(i, lv, TpSkip.NO_REFERENCE) for i, lv in enumerate(levels, 1))
        plan = TpPlan(side, float("nan"), (), skipped)
        _log_skips(plan)
        return plan
    assert entry_or_mark is not None and tick_size is not None  # narrowed by _usable
    kept: list[TpLevel] = []
    skips: list[SkippedTp] = []
    for index, level in enumerate(levels, 1):
        verdict = _judge(side, entry_or_mark, level, tick_size, min_distance)
        if isinstance(verdict, float) and any(k.price == verdict for k in kept):
            verdict = TpSkip.DUPLICATE
        if isinstance(verdict, TpSkip):
            skips.append(SkippedTp(index, level, verdict))
        else:
            kept.append(TpLevel(index, verdict))
    plan = TpPlan(side, entry_or_mark, tuple(kept), tuple(skips))
    _log_skips(plan)
    return plan


def _log_skips(plan: TpPlan) -> None:
    for s in plan.skipped:
        log.warning(
            "TP level skipped tp%d=%s side=%s reference=%s reason=%s",
            s.index,
            s.price,
            plan.side,
            plan.reference,
            s.reason,
        )
    if plan.is_empty:
        log.warning(
            "no TP plan: every level invalid side=%s reference=%s", plan.side, plan.reference
        )
