"""Every pre-trade gate agrees with the post-trade invariant monitor (SPEC §11 rule 2)."""

from __future__ import annotations

import polars as pl

from core.invariants import (
    AccountSnapshot,
    InvariantName,
    PositionExposure,
    Verdict,
    check_invariants,
)
from core.risk import account_denial
from schemas.allocation import IntentStatus, Reason
from schemas.config import SafetyConfig
from tests.unit.risk.conftest import (
    NOW,
    account,
    auction_and_risk,
    market,
    markets_frame,
    position,
    signal,
    signals_frame,
)


def test_drawdown_gate_and_monitor_agree_where_floats_would_not() -> None:
    # (333.3 - 299.97) / 333.3 is 0.09999999999999995 in floats, exactly 0.1 in decimals
    acct = account(equity=299.97, high_water=333.3)
    safety = SafetyConfig()
    report = check_invariants(AccountSnapshot(299.97, 0.0, 333.3, (), NOW), safety)
    drawdown = next(c for c in report.checks if c.name is InvariantName.DRAWDOWN)
    assert drawdown.verdict is Verdict.DEGRADED
    assert account_denial(acct, safety) is Reason.DRAWDOWN


def test_full_auction_with_many_held_positions_leaves_the_monitor_ok() -> None:
    # 6 held positions + 8 fresh signals: budget, concurrency and clamp all bind at once
    safety = SafetyConfig()
    held = [position(f"H{i}/USD:USD", margin=60.0) for i in range(6)]
    symbols = [f"N{i}/USD:USD" for i in range(8)]
    markets = markets_frame([market(s) for s in symbols])
    sigs = signals_frame([signal(s, score=0.9 - i / 100) for i, s in enumerate(symbols)])
    acct = account(equity=1_000.0, margin_used=360.0)
    result, intents = auction_and_risk(sigs, held, markets, acct, safety)
    approved = intents.filter(pl.col("status") == IntentStatus.APPROVED)
    exposures = [PositionExposure(p.symbol, p.size * p.entry_price) for p in held] + [
        PositionExposure(r["symbol"], r["notional"]) for r in approved.iter_rows(named=True)
    ]
    after = AccountSnapshot(
        acct.equity, acct.margin_used + approved["margin"].sum(), acct.equity, exposures, NOW
    )
    report = check_invariants(after, safety)
    assert report.verdict is Verdict.OK, report.cause(report.verdict)
    assert len(exposures) == safety.max_concurrent_positions  # it did fill every slot
    assert result.winners_selected == safety.max_concurrent_positions
