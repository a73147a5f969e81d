"""What every stage of one cycle needs to know about the cycle itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol


def as_utc(when: datetime) -> datetime:
    """`when` in UTC; a time without a zone is taken as UTC (how every date we are given
    on a command line, in a sweep file or as a flow parameter is meant)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_utc(text: str) -> datetime:
    """An ISO date or date-time as UTC (`as_utc`); ValueError when it is neither."""
    return as_utc(datetime.fromisoformat(text))


class Clock(Protocol):
    """Where decision code gets the time. Never `datetime.now()` in decision code."""

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class CycleContext:
    cycle_id: int
    venue: str
    decision_time: datetime  # the venue clock's time: every decision is "as of" this
    db_path: Path
    started_at: datetime  # wall time, for durations only, never for decisions
