"""Run the bot's money stages cycle after cycle against the Kraken simulator, and check that it
never loses control of a position.

`Account.cycle()` runs what one trading cycle runs after the signal stage, in the flow's
order and with the flow's retry rule for the execute stage: execute (new intents, fills,
protection), reconcile, the invariant monitor (persisted system state) and, on HALT, the
kill switch. `control_violations` then checks the exchange as the simulator's own engine
sees it against the store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from core.cycle import CycleContext
from core.errors import VenueRetryableError
from core.market import MarketInfo
from core.orders import OrderType
from core.system_state import SystemState
from schemas.config import AppConfig
from store import execution as ex
from store.db import open_store
from tasks.account import read_account
from tasks.execution import execute, reconcile_stage, run_kill_switch
from tasks.safety import evaluate
from venues.kraken_orders import KrakenOrderVenue
from venues.kraken_sim import RunningSim


@dataclass
class CycleOutcome:
    cycle_id: int
    state: SystemState | None
    error: str | None = None


@dataclass
class Account:
    """The bot's store and order venue, and the cycle counter; one `cycle()` per bar."""

    db: Path
    sim: RunningSim
    venue: KrakenOrderVenue
    markets: tuple[MarketInfo, ...]
    config: AppConfig = field(default_factory=AppConfig)
    cycle_id: int = 1
    outcomes: list[CycleOutcome] = field(default_factory=list)

    def markets_frame(self) -> pl.DataFrame:
        """What the stages read of the Markets frame, with this cycle's last prices."""
        engine = self.sim.engine
        return pl.DataFrame(
            {
                "symbol": [m.symbol for m in self.markets],
                "tick_size": [m.tick_size for m in self.markets],
                "lot_size": [m.lot_size for m in self.markets],
                "contract_size": [m.contract_size for m in self.markets],
                "max_leverage": [m.max_leverage for m in self.markets],
                "last": [engine.mark(m.symbol) for m in self.markets],
            },
            schema_overrides={"last": pl.Float64},
        )

    def context(self) -> CycleContext:
        return CycleContext(self.cycle_id, "kraken", self.sim.now(), self.db, datetime.now(UTC))

    def cycle(self, intents: pl.DataFrame | None = None, *, startup: bool = False) -> CycleOutcome:
        """One cycle's money stages; an exception is recorded as the cycle's error."""
        ctx = self.context()
        markets = self.markets_frame()
        intents = intents if intents is not None else pl.DataFrame()
        cfg = self.config
        outcome = CycleOutcome(self.cycle_id, None)
        try:
            for attempt in range(3):  # the execute task's retries=2, on unknown outcomes only
                try:
                    execute(ctx, self.venue, intents, markets, cfg.execution, cfg.risk)
                    break
                except VenueRetryableError:
                    if attempt == 2:
                        raise
            reconcile_stage(ctx, self.venue, markets, cfg.execution, startup=startup)
            account = read_account(ctx, self.venue, markets)
            safety = evaluate(ctx, account.snapshot, cfg.safety)
            outcome.state = safety.record.state
            if safety.halted:
                run_kill_switch(ctx, self.venue, cfg)
        except Exception as exc:  # the cycle failed: recorded, the next one runs
            outcome.error = f"{type(exc).__name__}: {exc}"
        self.outcomes.append(outcome)
        self.cycle_id += 1
        return outcome


@dataclass
class ControlWatch:
    """What the last cycle end saw, so a condition lasting more than one cycle is caught."""

    flat_market_orders: set[str] = field(default_factory=set)
    unprotected: set[str] = field(default_factory=set)
    missing_records: set[str] = field(default_factory=set)


def control_violations(
    account: Account, watch: ControlWatch, outcome: CycleOutcome, *, late_fills: bool = False
) -> list[str]:
    """Every way the bot lost control at this cycle end; [] when it kept it. Updates watch."""
    problems = [f"cycle {outcome.cycle_id}: {p}" for p in _violations(account, watch, outcome,
                                                                      late_fills=late_fills)]
    return problems


def _violations(
    account: Account, watch: ControlWatch, outcome: CycleOutcome, *, late_fills: bool
) -> list[str]:
    problems: list[str] = []
    if outcome.error is not None:
        problems.append(f"cycle {outcome.cycle_id} failed: {outcome.error}")
    problems += _stray_and_bare(account, watch, outcome)
    problems += _records_match(account, watch)
    problems += _fills_once(account, late_fills=late_fills)
    # no client order id used twice, ever
    ids = Counter(o.client_id for o in account.sim.engine.orders() if o.client_id)
    problems += [f"client id {c} used by {n} orders" for c, n in ids.items() if n > 1]
    return problems


def _stray_and_bare(account: Account, watch: ControlWatch, outcome: CycleOutcome) -> list[str]:
    """Nothing works on a flat market, and no position lacks a stop, for a second cycle
    (a second unprotected cycle end is allowed only with the system DEGRADED or HALTED)."""
    engine = account.sim.engine
    lots = {m.symbol: m.lot_size for m in account.markets}
    held = {p.symbol: p for p in engine.positions()}
    open_orders = engine.open_orders()
    problems = []
    flat = {o.venue_order_id for o in open_orders if o.symbol not in held}
    described = {o.venue_order_id: f"{o.type} {o.client_id} {o.symbol}" for o in open_orders}
    problems += [f"order {o} ({described[o]}) works on a flat market for a second cycle"
                 for o in flat & watch.flat_market_orders]
    watch.flat_market_orders = flat
    bare = set()
    for symbol, p in held.items():
        covered = sum(
            o.size - o.filled
            for o in open_orders
            if o.symbol == symbol
            and o.type is OrderType.STOP
            and o.side is p.side.exit_order_side
        )
        if covered < p.size - lots[symbol] / 2:
            bare.add(symbol)
    if outcome.state not in (SystemState.DEGRADED, SystemState.HALTED):
        problems += [f"{s} unprotected for a second cycle while {outcome.state}"
                     for s in bare & watch.unprotected]
    watch.unprotected = bare
    return problems


def _records_match(account: Account, watch: ControlWatch) -> list[str]:
    """The record's size and side are the venue's; an ORPHAN record may lag one cycle."""
    lots = {m.symbol: m.lot_size for m in account.markets}
    held = {p.symbol: p for p in account.sim.engine.positions()}
    with open_store(account.db, read_only=True) as con:
        records = [p for p in ex.live_positions(con) if p.is_open]
    problems = []
    for symbol, p in held.items():
        mine = [r for r in records if r.symbol == symbol]
        if len(mine) != 1:
            problems.append(f"{symbol}: venue holds {p.size}, {len(mine)} open records")
        elif abs(mine[0].size - p.size) >= lots[symbol] / 2 or mine[0].side is not p.side:
            problems.append(
                f"{symbol}: record {mine[0].side} {mine[0].size} != venue {p.side} {p.size}"
            )
    missing = {r.position_id for r in records if r.symbol not in held}
    problems += [f"record {pid} open for a second cycle with nothing at the venue"
                 for pid in missing & watch.missing_records]
    watch.missing_records = missing
    return problems


def _fills_once(account: Account, *, late_fills: bool) -> list[str]:
    """Each fill stored once, and (unless reports lag) every venue fill stored."""
    with open_store(account.db, read_only=True) as con:
        stored = Counter(r[0] for r in con.execute("SELECT fill_id FROM fills").fetchall())
    problems = [f"fill {f} stored {n} times" for f, n in stored.items() if n > 1]
    if not late_fills:
        unseen = {f.fill_id for f in account.sim.engine.fills()} - set(stored)
        if unseen:
            problems.append(f"{len(unseen)} venue fill(s) never stored: {sorted(unseen)[:3]}")
    return problems
