"""The backtest loop: the live cycle's own stages, hour by hour on a simulated clock.

At every decision hour the loop runs what a live cycle runs after its signal stage, in
the same order and with the same functions: the account, the auction and risk manager
(core/engine/allocation.py), execution, reconciliation, the invariant monitor and, on
HALT, the kill switch (core/engine/execution.py, core/engine/account.py), against a
simulated venue and in-memory state.

It skips an hour only when nothing can happen in it: no signal, no position, no working
order and nothing unresolved in the log. Then a live cycle would change nothing either
(the account and every invariant are as they were an hour before), so skipping never
changes a decision; the hour's equity is still marked. Through a run of such hours the
venue's clock is not even moved: with nothing held or working no bar can fill and no
funding is paid, and the next hour that runs catches the venue up in one step (each idle
market keeps only its last bar, as it would after stepping hour by hour).

Rows, not frames: each hour's registry is a MarketBook of its rows and its signals are
rows, and the auction and risk manager return rows (core/engine/allocation.py); a live
cycle builds its frames from the same rows. The first hour that runs validates the frames
its stages build (and the registry its Markets frame); the others run inside
schemas.boundaries.frames_trusted(), and the backtest validates what enters (signals, gate
trace) and leaves (intents) once (tasks/backtest.py). Hours with a position but no signal
still run in full (skipping them would need a proof that no order can trigger and no
safety threshold be crossed in the span: not done).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from core.cycle import Clock, CycleContext
from core.engine.account import evaluate, read_account
from core.engine.allocation import allocate, open_positions
from core.engine.execution import execute_stage, kill_switch, reconcile_stage
from core.engine.state import MemoryState
from core.market_book import MarketBook
from core.orders import OrderVenue
from core.risk import AccountState
from core.system_state import SystemState
from schemas.boundaries import frames_trusted
from schemas.config import AppConfig

log = logging.getLogger("smc_trader.backtest")
NO_FILE = Path("backtest-in-memory")  # the cycle context's store path; nothing is opened


class SimulatedVenue(OrderVenue, Protocol):
    """A paper order venue whose clock the loop moves."""

    def advance_to(self, ts: datetime) -> None:
        """Move the clock to `ts` and fill whatever the bars closed by then reach."""
        ...

    def busy(self) -> bool:
        """True while any position is held or any order works."""
        ...


@dataclass(frozen=True)
class HourInput:
    """What one decision hour brings: its cycle number, whether the scan found any signal,
    and (built only when the hour runs) the registry's rows and the signals of tradeable
    markets (Signals rows, as `core.auction.signal_rows` gives them)."""

    ts: datetime
    cycle_id: int
    any_signal: bool
    # (markets, signals): a MarketBook or Markets frame, Signals rows or frame
    inputs: Callable[[], tuple[MarketBook | pl.DataFrame, list[dict[str, Any]] | pl.DataFrame]]


@dataclass(frozen=True, slots=True)
class HourMark:
    ts: datetime
    cycle_id: int
    equity: float
    cash: float
    margin_used: float
    open_positions: int
    system_state: str
    processed: bool


@dataclass
class LoopResult:
    marks: list[HourMark]
    intents: list[dict[str, Any]]  # OrderIntents rows of every hour, in order
    processed_hours: int


def run_hours(
    hours: Iterable[HourInput],
    venue: SimulatedVenue,
    state: MemoryState,
    clock: Clock,
    config: AppConfig,
    *,
    cash: Callable[[], float],
    progress: Callable[[int], None] | None = None,
) -> LoopResult:
    """Run every hour in order; returns the hourly marks and every hour's intents."""
    marks: list[HourMark] = []
    intents: list[dict[str, Any]] = []
    processed = 0
    quiet = False  # after the last hour: nothing held, nothing working, nothing unresolved
    lag: datetime | None = None  # the last hour the venue's clock was not moved to
    for n, hour in enumerate(hours, start=1):
        if quiet and not hour.any_signal:
            # Nothing can fill or pay, so the venue is left where it is (equity = cash) and
            # catches up at the next hour that runs: each idle market then takes only its
            # last bar, exactly what it is left with after hour-by-hour steps (FeedDriver).
            lag = hour.ts
            marks.append(_idle_mark(hour, venue, state, cash))
            if progress is not None and n % 500 == 0:
                progress(n)
            continue
        lag = None
        venue.advance_to(hour.ts)
        idle = not hour.any_signal and not venue.busy() and not state.unresolved_intents()
        if idle:
            marks.append(_idle_mark(hour, venue, state, cash))
        else:
            processed += 1
            if processed == 1:
                # the first decision hour validates every frame it builds (a schema check
                # of this path); the others trust them (schemas/boundaries.py)
                mark, allocated = _one_hour(hour, venue, state, clock, config, cash, True)
            else:
                with frames_trusted():
                    mark, allocated = _one_hour(hour, venue, state, clock, config, cash, False)
            marks.append(mark)
            intents += allocated
        quiet = not venue.busy() and not state.unresolved_intents()
        if progress is not None and n % 500 == 0:
            progress(n)
    if lag is not None:
        venue.advance_to(lag)  # the venue ends at the last hour, as if stepped through
    return LoopResult(marks, intents, processed)


def _idle_mark(
    hour: HourInput, venue: SimulatedVenue, state: MemoryState, cash: Callable[[], float]
) -> HourMark:
    balance = venue.balance()
    record = state.current_record(hour.ts)
    return HourMark(
        hour.ts, hour.cycle_id, balance.equity, cash(), balance.margin_used, 0, str(record.state),
        False,
    )


def _one_hour(
    hour: HourInput,
    venue: SimulatedVenue,
    state: MemoryState,
    clock: Clock,
    config: AppConfig,
    cash: Callable[[], float],
    startup: bool,
) -> tuple[HourMark, list[dict[str, Any]]]:
    """One live cycle's stages after the signal stage, in the flow's order."""
    ctx = CycleContext(hour.cycle_id, "backtest", hour.ts, NO_FILE, hour.ts)
    markets, signals = hour.inputs()
    before = read_account(ctx, venue, state, markets)
    intents: list[dict[str, Any]] = []
    if len(signals):
        held = open_positions(before.positions, markets, config.risk.default_leverage)
        account = AccountState(
            before.snapshot.equity,
            before.snapshot.margin_used,
            before.high_water,
            SystemState(before.state.state),
        )
        allocation = allocate(
            signals, markets, held, account, config, cycle_id=hour.cycle_id, ts=hour.ts
        )
        intents = allocation.intent_rows
    execute_stage(ctx, venue, state, clock, intents, markets, config.execution, config.risk)
    reconciled = reconcile_stage(
        ctx, venue, state, clock, markets, config.execution, startup=startup
    )
    after = read_account(ctx, venue, state, markets)
    safety = evaluate(ctx, after.snapshot, state, config.safety)
    if safety.halted:
        kill_switch(ctx, venue, state, clock, config)
    snapshot = after.snapshot
    mark = HourMark(
        hour.ts,
        hour.cycle_id,
        snapshot.equity,
        cash(),
        snapshot.margin_used,
        reconciled.open_positions,
        str(safety.record.state),
        True,
    )
    return mark, intents


def marks_frame(marks: list[HourMark]) -> pl.DataFrame:
    """One row per hour: ts, cycle_id, equity, cash, margin_used, open_positions, state."""
    return pl.DataFrame(
        {
            "ts": [m.ts for m in marks],
            "cycle_id": [m.cycle_id for m in marks],
            "equity": [m.equity for m in marks],
            "cash": [m.cash for m in marks],
            "margin_used": [m.margin_used for m in marks],
            "open_positions": [m.open_positions for m in marks],
            "system_state": [m.system_state for m in marks],
            "processed": [m.processed for m in marks],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "cycle_id": pl.Int64},
    )
