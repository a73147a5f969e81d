"""Invariants of auction + risk manager over arbitrary accounts, positions and candidates.

The core's own pandera validations are switched off inside `allocate` for speed (they cost
several times the allocation itself); the lot/dust property validates the OrderIntents
output explicitly, and every other unit test runs with them on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st
from pandera.config import config_context

from core.auction import run_auction
from core.precision import is_multiple
from core.risk import AccountState, OpenPosition, SystemState, apply_risk
from schemas.allocation import IntentStatus, OrderIntents
from schemas.config import SafetyConfig
from schemas.risk import RiskConfig
from tests.unit.risk.conftest import (
    CYCLE,
    NOW,
    as_selected,
    market,
    markets_frame,
    position,
    signal,
)

SAFETY, RISK = SafetyConfig(), RiskConfig()
POOL = [f"P{i}/USD:USD" for i in range(8)]
HELD_ONLY = [f"H{i}/USD:USD" for i in range(8)]  # held positions without a signal this cycle
PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class World:
    markets: pl.DataFrame
    signals: pl.DataFrame
    positions: list[OpenPosition]
    account: AccountState
    overrides: list[float | None]  # forced onto the new candidates in rank order


PRICES = [0.05, 0.6, 2.5, 30.0, 600.0, 3_000.0, 65_000.0]


def one_in(draw: st.DrawFn, n: int) -> bool:
    """True about once in n draws (hypothesis' one_of over-weights constant branches).

    The rare case is the high value: hypothesis starts from and shrinks toward 0, so the
    simplest world is a tradeable one.
    """
    return draw(st.integers(0, n - 1)) == n - 1


@st.composite
def market_rows(draw: st.DrawFn, symbol: str, price: float) -> dict[str, Any]:
    """A market around `price`; its lot is usually worth $0.1-$100, sometimes anything."""
    lot = 10.0 ** (round(-math.log10(price)) + draw(st.integers(-1, 2)))
    if one_in(draw, 4):
        lot = draw(st.sampled_from([1e-4, 0.001, 0.1, 1.0, 10.0]))
    return market(
        symbol,
        contract_size=draw(st.sampled_from([1.0, 1.0, 0.001, 10.0])),
        tick_size=draw(st.sampled_from([0.01, 1e-5, 0.5])),
        lot_size=None if one_in(draw, 10) else lot,  # now and then no precision data
        min_size=lot * draw(st.sampled_from([1, 0, 5])),
        max_leverage=draw(st.sampled_from([50.0, 1.0, 2.0, 5.0])),
        tier="REJECT" if one_in(draw, 10) else draw(st.sampled_from(["A", "B", "C"])),
    )


@st.composite
def entries(draw: st.DrawFn, price: float) -> float:
    """Mostly near the market's price; sometimes anywhere, sometimes NaN."""
    kind = draw(st.integers(0, 9))
    if kind == 9:
        return float("nan")
    return price * draw(st.floats(1e-3, 1e3) if kind == 8 else st.floats(0.95, 1.05))


@st.composite
def stop_moves(draw: st.DrawFn) -> float:
    """Mostly a sound stop distance; sometimes zero, the wrong side or a sub-tick one."""
    kind = draw(st.integers(0, 9))
    bad = {7: 0.0, 8: -0.01, 9: 1e-9}
    return bad[kind] if kind in bad else draw(st.floats(0.002, 0.2))


@st.composite
def signal_rows(draw: st.DrawFn, prices: dict[str, float]) -> dict[str, Any]:
    symbol = "ABSENT/USD:USD" if one_in(draw, 12) else draw(st.sampled_from(list(prices)))
    side = draw(st.sampled_from(["long", "short"]))
    entry = draw(entries(prices.get(symbol, 100.0)))
    sign = 1.0 if side == "long" else -1.0
    return signal(
        symbol,
        side,
        entry=entry,
        stop=entry * (1 - sign * draw(stop_moves())),
        tp1=entry * (1 + sign * draw(st.floats(-0.05, 0.3))),
        tp2=entry * (1 + sign * draw(st.floats(0.0, 0.5))),
        tp3=entry * (1 + sign * draw(st.floats(0.0, 0.8))),
        regime=draw(st.sampled_from(["tight_smc", "wide"])),
        score=draw(st.floats(0.0, 1.0)),
    )


@st.composite
def accounts(draw: st.DrawFn, equity: float, held_margin: float) -> AccountState:
    """Mostly an account that may trade; sometimes DEGRADED, HALTED or in drawdown."""
    drawdown = draw(st.floats(0.0, 0.2)) if one_in(draw, 4) else 0.0
    state = draw(st.sampled_from(list(SystemState))) if one_in(draw, 4) else SystemState.NORMAL
    # the venue's figure >= our sum; often close to the DEGRADED and budget levels
    extra = draw(st.floats(0.6, 0.88) if one_in(draw, 2) else st.floats(0.0, 0.3))
    return AccountState(equity, held_margin + equity * extra, equity / (1 - drawdown), state)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    prices = {s: draw(st.sampled_from(PRICES)) for s in POOL}
    markets = markets_frame([draw(market_rows(s, p)) for s, p in prices.items()], validate=False)
    sigs = draw(st.lists(signal_rows(prices), min_size=1, max_size=10))
    kind = draw(st.integers(0, 3))
    sizes = [(300.0, 50_000.0), (300.0, 50_000.0), (1.0, 200.0), (1.0, 1e6)]
    # mostly a few hundred to tens of thousands; sometimes a dust-sized or a large account
    equity = draw(st.floats(*sizes[kind]))
    # sometimes a crowd of held positions, so the concurrency limit binds
    crowd = 6 if one_in(draw, 3) else 0
    held = draw(
        st.lists(st.sampled_from(POOL + HELD_ONLY), min_size=crowd, max_size=10, unique=True)
    )
    margins = [equity * draw(st.floats(0.0, 0.03)) for _ in held]
    positions = [position(s, margin=m) for s, m in zip(held, margins, strict=True)]
    acct = draw(accounts(equity, sum(margins)))
    overrides = draw(
        st.lists(st.one_of(st.none(), st.floats(0.01, 3.0 * equity)), min_size=10, max_size=10)
    )
    frame = pl.DataFrame(sigs, schema=_signal_schema())
    return World(markets, frame, positions, acct, overrides)


def _signal_schema() -> dict[str, pl.DataType]:
    floats = {c: pl.Float64() for c in ("entry", "stop", "tp1", "tp2", "tp3", "score")}
    strings = {c: pl.String() for c in ("symbol", "strategy", "side", "regime")}
    return {**strings, "ts": pl.Datetime("us", "UTC"), **floats}


def allocate(
    w: World, *, adversarial: bool = False, validate: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(allocations, every intent). `adversarial` replaces the auction's decisions with
    arbitrary ones (every candidate selected, random overrides): the risk manager alone must
    then keep every invariant."""
    with config_context(validation_enabled=False):
        result = run_auction(w.signals, w.positions, w.markets, w.account, SAFETY, RISK)
        allocations = result.allocations
        if adversarial:
            overrides = pl.Series(w.overrides + [None] * allocations.height, dtype=pl.Float64)
            allocations = as_selected(allocations).with_columns(
                notional_override=overrides[: allocations.height]
            )
        intents = apply_risk(
            allocations, w.markets, w.account, SAFETY, RISK, w.positions, cycle_id=CYCLE, ts=NOW
        )
    if validate:
        OrderIntents.validate(intents)
    return allocations, intents


def approved_of(intents: pl.DataFrame) -> pl.DataFrame:
    return intents.filter(pl.col("status") == IntentStatus.APPROVED)


@settings(PROPERTY, max_examples=60)  # the invariant of the seed's outage 1: search harder
@given(w=worlds(), adversarial=st.booleans())
def test_margin_never_exceeds_auction_budget_and_positions_never_exceed_the_maximum(
    w: World, adversarial: bool
) -> None:
    approved = approved_of(allocate(w, adversarial=adversarial)[1])
    budget = SAFETY.auction_max_margin_util * w.account.equity
    after = w.account.margin_used + approved["margin"].sum()
    target(after / w.account.equity, label="utilisation after")  # hunt for full budgets
    assert after <= max(budget, w.account.margin_used)
    if approved.height:  # an entry never takes the account to DEGRADED or HALT either
        # (the monitor HALTs above max_concurrent_positions, DEGRADEs at the margin level)
        assert after < SAFETY.degraded_margin_utilization_pct * w.account.equity
        assert len(w.positions) + approved.height <= SAFETY.max_concurrent_positions


@PROPERTY
@given(w=worlds(), adversarial=st.booleans())
def test_no_approved_intent_above_max_single_position_share_of_equity(
    w: World, adversarial: bool
) -> None:
    approved = approved_of(allocate(w, adversarial=adversarial)[1])
    target(float(approved.height), label="approved intents")
    cap = SAFETY.max_single_position_pct_equity * w.account.equity
    assert all(n <= cap for n in approved["notional"])


@PROPERTY
@given(w=worlds(), adversarial=st.booleans())
def test_no_approved_intent_below_the_dust_floor_or_min_size_and_sizes_are_lot_multiples(
    w: World, adversarial: bool
) -> None:
    approved = approved_of(allocate(w, adversarial=adversarial, validate=True)[1])
    target(float(approved.height), label="approved intents")
    lots = dict(zip(w.markets["symbol"], w.markets["lot_size"], strict=True))
    mins = dict(zip(w.markets["symbol"], w.markets["min_size"], strict=True))
    for row in approved.iter_rows(named=True):
        assert row["notional"] >= RISK.min_notional_viable
        assert row["size"] >= mins[row["symbol"]]
        assert is_multiple(row["size"], lots[row["symbol"]])
        assert math.isfinite(row["entry"]) and math.isfinite(row["stop"])


@PROPERTY
@given(w=worlds(), data=st.data())
def test_allocation_is_deterministic_under_row_permutation_of_every_input(
    w: World, data: st.DataObject
) -> None:
    alloc, intents = allocate(w)
    target(float(approved_of(intents).height), label="approved intents")
    shuffled = World(
        markets=_permuted(w.markets, data),
        signals=_permuted(w.signals, data),
        positions=data.draw(st.permutations(w.positions)),
        account=w.account,
        overrides=w.overrides,
    )
    alloc2, intents2 = allocate(shuffled)
    assert alloc.equals(alloc2, null_equal=True)
    assert intents.equals(intents2, null_equal=True)


def _permuted(frame: pl.DataFrame, data: st.DataObject) -> pl.DataFrame:
    order = data.draw(st.permutations(range(frame.height)))
    return frame[list(order)]


def test_property_worlds_are_not_vacuous_many_produce_approved_intents() -> None:
    """Guards the generators above: invariants over refused-only worlds would prove nothing."""
    seen = {"worlds": 0, "with_approvals": 0}

    # 60, not 20: which worlds a derandomized run draws depends on the constants hypothesis
    # harvests from every loaded module, so a small sample can be unlucky as code grows
    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(w=worlds())
    def count(w: World) -> None:
        approved = approved_of(allocate(w)[1])
        target(float(approved.height))
        seen["worlds"] += 1
        seen["with_approvals"] += approved.height > 0

    count()
    assert seen["with_approvals"] >= seen["worlds"] // 4, seen
