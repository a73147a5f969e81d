"""An engine stage (gateway + fill book) on a DuckDB file, for tests that drive it directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from core.cycle import Clock, CycleContext
from core.engine.execution import Stage
from core.orders import OrderVenue
from schemas.execution import ExecutionConfig
from store.state import store_state


@contextmanager
def stage_on(
    venue: OrderVenue, db: Path, cycle_id: int, clock: Clock, cfg: ExecutionConfig | None = None
) -> Iterator[Stage]:
    ctx = CycleContext(cycle_id, "test", clock.now(), db, datetime.now(UTC))
    with store_state(db) as state:
        yield Stage.open(venue, state, ctx, clock, cfg or ExecutionConfig())
