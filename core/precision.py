"""Put prices and sizes on a market's grid with Decimal arithmetic (no float drift)."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal


def _step(step: float) -> Decimal:
    if step <= 0:
        raise ValueError(f"grid step must be positive, got {step}")
    return Decimal(repr(step))


def floor_to_step(value: float, step: float) -> float:
    """Largest multiple of step <= value (sizes: never round a size up)."""
    s = _step(step)
    return float((Decimal(repr(value)) / s).to_integral_value(ROUND_FLOOR) * s)


def round_to_step(value: float, step: float) -> float:
    """Nearest multiple of step (prices on the tick grid)."""
    s = _step(step)
    return float((Decimal(repr(value)) / s).to_integral_value(ROUND_HALF_EVEN) * s)


def round_away(value: float, step: float, *, up: bool) -> float:
    """Multiple of step rounded up or down (stops: round away from the entry)."""
    s = _step(step)
    mode = ROUND_CEILING if up else ROUND_FLOOR
    return float((Decimal(repr(value)) / s).to_integral_value(mode) * s)


def is_multiple(value: float, step: float) -> bool:
    s = _step(step)
    q = Decimal(repr(value)) / s
    return q == q.to_integral_value(ROUND_DOWN)
