"""Auction allocator (SPEC §4): score, rank, select within budget, a reason for every loser."""

from __future__ import annotations

import json

import polars as pl
import pytest

from core.auction import auction_table, build_candidates, run_auction
from core.risk import SystemState, positions_frame
from schemas.allocation import Allocations, Candidates, Decision, Reason
from schemas.config import SafetyConfig
from schemas.risk import RiskConfig
from tests.unit.risk.conftest import (
    account,
    auction_and_risk,
    market,
    markets_frame,
    position,
    signal,
    signals_frame,
)

BTC, ETH, SOL, DOGE, BNB = (f"{c}/USD:USD" for c in ("BTC", "ETH", "SOL", "DOGE", "BNB"))
MARKETS = markets_frame(
    [market(BTC), market(ETH), market(SOL, tier="B"), market(DOGE, tier="C"), market(BNB)]
)


def decisions(result_allocations: pl.DataFrame) -> dict[str, tuple[str, str | None]]:
    rows = result_allocations.filter(pl.col("kind") == "new").iter_rows(named=True)
    return {r["symbol"]: (r["decision"], r["reason"]) for r in rows}


@pytest.mark.parametrize("signals", [None, signals_frame([signal(BTC)]).clear()])
def test_single_open_position_without_signals_is_reaffirmed_without_churn(
    signals: pl.DataFrame | None,
) -> None:
    result, intents = auction_and_risk(signals, [position(BTC)], MARKETS, account(margin_used=16))
    assert result.winners_selected == 1
    assert result.candidates == 1
    assert result.allocations["decision"].to_list() == [Decision.REAFFIRMED]
    assert intents.height == 0  # reaffirming places no order


def test_score_is_signal_score_times_tier_and_regime_weights() -> None:
    risk = RiskConfig()
    sigs = signals_frame([signal(SOL, score=0.5, regime="wide_range"), signal(BTC, score=0.9)])
    alloc = run_auction(sigs, [], MARKETS, account(), SafetyConfig(), risk).allocations
    scores = dict(zip(alloc["symbol"], alloc["score"], strict=True))
    assert scores[SOL] == pytest.approx(0.5 * risk.tier_weights["B"] * risk.other_regime_weight)
    assert scores[BTC] == pytest.approx(
        0.9 * risk.tier_weights["A"] * risk.regime_weights["tight_smc"]
    )


def test_held_position_ranks_first_with_the_incumbent_score() -> None:
    sigs = signals_frame([signal(ETH, score=1.0)])
    alloc = run_auction(sigs, [position(BTC)], MARKETS, account(), SafetyConfig(), RiskConfig())
    assert alloc.allocations["symbol"].to_list() == [BTC, ETH]
    assert alloc.allocations["score"][0] == RiskConfig().incumbent_score


def test_signal_on_a_held_symbol_loses_already_held() -> None:
    result = run_auction(
        signals_frame([signal(BTC, "short", score=1.0)]),
        [position(BTC)],
        MARKETS,
        account(margin_used=16),
        SafetyConfig(),
        RiskConfig(),
    )
    assert decisions(result.allocations) == {BTC: (Decision.LOST, Reason.ALREADY_HELD)}
    assert result.winners_selected == 1


def test_second_signal_on_a_symbol_loses_lower_score_same_symbol() -> None:
    sigs = signals_frame([signal(ETH, score=0.6), signal(ETH, "short", score=0.7)])
    alloc = run_auction(sigs, [], MARKETS, account(), SafetyConfig(), RiskConfig()).allocations
    assert alloc.select("side", "decision", "reason").rows() == [
        ("short", Decision.SELECTED, None),
        ("long", Decision.LOST, Reason.LOWER_SCORE_SAME_SYMBOL),
    ]


def test_tie_break_is_tier_then_symbol() -> None:
    risk = RiskConfig(tier_weights={"A": 1.0, "B": 1.0, "C": 1.0})
    sigs = signals_frame([signal(SOL), signal(ETH), signal(BTC)])
    alloc = run_auction(sigs, [], MARKETS, account(), SafetyConfig(), risk).allocations
    assert alloc["symbol"].to_list() == [BTC, ETH, SOL]  # equal scores: A before B, then name


def test_concurrency_counts_open_positions() -> None:
    safety = SafetyConfig()
    held = [
        position(f"H{i}/USD:USD", margin=1.0) for i in range(safety.max_concurrent_positions - 1)
    ]
    sigs = signals_frame([signal(BTC, score=0.9), signal(ETH, score=0.8)])
    result = run_auction(sigs, held, MARKETS, account(margin_used=9), safety, RiskConfig())
    # max_concurrent_positions open is allowed (the monitor HALTs above it): one slot left
    assert decisions(result.allocations) == {
        BTC: (Decision.SELECTED, None),
        ETH: (Decision.LOST, Reason.MAX_CONCURRENT),
    }


def test_budget_counts_margin_in_use_and_partial_winner_gets_override() -> None:
    # budget 900; 800 in use leaves 100 of margin: one full winner (83.3), then 16.7 x 3x
    acct = account(margin_used=800.0)
    sigs = signals_frame([signal(BTC, score=0.9), signal(ETH, score=0.8), signal(BNB, score=0.7)])
    result = run_auction(sigs, [], MARKETS, acct, SafetyConfig(), RiskConfig())
    alloc = result.allocations
    assert alloc["decision"].to_list() == [Decision.SELECTED, Decision.SELECTED, Decision.LOST]
    assert alloc["reason"][2] == Reason.BUDGET
    assert alloc["notional_override"][0] is None
    assert alloc["notional_override"][1] == pytest.approx((900 - 800 - 250 / 3) * 3)
    assert result.margin_planned == pytest.approx(result.budget)


@pytest.mark.parametrize(
    ("acct", "reason"),
    [
        (account(state=SystemState.DEGRADED), Reason.SYSTEM_DEGRADED),
        (account(state=SystemState.HALTED), Reason.SYSTEM_HALTED),
        (account(equity=900.0, high_water=1000.0), Reason.DRAWDOWN),
        (account(equity=float("nan")), Reason.ACCOUNT_INVALID),
        (account(high_water=float("inf")), Reason.ACCOUNT_INVALID),
        (account(margin_used=-1.0), Reason.ACCOUNT_INVALID),
    ],
)
def test_no_new_entries_when_the_account_says_no_but_held_is_reaffirmed(acct, reason) -> None:
    result, intents = auction_and_risk(signals_frame([signal(ETH)]), [position(BTC)], MARKETS, acct)
    assert decisions(result.allocations) == {ETH: (Decision.LOST, reason)}
    assert result.winners_selected == 1
    assert intents.select("status", "reason").rows() == [("refused", reason)]


def test_candidates_are_signals_plus_held_positions_and_validate() -> None:
    sigs = signals_frame([signal(BTC), signal(ETH, "short")])
    held = positions_frame([position(SOL)])
    candidates = Candidates.validate(build_candidates(sigs, held, MARKETS, RiskConfig()))
    assert sorted(zip(candidates["kind"], candidates["symbol"], strict=True)) == [
        ("held", SOL),
        ("new", BTC),
        ("new", ETH),
    ]


def test_allocations_validate_and_every_loser_has_a_reason() -> None:
    sigs = signals_frame([signal(BTC), signal(BTC, "short"), signal("XRP/USD:USD")])
    alloc = run_auction(sigs, [], MARKETS, account(), SafetyConfig(), RiskConfig()).allocations
    Allocations.validate(alloc)
    lost = alloc.filter(pl.col("decision") == Decision.LOST)
    assert lost["reason"].to_list() == [Reason.LOWER_SCORE_SAME_SYMBOL, Reason.MARKET_MISSING]


def test_auction_table_is_json_ready_one_row_per_candidate() -> None:
    sigs = signals_frame([signal(BTC), signal(ETH, entry=float("nan"))], validate=False)
    result = run_auction(sigs, [position(SOL)], MARKETS, account(), SafetyConfig(), RiskConfig())
    table = auction_table(result)
    assert len(table) == result.candidates == 3
    assert table[0]["decision"] == "reaffirmed"
    assert table[2]["reason"] == "BAD_PRICE"
    json.dumps(table, allow_nan=False)
