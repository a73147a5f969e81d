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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from core.market_book import MarketBook, MarketTerms
from core.risk import (
    AccountState,
    OpenPosition,
    SystemState,
    account_denial,
    concurrency_room,
    input_denial,
    position_cap,
    risk_notional,
    validated_positions,
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
    "candidate_rows",
    "run_auction",
    "run_auction_rows",
    "signal_rows",
]

SIGNAL_COLUMNS = ("symbol", "ts", "strategy", "side", "entry", "stop", "tp1", "tp2", "tp3")
PRICE_COLUMNS = SIGNAL_COLUMNS[4:]
TIE_BREAK = (
    "side", "strategy", "ts", "entry", "stop", "tp1", "tp2", "tp3", "regime", "signal_score",
    "size", "mark_price", "held_margin",
)  # fmt: skip
TIER_RANK = {t: i for i, t in enumerate(TRADEABLE_TIERS)}


class AuctionResult:
    """The auction's decision for every candidate (rows in rank order), and its budget.

    `allocations` is the validated Allocations frame of the rows, built when first asked
    (the live cycle stores and shows it; a backtest never needs it)."""

    __slots__ = (
        "_frame",
        "budget",
        "candidates",
        "margin_in_use",
        "margin_planned",
        "rows",
        "winners_selected",
    )

    def __init__(self, rows: list[dict[str, Any]], budget: float, margin_in_use: float) -> None:
        self.rows = rows
        self.candidates = len(rows)
        self.winners_selected = sum(1 for r in rows if r["decision"] != Decision.LOST)
        self.budget = budget  # auction_max_margin_util x equity, margin in USD
        self.margin_in_use = margin_in_use  # before this auction
        # in use + the estimated margin of the new winners
        self.margin_planned = margin_in_use + math.fsum(
            r["planned_margin"] for r in rows if r["decision"] == Decision.SELECTED
        )
        self._frame: pl.DataFrame | None = None

    @property
    def allocations(self) -> pl.DataFrame:
        """Allocations, rank order (validated)."""
        if self._frame is None:
            frame = pl.DataFrame(self.rows, schema=polars_schema(Allocations), orient="row")
            self._frame = Allocations.validate(frame)
        return self._frame


# --- candidates ----------------------------------------------------------------------------


def signal_rows(signals: pl.DataFrame | None) -> list[dict[str, Any]]:
    """A Signals frame as rows: symbol, ts, strategy, side, prices (as floats), regime, score."""
    if signals is None or signals.height == 0:
        return []
    return signals.select(
        *SIGNAL_COLUMNS[:4], pl.col(PRICE_COLUMNS).cast(pl.Float64), "regime", "score"
    ).to_dicts()


def _price(value: Any) -> float | None:
    return None if value is None else float(value)


def candidate_rows(
    signals: Iterable[Mapping[str, Any]],
    positions: Sequence[OpenPosition],
    markets: MarketBook,
    risk: RiskConfig,
) -> list[dict[str, Any]]:
    """Candidates: every signal row and every held position, with tier and auction score.

    Rows of the Candidates columns (not yet ranked, not validated). Refuses nothing: a
    signal with a bad price, side or score keeps its row (score may be NaN) and loses later.
    A symbol listed twice in the registry is ambiguous: no tier.
    """
    terms = markets.terms
    rows: list[dict[str, Any]] = []
    for s in signals:
        symbol = s["symbol"] if s["symbol"] is not None else ""  # no symbol: MARKET_MISSING
        market = terms.get(symbol)
        tier = market.tier if market is not None else None
        score = s["score"]
        if score is not None:
            score = float(score)
            weight = risk.tier_weights.get(tier, 0.0) if tier is not None else 0.0
            regime = s["regime"]
            regime_w = (
                risk.regime_weights.get(regime, risk.other_regime_weight)
                if regime is not None
                else risk.other_regime_weight
            )
            auction_score: float | None = score * float(weight) * float(regime_w)
        else:
            auction_score = None
        rows.append(
            {
                "kind": CandidateKind.NEW.value,
                "symbol": symbol,
                "side": s["side"],
                "strategy": s["strategy"],
                "ts": s["ts"],
                "entry": _price(s["entry"]),
                "stop": _price(s["stop"]),
                "tp1": _price(s["tp1"]),
                "tp2": _price(s["tp2"]),
                "tp3": _price(s["tp3"]),
                "regime": s["regime"],
                "signal_score": score,
                "tier": tier,
                "score": auction_score,
                "size": None,
                "mark_price": None,
                "held_margin": None,
            }
        )
    for p in positions:
        market = terms.get(p.symbol)
        rows.append(
            {
                "kind": CandidateKind.HELD.value,
                "symbol": p.symbol,
                "side": str(p.side),
                "strategy": None,
                "ts": None,
                "entry": float(p.entry_price),
                "stop": None,
                "tp1": None,
                "tp2": None,
                "tp3": None,
                "regime": None,
                "signal_score": None,
                "tier": market.tier if market is not None else None,
                "score": float(risk.incumbent_score),
                "size": float(p.size),
                "mark_price": _price(p.mark_price),
                "held_margin": float(p.margin),
            }
        )
    return rows


def build_candidates(
    signals: pl.DataFrame | None,
    held: pl.DataFrame,
    markets: pl.DataFrame | MarketBook,
    risk: RiskConfig,
) -> pl.DataFrame:
    """Candidates as a frame (not yet ranked, not validated): see `candidate_rows`."""
    positions = validated_positions(held)
    rows = candidate_rows(signal_rows(signals), positions, MarketBook.of(markets), risk)
    return pl.DataFrame(rows, schema=polars_schema(Candidates), orient="row")


def _ascending(value: Any) -> tuple[Any, ...]:
    """A sort key placing values first, NaN after them, nulls last (as polars sorts)."""
    if value is None:
        return (2,)
    if isinstance(value, float) and math.isnan(value):
        return (1,)
    return (0, value)


def _rank_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    score = row["score"]
    valid = score if score is not None and math.isfinite(score) else -1.0
    return (
        -valid,
        row["kind"] != CandidateKind.HELD,
        TIER_RANK.get(row["tier"], len(TRADEABLE_TIERS)),
        row["symbol"],
        *(_ascending(row[c]) for c in TIE_BREAK),
    )


def ranked(candidates: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates in auction order with a 1-based `rank`: a total order, row order irrelevant.

    Score descending (a non-finite score counts as -1), held before new, tier A < B < C
    (others after), symbol, then every other column ascending (NaN after values, nulls last)."""
    ordered = sorted(candidates, key=_rank_key)
    for n, row in enumerate(ordered, start=1):
        row["rank"] = n
    return ordered


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
    row: Mapping[str, Any],
    market: MarketTerms | None,
    budget: _Budget,
    account_reason: Reason | None,
) -> Reason | None:
    if account_reason is not None:
        return account_reason
    bad_input = input_denial(row, market)
    if bad_input is not None:
        return bad_input
    if row["symbol"] in budget.held:
        return Reason.ALREADY_HELD
    if row["symbol"] in budget.won:
        return Reason.LOWER_SCORE_SAME_SYMBOL
    if budget.room <= 0:
        return Reason.MAX_CONCURRENT
    return None


def _decide(
    row: Mapping[str, Any],
    market: MarketTerms | None,
    lev: float | None,
    budget: _Budget,
    account: AccountState,
    safety: SafetyConfig,
    risk: RiskConfig,
    account_reason: Reason | None,
) -> _Outcome:
    """One candidate's outcome; updates `budget` when it wins."""
    if row["kind"] == CandidateKind.HELD:
        return _Outcome(Decision.REAFFIRMED, planned_margin=row["held_margin"])
    reason = _denial(row, market, budget, account_reason)
    if reason is not None:
        return _lost(reason)
    assert lev is not None  # a market with usable precision has a leverage
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


def run_auction_rows(
    signals: Iterable[Mapping[str, Any]],
    positions: Sequence[OpenPosition],
    markets: MarketBook,
    account: AccountState,
    safety: SafetyConfig,
    risk: RiskConfig,
) -> AuctionResult:
    """Rank signals and held positions and select winners within the margin budget.

    Every candidate gets its decision: `reaffirmed` (held), `selected` (new entry for the
    risk manager, maybe with a notional_override) or `lost` with a Reason. Refuses new
    entries, never held positions, when the account says no (state, drawdown); a bad
    signal loses with its Reason and the others proceed. `positions` are trusted here
    (`run_auction` validates them).
    """
    rows = ranked(candidate_rows(signals, positions, markets, risk))
    in_use = account.margin_used
    budget_usd = safety.auction_max_margin_util * account.equity
    budget = _Budget(
        remaining=budget_usd - in_use if math.isfinite(budget_usd - in_use) else 0.0,
        room=concurrency_room(len(positions), safety),
        held=frozenset(p.symbol for p in positions),
    )
    account_reason = account_denial(account, safety)
    for row in rows:
        market = markets.terms.get(row["symbol"])
        lev = market.leverage(risk.default_leverage) if market is not None else None
        o = _decide(row, market, lev, budget, account, safety, risk, account_reason)
        row["decision"] = o.decision.value
        row["reason"] = o.reason.value if o.reason else None
        row["leverage"] = lev
        row["planned_notional"] = o.planned_notional
        row["planned_margin"] = o.planned_margin
        row["notional_override"] = o.notional_override
    return AuctionResult(rows, budget_usd, in_use)


def run_auction(
    signals: pl.DataFrame | None,
    positions: Sequence[OpenPosition] | pl.DataFrame,
    markets: pl.DataFrame | MarketBook,
    account: AccountState,
    safety: SafetyConfig,
    risk: RiskConfig,
) -> AuctionResult:
    """`run_auction_rows` on frames: the positions are validated first (a malformed held
    position is a bug to stop on: pandera's SchemaError)."""
    return run_auction_rows(
        signal_rows(signals),
        validated_positions(positions),
        MarketBook.of(markets),
        account,
        safety,
        risk,
    )


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
