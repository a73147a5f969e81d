"""The account as the venue reports it, and the invariant monitor over it (SPEC §8).

One place computes a position's notional (size x contract size x price) and the
account's equity, margin and exposures; the auction, the invariant monitor and the
cycle summary all read them from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl

from core.cycle import CycleContext
from core.engine.state import StateRepository
from core.invariants import AccountSnapshot, InvariantReport, PositionExposure, check_invariants
from core.market_book import MarketBook
from core.orders import OrderVenue, PositionReport
from core.system_state import SystemState, SystemStateRecord
from core.system_state import next_state as next_system_state
from schemas.config import SafetyConfig

log = logging.getLogger("smc_trader.safety")


def position_notional(report: PositionReport, contract_size: float | None) -> float:
    """Notional at the mark (the entry if no mark). A market missing from the registry is
    counted at contract size 1, and said so: Kraken's linear perpetuals are 1 unit each."""
    if contract_size is None:
        log.warning(
            "CONTRACT_SIZE_UNKNOWN %s: not in this cycle's markets; exposure counted at "
            "contract size 1",
            report.symbol,
        )
        contract_size = 1.0
    return report.size * contract_size * (report.mark_price or report.entry_price)


def account_snapshot(
    venue: OrderVenue,
    markets: pl.DataFrame | MarketBook,
    ts: datetime,
    unprotected_cycles: int = 0,
) -> tuple[AccountSnapshot, list[PositionReport]]:
    """Equity, margin and exposures as the venue reports them (high-water filled in later),
    and the positions they were read from."""
    balance = venue.balance()
    sizes = MarketBook.of(markets).contract_sizes
    held = [p for p in venue.positions() if p.size > 0]
    exposures = tuple(
        PositionExposure(p.symbol, position_notional(p, sizes.get(p.symbol))) for p in held
    )
    snapshot = AccountSnapshot(
        balance.equity, balance.margin_used, 0.0, exposures, ts, unprotected_cycles
    )
    return snapshot, held


@dataclass(frozen=True)
class AccountView:
    snapshot: AccountSnapshot
    positions: list[PositionReport]
    high_water: float
    state: SystemStateRecord


def unprotected_cycles(state: StateRepository) -> int:
    """The longest run of cycle ends any open record has gone without a working stop."""
    return max((p.unprotected_cycles for p in state.live_positions() if p.is_open), default=0)


def read_account(
    ctx: CycleContext,
    venue: OrderVenue,
    state: StateRepository,
    markets: pl.DataFrame | MarketBook,
) -> AccountView:
    snapshot, held = account_snapshot(venue, markets, ctx.decision_time, unprotected_cycles(state))
    mark = state.high_water()
    record = state.current_record(ctx.decision_time)
    return AccountView(snapshot, held, max(mark or 0.0, snapshot.equity), record)


def last_known_account(ctx: CycleContext, state: StateRepository) -> AccountSnapshot | None:
    """The account as the last cycle measured it, with this cycle's count of cycles without
    a stop: what the invariant monitor checks when the venue could not be read."""
    account = state.last_account()
    if account is None:
        return None
    return replace(account, ts=ctx.decision_time, unprotected_cycles=unprotected_cycles(state))


@dataclass(frozen=True)
class SafetyOutcome:
    record: SystemStateRecord
    report: InvariantReport
    changed: bool

    @property
    def halted(self) -> bool:
        return self.record.state is SystemState.HALTED


def evaluate(
    ctx: CycleContext,
    account: AccountSnapshot | None,
    state: StateRepository,
    safety: SafetyConfig,
    *,
    announce_halt: bool = True,
) -> SafetyOutcome:
    """Check the account, move the state machine, persist both. HALTED never clears here.
    With no account ever read, the state holds as it is (and that is logged). A halt that
    holds is announced (`Kill switch active`) once a cycle unless `announce_halt` is off."""
    previous = state.current_record(ctx.decision_time)
    if account is None:
        log.error("invariant monitor: no account known yet (the venue could not be read)")
        return SafetyOutcome(previous, InvariantReport(ctx.decision_time, (), 0.0), False)
    mark = state.high_water()
    snapshot = replace(account, equity_high_water=max(mark or 0.0, account.equity_high_water))
    report = check_invariants(snapshot, safety)
    record = next_system_state(previous, report, ctx.decision_time)
    state.record_checks(ctx.cycle_id, report, snapshot)
    if record is not previous:
        state.append_record(record, ctx.cycle_id, ctx.decision_time)
    if record.state is SystemState.HALTED and record is previous and announce_halt:
        log.error("Kill switch active: still HALTED since %s: %s", record.since, record.cause)
    return SafetyOutcome(record, report, record is not previous)
