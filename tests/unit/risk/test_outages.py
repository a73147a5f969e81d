"""The seed's outages 1, 2 and 5 as regression tests: each fails on the old behaviour."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError

from core.errors import ConfigError
from core.precision import is_multiple
from core.risk import apply_risk
from schemas.allocation import Adjustment, IntentStatus, Reason
from schemas.config import SafetyConfig
from schemas.risk import RiskConfig
from tasks.settings import load_config
from tests.unit.risk.conftest import (
    CYCLE,
    NOW,
    account,
    as_selected,
    auction_and_risk,
    market,
    markets_frame,
    signal,
    signals_frame,
)

SYMBOLS = [f"C{i}/USD:USD" for i in range(6)]
MARKETS = markets_frame([market(s) for s in SYMBOLS])

# --- outage 1: the halt level sat below the auction budget ---------------------------------


def test_halt_level_below_auction_budget_is_refused_by_the_model() -> None:
    with pytest.raises(ValidationError, match="auction_max_margin_util"):
        SafetyConfig(max_margin_utilization_pct=0.85, auction_max_margin_util=0.90)


def test_halt_level_below_auction_budget_is_refused_at_config_load(tmp_path: Path) -> None:
    (tmp_path / "safety.yaml").write_text("max_margin_utilization_pct: 0.85\n")
    with pytest.raises(ConfigError, match="auction_max_margin_util"):
        load_config(tmp_path)


def test_full_auction_budget_leaves_margin_below_the_degraded_level() -> None:
    safety = SafetyConfig()  # the shipped thresholds
    acct = account(equity=1_000.0, margin_used=600.0)
    sigs = signals_frame([signal(s, score=0.9 - i / 100) for i, s in enumerate(SYMBOLS)])
    result, intents = auction_and_risk(sigs, [], MARKETS, acct, safety)
    # the auction spent its whole budget...
    assert result.margin_planned == pytest.approx(safety.auction_max_margin_util * acct.equity)
    approved = intents.filter(pl.col("status") == IntentStatus.APPROVED)
    utilisation = (acct.margin_used + approved["margin"].sum()) / acct.equity
    # ...and what was placed still sits below DEGRADED, hence far from HALT
    assert utilisation < safety.degraded_margin_utilization_pct
    assert utilisation > safety.degraded_margin_utilization_pct - 0.01  # it did fill up
    assert Adjustment.SHRUNK_TO_MARGIN in ",".join(approved["adjustments"])
    assert Reason.MARGIN_LIMIT in intents["reason"].to_list()


# --- outage 2: notional_override bypassed the single-position clamp ------------------------


def _override_intent(equity: float, override_share: float) -> dict:
    acct = account(equity=equity)
    safety, risk = SafetyConfig(), RiskConfig()
    result, _ = auction_and_risk(signals_frame([signal(SYMBOLS[0])]), [], MARKETS, acct)
    allocations = as_selected(result.allocations, notional_override=override_share * equity)
    intents = apply_risk(allocations, MARKETS, acct, safety, risk, [], cycle_id=CYCLE, ts=NOW)
    return intents.row(0, named=True)


def test_notional_override_of_120pct_equity_is_clamped_to_the_single_position_cap() -> None:
    cap_share = SafetyConfig().max_single_position_pct_equity
    intent = _override_intent(equity=1_000.0, override_share=1.2)
    assert intent["status"] == IntentStatus.APPROVED
    assert intent["requested_notional"] == pytest.approx(1_200.0)
    assert intent["notional"] <= cap_share * 1_000.0
    assert intent["notional"] >= cap_share * 1_000.0 - 0.001 * 100.0  # within one lot of it
    assert is_multiple(intent["size"], 0.001)
    assert intent["adjustments"] == "notional_override,clamped_max_position"


def test_clamp_that_leaves_less_than_the_dust_floor_is_refused_as_dust() -> None:
    # 25% of $30 is $7.50: under the $10 floor once clamped
    intent = _override_intent(equity=30.0, override_share=1.2)
    assert intent["status"] == IntentStatus.REFUSED
    assert intent["reason"] == Reason.DUST
    assert intent["requested_notional"] == pytest.approx(36.0)  # the override path was taken
    assert intent["size"] == 0.0
