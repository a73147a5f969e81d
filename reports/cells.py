"""How one figure is written in a report cell: None is always "n/a", never 0 or NaN."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NA = "n/a"


def usd(value: float | None, *, signed: bool = False) -> str:
    """1,234.56 (or +1,234.56 when signed); n/a for None."""
    if value is None:
        return NA
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def pct(fraction: float | None, *, signed: bool = False, digits: int = 2) -> str:
    """A fraction as a percentage: 0.1234 -> 12.34%; n/a for None."""
    if fraction is None:
        return NA
    return f"{fraction:+.{digits}%}" if signed else f"{fraction:.{digits}%}"


def number(value: float | None, *, digits: int = 2, signed: bool = False) -> str:
    """A plain ratio or count with `digits` decimals; n/a for None."""
    if value is None:
        return NA
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def r_multiple(value: float | None) -> str:
    """+0.12 R; n/a for None."""
    return NA if value is None else f"{value:+.2f} R"


def span(value: timedelta | None) -> str:
    """A duration as days and hours:minutes, 3d 04:30 (0d 04:30 under a day); n/a for None."""
    if value is None:
        return NA
    minutes = round(value.total_seconds() / 60)
    sign = "-" if minutes < 0 else ""
    days, rest = divmod(abs(minutes), 24 * 60)
    return f"{sign}{days}d {rest // 60:02d}:{rest % 60:02d}"


def moment(value: datetime | None) -> str:
    """A UTC time to the minute, 2025-03-01 04:00; n/a for None."""
    return NA if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M}"
