"""What every stage of one cycle needs to know about the cycle itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


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
