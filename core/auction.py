"""Auction allocator (SPEC §4): choose what to hold this cycle within the margin budget.

Candidates are this cycle's signals and the open positions. Score:

    new signal     score = signal score x tier_weights[tier] x regime weight
                   (regime_weights[regime], else other_regime_weight)   in 0..1
    held position  score = incumbent_score (default 1.0, the top of that scale)

Winners are taken greedily in rank order: score desc, held before new, tier
A < B < C, symbol, then every other input column, so the ranking is a total
order and the same candidates in any row order give the same result. The
budget is auction_max_margin_util x equity of margin, and the margin already
in use (AccountState.margin_used, the held positions included) is counted
first. A held position is therefore always reaffirmed: its margin is already
spent, the auction never closes a position (exits belong to the position
machine), and a fresh signal on its symbol loses ALREADY_HELD. Reaffirming is
not an order: no churn. A new winner whose estimated size fits the remaining
budget only in part is still selected, with `notional_override` = remaining
margin x leverage; the risk manager clamps it like any other size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from core.risk import (
    AccountState,
    OpenPosition,
    SystemState,
    account_denial,
    concurrency_room,
    input_denial,
    leverage_expr,
    position_cap,
    positions_frame,
    risk_notional,
    with_market,
)
from schemas.allocation import (
    Allocations,
    CandidateKind,
    Candidates,
    Decision,
    Reason,
    polars_schema,
)
from schemas.config import SafetyConfig
from schemas.risk import TRADEABLE_TIERS, RiskConfig

__all__ = [
    "AccountState",
    "AuctionResult",
    "OpenPosition",
    "SystemState",
    "auction_table",
    "build_candidates",
    "run_auction",
]

SIGNAL_COLUMNS = ("symbol", "ts", "strategy", "side", "entry", "stop", "tp1", "tp2", "tp3")
TIE_BREAK = (
    "side", "strategy", "ts", "entry", "stop", "tp1", "tp2", "tp3", "regime", "signal_score",
    "size", "mark_price", "held_margin",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuctionResult:
    allocations: pl.DataFrame  # Allocations, rank order
    candidates: int
    winners_selected: int  # reaffirmed + selected
    budget: float  # auction_max_margin_util x equity, margin in USD
    margin_in_use: float  # before this auction
    margin_planned: float  # in use + the estimated margin of the new winners


# --- candidates ----------------------------------------------------------------------------


def _signal_rows(signals: pl.DataFrame | None) -> pl.DataFrame:
    """Signals as Candidates columns; rows are not value-checked here (bad ones lose later)."""
    schema = polars_schema(Candidates)
    if signals is None or signals.height == 0:
        return pl.DataFrame(schema=schema)
    return signals.select(
        pl.lit(CandidateKind.NEW.value).alias("kind"),
        pl.col("symbol").fill_null(""),  # no symbol: no market, so it loses MARKET_MISSING
        *SIGNAL_COLUMNS[1:],
        "regime",
        pl.col("score").alias("signal_score"),
    ).with_columns(pl.col(SIGNAL_COLUMNS[4:]).cast(pl.Float64))


def _held_rows(held: pl.DataFrame) -> pl.DataFrame:
    return held.select(
        pl.lit(CandidateKind.HELD.value).alias("kind"),
        "symbol",
        "side",
        pl.col("entry_price").alias("entry"),
        "size",
        "mark_price",
        pl.col("margin").alias("held_margin"),
    )


def build_candidates(
    signals: pl.DataFrame | None, held: pl.DataFrame, markets: pl.DataFrame, risk: RiskConfig
) -> pl.DataFrame:
    """Candidates: every signal row and every held position, with tier and auction score.

    Returns the Candidates columns (not yet ranked, not validated). Refuses nothing: a
    signal with a bad price, side or score keeps its row (score may be NaN) and loses later.
    """
    schema = polars_schema(Candidates)
    # a symbol listed twice is ambiguous: no tier (with_market treats it as missing too)
    tiers = markets.select("symbol", "tier").filter(pl.col("symbol").is_unique())
    rows = pl.concat([_signal_rows(signals), _held_rows(held)], how="diagonal_relaxed").join(
        tiers, on="symbol", how="left", maintain_order="left"
    )
    tier_w = pl.col("tier").replace_strict(risk.tier_weights, default=0.0, return_dtype=pl.Float64)
    regime_w = pl.col("regime").replace_strict(
        risk.regime_weights, default=risk.other_regime_weight, return_dtype=pl.Float64
    )
    score = (
        pl.when(pl.col("kind") == CandidateKind.HELD)
        .then(pl.lit(risk.incumbent_score))
        .otherwise(pl.col("signal_score") * tier_w * regime_w)
    )
    # an internal frame: cast to the Candidates columns, validated where it leaves (Allocations)
    return rows.with_columns(score.alias("score")).select(schema.names()).cast(schema)


def _ranked(candidates: pl.DataFrame) -> pl.DataFrame:
    """Candidates in auction order with a 1-based `rank`: a total order, row order irrelevant."""
    valid_score = pl.when(pl.col("score").is_finite()).then(pl.col("score")).otherwise(-1.0)
    tier_rank = pl.col("tier").replace_strict(
        {t: i for i, t in enumerate(TRADEABLE_TIERS)}, default=len(TRADEABLE_TIERS)
    )
    keys = [valid_score, pl.col("kind") != CandidateKind.HELD, tier_rank, "symbol", *TIE_BREAK]
    descending = [True] + [False] * (len(keys) - 1)
    ordered = candidates.sort(keys, descending=descending, nulls_last=True)
    return ordered.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))


# --- greedy selection ----------------------------------------------------------------------


@dataclass(slots=True)
class _Budget:
    remaining: float  # margin left under auction_max_margin_util x equity
    room: int  # new entries left under max_concurrent_positions
    held: frozenset[str]
    won: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Outcome:
    decision: Decision
    reason: Reason | None = None
    planned_notional: float | None = None
    planned_margin: float | None = None
    notional_override: float | None = None


def _lost(reason: Reason) -> _Outcome:
    return _Outcome(Decision.LOST, reason)


def _denial(
    row: Mapping[str, Any], budget: _Budget, account_reason: Reason | None
) -> Reason | None:
    if account_reason is not None:
        return account_reason
    if row["input_reason"] is not None:
        return Reason(row["input_reason"])
    if row["symbol"] in budget.held:
        return Reason.ALREADY_HELD
    if row["symbol"] in budget.won:
        return Reason.LOWER_SCORE_SAME_SYMBOL
    if budget.room <= 0:
        return Reason.MAX_CONCURRENT
    return None


def _decide(
    row: Mapping[str, Any],
    budget: _Budget,
    account: AccountState,
    safety: SafetyConfig,
    risk: RiskConfig,
    account_reason: Reason | None,
) -> _Outcome:
    """One candidate's outcome; updates `budget` when it wins."""
    if row["kind"] == CandidateKind.HELD:
        margin = row["held_margin"]
        return _Outcome(Decision.REAFFIRMED, planned_margin=margin)
    reason = _denial(row, budget, account_reason)
    if reason is not None:
        return _lost(reason)
    lev = row["leverage"]
    planned = min(
        risk_notional(row["entry"], row["stop"], account.equity, risk),
        position_cap(account.equity, safety),
    )
    if planned < risk.min_notional_viable:
        return _lost(Reason.DUST)
    override = None
    if planned / lev > budget.remaining:
        # only part fits: propose what the remaining budget buys, if that is not dust
        override = budget.remaining * lev
        if override < risk.min_notional_viable:
            return _lost(Reason.BUDGET)
        planned = override
    budget.remaining -= planned / lev
    budget.room -= 1
    budget.won.add(row["symbol"])
    return _Outcome(Decision.SELECTED, None, planned, planned / lev, override)


def run_auction(
    signals: pl.DataFrame | None,
    positions: Sequence[OpenPosition] | pl.DataFrame,
    markets: pl.DataFrame,
    account: AccountState,
    safety: SafetyConfig,
    risk: RiskConfig,
) -> AuctionResult:
    """Rank signals and held positions and select winners within the margin budget.

    Returns every candidate with its decision: `reaffirmed` (held), `selected` (new
    entry for the risk manager, maybe with a notional_override) or `lost` with a
    Reason. Refuses new entries, never held positions, when the account says no
    (state, drawdown); a bad signal loses with its Reason and the others proceed.
    """
    held = positions_frame(positions)
    ranked = _ranked(build_candidates(signals, held, markets, risk))
    rows = with_market(ranked, markets).with_columns(
        input_reason=input_denial(), leverage=leverage_expr(risk)
    )
    in_use = account.margin_used
    budget_usd = safety.auction_max_margin_util * account.equity
    budget = _Budget(
        remaining=budget_usd - in_use if math.isfinite(budget_usd - in_use) else 0.0,
        room=concurrency_room(held.height, safety),
        held=frozenset(held["symbol"].to_list()),
    )
    account_reason = account_denial(account, safety)
    outcomes = [
        _decide(r, budget, account, safety, risk, account_reason)
        for r in rows.iter_rows(named=True)
    ]
    allocations = _allocations_frame(ranked, rows["leverage"], outcomes)
    selected = allocations.filter(pl.col("decision") == Decision.SELECTED)
    return AuctionResult(
        allocations=allocations,
        candidates=allocations.height,
        winners_selected=allocations.filter(pl.col("decision") != Decision.LOST).height,
        budget=budget_usd,
        margin_in_use=in_use,
        margin_planned=in_use + float(selected["planned_margin"].sum()),
    )


def _allocations_frame(
    ranked: pl.DataFrame, leverage: pl.Series, outcomes: list[_Outcome]
) -> pl.DataFrame:
    schema = polars_schema(Allocations)
    decided = pl.DataFrame(
        {
            "decision": [o.decision.value for o in outcomes],
            "reason": [o.reason.value if o.reason else None for o in outcomes],
            "planned_notional": [o.planned_notional for o in outcomes],
            "planned_margin": [o.planned_margin for o in outcomes],
            "notional_override": [o.notional_override for o in outcomes],
        },
        schema={
            "decision": pl.String,
            "reason": pl.String,
            "planned_notional": pl.Float64,
            "planned_margin": pl.Float64,
            "notional_override": pl.Float64,
        },
    )
    frame = pl.concat([ranked, decided], how="horizontal").with_columns(leverage)
    return Allocations.validate(frame.select(schema.names()).cast(schema))


# --- the Prefect artifact ------------------------------------------------------------------

TABLE_COLUMNS = (
    "rank", "kind", "symbol", "side", "tier", "regime", "score", "decision", "reason",
    "planned_notional", "planned_margin", "notional_override",
)  # fmt: skip


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 4)
    return value


def auction_table(result: AuctionResult) -> list[dict[str, Any]]:
    """The auction as rows for a Prefect table artifact (JSON-safe; NaN shown as None)."""
    rows = result.allocations.select(TABLE_COLUMNS).iter_rows(named=True)
    return [{k: _cell(v) for k, v in r.items()} for r in rows]
