"""Risk manager (SPEC §5): sizing and every pre-trade gate, bad candidates refused alone."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from core.auction import run_auction
from core.risk import SystemState, apply_risk, client_intent_id
from schemas.allocation import Adjustment, IntentStatus, OrderIntents, Reason
from schemas.config import SafetyConfig
from schemas.risk import RiskConfig
from tests.unit.risk.conftest import (
    CYCLE,
    NOW,
    account,
    as_selected,
    auction_and_risk,
    market,
    markets_frame,
    position,
    signal,
    signals_frame,
)

ORDER_INTENT_COLUMNS = [
    "cycle_id", "ts", "client_intent_id", "rank", "symbol", "side", "strategy", "signal_ts",
    "tier", "regime", "score", "entry", "stop", "tp1", "tp2", "tp3", "size", "notional",
    "margin", "leverage", "requested_notional", "notional_override", "equity", "status",
    "reason", "adjustments", "tp_skipped",
]  # fmt: skip

GOOD = [f"G{i}/USD:USD" for i in range(3)]


def one_intent(sig: dict, mkt: dict | None = None, **acct_kw) -> dict:
    symbol = sig["symbol"]
    markets = markets_frame([mkt or market(symbol)], validate=False)
    _, intents = auction_and_risk(
        signals_frame([sig], validate=False), [], markets, account(**acct_kw)
    )
    assert intents.height == 1
    return intents.row(0, named=True)


def forced(sigs: list[dict], markets: pl.DataFrame, positions=(), **acct_kw) -> pl.DataFrame:
    """apply_risk on allocations that claim every new candidate won the auction."""
    acct = account(**acct_kw)
    safety, risk = SafetyConfig(), RiskConfig()
    result = run_auction(
        signals_frame(sigs, validate=False), list(positions), markets, acct, safety, risk
    )
    return apply_risk(
        as_selected(result.allocations), markets, acct, safety, risk, list(positions),
        cycle_id=CYCLE, ts=NOW,
    )  # fmt: skip


# --- sizing -------------------------------------------------------------------------------


def test_size_is_risk_over_stop_distance_in_contracts() -> None:
    # 1% of 1000 = $10 at risk over a $10 stop distance: 1 contract of 1 unit
    intent = one_intent(signal("BTC/USD:USD", stop=90.0, tp1=110.0, tp2=120.0, tp3=130.0))
    assert intent["status"] == IntentStatus.APPROVED
    assert (intent["size"], intent["notional"]) == (1.0, pytest.approx(100.0))
    assert intent["margin"] == pytest.approx(100.0 / RiskConfig().default_leverage)
    assert intent["adjustments"] == ""


def test_contract_size_and_lot_are_respected() -> None:
    # $10 / ($6 x 10 units per contract) = 0.1666.. contracts, floored to the 0.1 lot
    sig = signal("ETH/USD:USD", stop=94.0)
    intent = one_intent(sig, market("ETH/USD:USD", contract_size=10.0, lot_size=0.1, min_size=0.1))
    assert intent["size"] == 0.1
    assert intent["notional"] == pytest.approx(100.0)


def test_market_max_leverage_caps_the_leverage_used_for_margin() -> None:
    sig = signal("ETH/USD:USD", stop=90.0, tp1=110.0, tp2=120.0, tp3=130.0)
    intent = one_intent(sig, market("ETH/USD:USD", max_leverage=2.0))
    assert intent["leverage"] == 2.0
    assert intent["margin"] == pytest.approx(intent["notional"] / 2.0)


def test_prices_go_on_the_tick_grid_and_stop_rounds_away_from_entry() -> None:
    sig = signal("BTC/USD:USD", entry=100.26, stop=97.74, tp1=103.3, tp2=105.7, tp3=108.2)
    intent = one_intent(sig, market("BTC/USD:USD", tick_size=0.5))
    assert (intent["entry"], intent["stop"]) == (100.5, 97.5)
    assert (intent["tp1"], intent["tp2"], intent["tp3"]) == (103.5, 105.5, 108.0)


def test_below_market_min_size_is_refused() -> None:
    sig = signal("BTC/USD:USD", stop=90.0, tp1=110.0, tp2=120.0, tp3=130.0)
    intent = one_intent(sig, market("BTC/USD:USD", min_size=5.0))
    assert (intent["status"], intent["reason"]) == (IntentStatus.REFUSED, Reason.BELOW_MIN_SIZE)


def test_margin_after_the_trade_stays_below_degraded_by_shrinking() -> None:
    safety = SafetyConfig()
    intent = one_intent(signal("BTC/USD:USD"), margin_used=800.0)
    assert intent["status"] == IntentStatus.APPROVED
    assert Adjustment.SHRUNK_TO_MARGIN in intent["adjustments"]
    assert 800.0 + intent["margin"] < safety.degraded_margin_utilization_pct * 1_000.0


def test_no_viable_size_under_the_degraded_level_is_refused_margin_limit() -> None:
    intent = one_intent(signal("BTC/USD:USD"), margin_used=849.0)
    assert (intent["status"], intent["reason"]) == (IntentStatus.REFUSED, Reason.MARGIN_LIMIT)


# --- gates the risk manager runs itself, whatever the auction decided ----------------------


def test_max_concurrent_counts_open_positions_and_approvals_so_far() -> None:
    safety = SafetyConfig()
    held = [
        position(f"H{i}/USD:USD", margin=1.0) for i in range(safety.max_concurrent_positions - 2)
    ]
    markets = markets_frame([market(s) for s in GOOD])
    intents = forced(
        [signal(s, score=0.9 - i / 10) for i, s in enumerate(GOOD)], markets, held, margin_used=8.0
    )
    assert intents.select("status", "reason").rows() == [
        ("approved", None),
        ("approved", None),
        ("refused", Reason.MAX_CONCURRENT),
    ]


def test_held_symbol_and_repeated_symbol_are_refused_even_if_allocated() -> None:
    markets = markets_frame([market(s) for s in GOOD])
    sigs = [signal(GOOD[0]), signal(GOOD[1], score=0.9), signal(GOOD[1], "short", score=0.5)]
    intents = forced(sigs, markets, [position(GOOD[0])], margin_used=16.0)
    assert intents.select("symbol", "reason").rows() == [
        (GOOD[1], None),
        (GOOD[0], Reason.ALREADY_HELD),
        (GOOD[1], Reason.LOWER_SCORE_SAME_SYMBOL),
    ]


@pytest.mark.parametrize(
    ("acct_kw", "reason"),
    [
        ({"state": SystemState.DEGRADED}, Reason.SYSTEM_DEGRADED),
        ({"state": SystemState.HALTED}, Reason.SYSTEM_HALTED),
        ({"equity": 900.0, "high_water": 1_000.0}, Reason.DRAWDOWN),
    ],
)
def test_account_gates_refuse_new_entries_even_if_allocated(acct_kw, reason) -> None:
    markets = markets_frame([market(GOOD[0])])
    intents = forced([signal(GOOD[0])], markets, **acct_kw)
    assert intents.select("status", "reason").rows() == [("refused", reason)]


def test_drawdown_just_under_the_degraded_level_still_trades() -> None:
    markets = markets_frame([market(GOOD[0])])
    intents = forced([signal(GOOD[0])], markets, equity=900.01, high_water=1_000.0)
    assert intents["status"].to_list() == ["approved"]


def test_bad_override_is_refused() -> None:
    markets = markets_frame([market(GOOD[0])])
    acct, safety, risk = account(), SafetyConfig(), RiskConfig()
    result = run_auction(signals_frame([signal(GOOD[0])]), [], markets, acct, safety, risk)
    alloc = as_selected(result.allocations, notional_override=float("nan"))
    intents = apply_risk(alloc, markets, acct, safety, risk, [], cycle_id=CYCLE, ts=NOW)
    assert intents["reason"].to_list() == [Reason.BAD_OVERRIDE]


# --- bad candidates: refused with a reason, the others proceed ------------------------------


def bad(symbol: str, reason: Reason, sig: dict | None = None, mkt: dict | None = None) -> tuple:
    """A bad candidate on `symbol`: its signal, its market row (None: not listed), the reason."""
    name = f"{symbol}/USD:USD"
    return (signal(name, **(sig or {})), market(name, **(mkt or {})), reason)


BAD_CASES = [
    bad("NAN", Reason.BAD_PRICE, {"entry": float("nan")}),
    bad("INF", Reason.BAD_PRICE, {"stop": float("inf")}),
    bad("WRONG", Reason.STOP_WRONG_SIDE, {"stop": 102.0}),
    bad("SHORTW", Reason.STOP_WRONG_SIDE, {"side": "short", "stop": 98.0}),
    bad("ZERO", Reason.ZERO_STOP_DISTANCE, {"stop": 100.0}),
    # distinct prices, one tick once rounded
    bad("TICK", Reason.ZERO_STOP_DISTANCE, {"entry": 100.004, "stop": 100.001}),
    bad("NOLOT", Reason.NO_PRECISION, mkt={"lot_size": None}),
    bad("NOTICK", Reason.NO_PRECISION, mkt={"tick_size": float("nan")}),
    bad("REJ", Reason.NOT_TRADEABLE, mkt={"tier": "REJECT", "tradeable": False}),
    bad("SIDE", Reason.BAD_SIDE, {"side": "flat"}),
    bad("SCORE", Reason.BAD_SCORE, {"score": float("nan")}),
    bad("NOTP", Reason.NO_TP_PLAN, {"tp1": 99.0, "tp2": 98.0, "tp3": float("nan")}),
    (signal("GONE/USD:USD"), None, Reason.MARKET_MISSING),
]


def test_bad_candidates_are_refused_with_their_reason_and_the_others_proceed() -> None:
    sigs = [s for s, _, _ in BAD_CASES] + [signal(s, score=0.3) for s in GOOD]
    rows = [m for _, m, _ in BAD_CASES if m is not None] + [market(s) for s in GOOD]
    markets = markets_frame(rows, validate=False)
    _, intents = auction_and_risk(signals_frame(sigs, validate=False), [], markets, account())
    OrderIntents.validate(intents)
    got = dict(zip(intents["symbol"], intents["reason"], strict=True))
    for sig, _, reason in BAD_CASES:
        assert got[sig["symbol"]] == reason, sig["symbol"]
    approved = intents.filter(pl.col("status") == "approved")["symbol"].sort().to_list()
    assert approved == GOOD


def test_bad_candidates_are_refused_even_when_the_allocations_say_selected() -> None:
    rows = [m for _, m, _ in BAD_CASES if m is not None] + [market(GOOD[0])]
    markets = markets_frame(rows, validate=False)
    intents = forced([s for s, _, _ in BAD_CASES] + [signal(GOOD[0])], markets)
    got = dict(zip(intents["symbol"], intents["reason"], strict=True))
    assert {sig["symbol"]: got[sig["symbol"]] for sig, _, _ in BAD_CASES} == {
        sig["symbol"]: reason for sig, _, reason in BAD_CASES
    }
    assert got[GOOD[0]] is None


# --- the OrderIntents frame -----------------------------------------------------------------


def test_order_intents_columns_validate_and_carry_status_and_reason() -> None:
    markets = markets_frame([market(s) for s in GOOD])
    sigs = signals_frame([signal(GOOD[0]), signal(GOOD[1], entry=float("nan"))], validate=False)
    _, intents = auction_and_risk(sigs, [], markets, account())
    assert intents.columns == ORDER_INTENT_COLUMNS
    OrderIntents.validate(intents)
    assert intents.select("status", "reason").rows() == [
        ("approved", None),
        ("refused", Reason.BAD_PRICE),
    ]
    assert intents["cycle_id"].unique().to_list() == [CYCLE]
    assert intents["equity"].to_list() == [1_000.0, 1_000.0]


def test_skipped_tp_level_is_null_on_the_intent() -> None:
    intent = one_intent(signal("BTC/USD:USD", tp1=99.0))
    assert intent["status"] == IntentStatus.APPROVED
    assert (intent["tp1"], intent["tp2"], intent["tp3"]) == (None, 104.0, 106.0)
    assert intent["tp_skipped"] == "tp1:PASSED"


def test_client_intent_id_is_deterministic_short_and_changes_with_its_inputs() -> None:
    key = (CYCLE, "BTC/USD:USD", "long", NOW, "smc")
    first = client_intent_id(*key)
    assert first == client_intent_id(*key)
    assert first.startswith("smc-") and len(first) <= 100
    assert client_intent_id("cycle-0002", *key[1:]) != first
    assert client_intent_id(CYCLE, "BTC/USD:USD", "short", NOW, "smc") != first
    assert client_intent_id(CYCLE, "BTC/USD:USD", "long", NOW + timedelta(hours=1), "smc") != first


def test_a_retried_cycle_produces_the_same_intents() -> None:
    markets = markets_frame([market(s) for s in GOOD])
    sigs = signals_frame([signal(s) for s in GOOD])
    _, first = auction_and_risk(sigs, [], markets, account())
    _, retry = auction_and_risk(sigs, [], markets, account())
    assert first.equals(retry)
    assert first["client_intent_id"].n_unique() == first.height


def test_identical_duplicate_signals_get_distinct_client_ids() -> None:
    markets = markets_frame([market(GOOD[0])])
    _, intents = auction_and_risk(signals_frame([signal(GOOD[0])] * 2), [], markets, account())
    ids = intents["client_intent_id"].to_list()
    assert ids[1] == ids[0] + "-2"
