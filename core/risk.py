"""Risk manager (SPEC §5): size every auction winner and run it through each pre-trade gate.

Every post-trade limit the invariant monitor enforces has its gate here, read
from the same SafetyConfig, and every gate runs on every sizing path (the
auction's `notional_override` included):

  account   ACCOUNT_INVALID, SYSTEM_HALTED, SYSTEM_DEGRADED, DRAWDOWN
  input     MARKET_MISSING, NO_PRECISION, NOT_TRADEABLE, BAD_SIDE, BAD_PRICE,
            BAD_SCORE, BAD_OVERRIDE, STOP_WRONG_SIDE, ZERO_STOP_DISTANCE, NO_TP_PLAN
  book      ALREADY_HELD, LOWER_SCORE_SAME_SYMBOL, MAX_CONCURRENT
  size      clamp to max_single_position_pct_equity x equity, floor to the lot,
            DUST, BELOW_MIN_SIZE, then shrink below the DEGRADED margin level or
            MARGIN_LIMIT

Boundaries match core.invariants: margin must stay strictly below the DEGRADED
level (the monitor DEGRADEs at or above it), drawdown at or above its DEGRADED
level refuses (compared exactly, like the monitor), max_concurrent_positions open
is allowed (the monitor HALTs above it), a notional exactly at the position cap is
allowed (the monitor warns above it).

Each gate returns a denial value; nothing is raised for a bad candidate, and a
bad candidate never stops the others (SPEC §11.5). Held positions are not new
entries: they produce no intent and pass no entry gate.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import polars as pl

from core.market_book import MarketBook, MarketTerms
from core.orders import PositionSide
from core.precision import floor_to_step, round_away, round_to_step
from core.system_state import SystemState
from core.tp_plan import TpPlan, min_tp_distance, plan_take_profits
from schemas.allocation import (
    MAX_CLIENT_ID_CHARS,
    Adjustment,
    CandidateKind,
    Decision,
    IntentStatus,
    OpenPositions,
    OrderIntents,
    Reason,
    polars_schema,
)
from schemas.config import SafetyConfig
from schemas.risk import TRADEABLE_TIERS, RiskConfig

log = logging.getLogger("smc_trader.risk")

TP_COLUMNS = ("tp1", "tp2", "tp3")
CLIENT_ID_PREFIX = "smc-"
CLIENT_ID_HASH_CHARS = 20  # 80 bits: unique per cycle by a wide margin, well under Kraken's 100


@dataclass(frozen=True, slots=True)
class AccountState:
    equity: float  # wallet + unrealised PnL, settlement currency
    margin_used: float  # initial margin of every open position (the venue's figure)
    equity_high_water: float
    system_state: SystemState = SystemState.NORMAL

    def drawdown_reached(self, level: float) -> bool:
        """True when equity sits `level` or more below its high-water mark.

        Exact decimal arithmetic, as the invariant monitor compares (core.invariants), so
        the pre-trade gate and the monitor agree at the boundary.
        """
        peak = _exact(max(self.equity_high_water, self.equity))
        return peak > 0 and (peak - _exact(self.equity)) / peak >= _exact(level)


def _exact(x: float) -> Fraction:
    # the decimal a float prints as: what the venue sent or the operator wrote
    return Fraction(repr(float(x)))


@dataclass(frozen=True, slots=True)
class OpenPosition:
    symbol: str
    side: PositionSide
    size: float  # contracts, positive
    entry_price: float
    mark_price: float | None
    margin: float  # initial margin in use

    def __post_init__(self) -> None:
        # accept "long"/"short" from venue reports; anything else is a bug upstream
        object.__setattr__(self, "side", PositionSide(self.side))


def positions_frame(positions: Sequence[OpenPosition] | pl.DataFrame) -> pl.DataFrame:
    """Open positions as a validated OpenPositions frame (a list or a frame accepted).

    Raises pandera's SchemaError on a malformed position: held positions are the
    bot's reconciled state, so bad data there is a bug to stop on, not a candidate to skip.
    """
    if isinstance(positions, pl.DataFrame):
        return OpenPositions.validate(positions)
    rows = [
        {
            "symbol": p.symbol,
            "side": str(p.side),
            "size": p.size,
            "entry_price": p.entry_price,
            "mark_price": p.mark_price,
            "margin": p.margin,
        }
        for p in positions
    ]
    return OpenPositions.validate(pl.DataFrame(rows, schema=polars_schema(OpenPositions)))


def validated_positions(positions: Sequence[OpenPosition] | pl.DataFrame) -> list[OpenPosition]:
    """Held positions checked against OpenPositions (pandera's SchemaError on a malformed
    one), as OpenPosition values; none held: nothing to check."""
    if not isinstance(positions, pl.DataFrame) and not positions:
        return []
    return [OpenPosition(**r) for r in positions_frame(positions).to_dicts()]


# --- limits shared with the auction -------------------------------------------------------


def account_denial(account: AccountState, safety: SafetyConfig) -> Reason | None:
    """Why no new entry may open this cycle, or None. Reaffirming a held position is not
    a new entry and never asks."""
    if not (math.isfinite(account.equity) and account.equity > 0):
        return Reason.ACCOUNT_INVALID
    if not (math.isfinite(account.margin_used) and account.margin_used >= 0):
        return Reason.ACCOUNT_INVALID
    if not math.isfinite(account.equity_high_water):
        return Reason.ACCOUNT_INVALID  # a NaN mark would hide any drawdown
    if account.system_state is SystemState.HALTED:
        return Reason.SYSTEM_HALTED
    if account.system_state is SystemState.DEGRADED:
        return Reason.SYSTEM_DEGRADED
    if account.drawdown_reached(safety.degraded_equity_drawdown_pct):
        return Reason.DRAWDOWN
    return None


def entry_margin_ceiling(safety: SafetyConfig) -> float:
    """Share of equity that margin must stay strictly below after a new entry.

    The DEGRADED level: an entry that reached it would DEGRADE the system it was
    placed by. SafetyConfig proves it is <= the auction budget; min() keeps the
    auction budget an upper bound even so.
    """
    return min(safety.degraded_margin_utilization_pct, safety.auction_max_margin_util)


def concurrency_room(open_count: int, safety: SafetyConfig) -> int:
    """New entries that may still open: max_concurrent_positions open is allowed, the
    invariant monitor HALTs only above it (core.invariants), so the next one is refused."""
    return max(0, safety.max_concurrent_positions - open_count)


def position_cap(equity: float, safety: SafetyConfig) -> float:
    """Largest notional of one position in USD (max_single_position_pct_equity x equity)."""
    return safety.max_single_position_pct_equity * equity


def risk_notional(entry: float, stop: float, equity: float, risk: RiskConfig) -> float:
    """Notional whose loss from entry to stop is risk_per_trade_pct x equity.

    contracts = risk$ / (|entry - stop| x contract_size), so notional = risk$ x entry / distance.
    """
    return risk.risk_per_trade_pct * equity * entry / abs(entry - stop)


# --- bad input, per candidate row ----------------------------------------------------------


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def input_denial(row: Mapping[str, Any], market: MarketTerms | None) -> Reason | None:
    """The first bad-input Reason of one candidate (None when its input is usable).

    `row` needs side, entry, stop and signal_score; `market` is the candidate's registry
    row (None: missing or listed twice)."""
    if market is None:
        return Reason.MARKET_MISSING
    if not market.precision_ok():
        return Reason.NO_PRECISION
    if not (market.tier in TRADEABLE_TIERS and market.tradeable is True):
        return Reason.NOT_TRADEABLE
    side = row["side"]
    if side not in _SIDES:
        return Reason.BAD_SIDE
    entry, stop = row["entry"], row["stop"]
    if not (_usable(entry) and _usable(stop)):
        return Reason.BAD_PRICE
    score = row["signal_score"]
    if not (score is not None and math.isfinite(score) and 0.0 <= score <= 1.0):
        return Reason.BAD_SCORE
    if entry == stop:
        return Reason.ZERO_STOP_DISTANCE
    # a long's stop sits below its entry, a short's above
    if (entry - stop) * (1.0 if side == PositionSide.LONG else -1.0) < 0:
        return Reason.STOP_WRONG_SIDE
    return None


_SIDES = frozenset(s.value for s in PositionSide)


def _override_denial(override: float | None) -> Reason | None:
    if override is not None and not (math.isfinite(override) and override > 0):
        return Reason.BAD_OVERRIDE
    return None


# --- the sequential part: each winner consumes margin and a concurrency slot ---------------


@dataclass(slots=True)
class _Book:
    """What earlier approvals of this cycle have used (rows are handled in rank order)."""

    margin: float
    room: int
    held: frozenset[str]
    taken: set[str] = field(default_factory=set)
    costs: float = 0.0  # reserved fees and slippage of this cycle's approved entries

    def take(self, symbol: str, margin: float, cost: float) -> None:
        self.margin += margin
        self.room -= 1
        self.taken.add(symbol)
        self.costs += cost


@dataclass(frozen=True, slots=True)
class _Verdict:
    status: IntentStatus
    reason: Reason | None
    entry: float | None
    stop: float | None
    tps: tuple[float | None, ...]
    size: float = 0.0
    notional: float = 0.0
    margin: float = 0.0
    requested_notional: float | None = None
    adjustments: tuple[Adjustment, ...] = ()
    tp_skipped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Ctx:
    account: AccountState
    safety: SafetyConfig
    risk: RiskConfig


@dataclass(frozen=True, slots=True)
class _Grid:
    entry: float
    stop: float
    distance: float
    plan: TpPlan


def _refuse(row: Mapping[str, Any], reason: Reason, **extra: Any) -> _Verdict:
    tps = tuple(row[c] for c in TP_COLUMNS)
    return _Verdict(IntentStatus.REFUSED, reason, row["entry"], row["stop"], tps, **extra)


def _lots_down(size: float, lot: float) -> float:
    """`size` less one lot, exactly on the lot grid (Decimal: no 0.3 - 0.1 drift)."""
    return max(0.0, float(Decimal(repr(size)) - Decimal(repr(lot))))


def _fit(raw: float, lot: float, fits: Callable[[float], bool]) -> float:
    """Largest lot multiple <= raw for which `fits` holds; 0.0 if none.

    `raw` is computed from the limit itself, so at most a lot or two of float
    error separates the floored size from one that fits.
    """
    size = floor_to_step(max(raw, 0.0), lot)
    for _ in range(2):
        if size <= 0 or fits(size):
            return size
        size = _lots_down(size, lot)
    return size if size > 0 and fits(size) else 0.0


def entry_cost(notional: float, risk: RiskConfig) -> float:
    """The fees and slippage reserved for an entry of this notional."""
    return notional * risk.entry_cost_reserve_bps / 1e4


def _book_denial(symbol: str, book: _Book) -> Reason | None:
    if symbol in book.held:
        return Reason.ALREADY_HELD
    if symbol in book.taken:
        return Reason.LOWER_SCORE_SAME_SYMBOL
    if book.room <= 0:
        return Reason.MAX_CONCURRENT
    return None


def _grid(row: Mapping[str, Any], market: MarketTerms, risk: RiskConfig) -> _Grid | Reason:
    """Entry rounded to the tick, stop rounded away from it, and the TP plan; or the denial."""
    side = PositionSide(row["side"])
    tick = market.tick_size
    entry = round_to_step(row["entry"], tick)
    # a stop rounded toward the entry would risk more than sized for
    stop = round_away(row["stop"], tick, up=side is PositionSide.SHORT)
    if entry <= 0 or stop <= 0:
        return Reason.BAD_PRICE
    toward_loss = 1.0 if side is PositionSide.LONG else -1.0
    distance = (entry - stop) * toward_loss
    if distance == 0:
        return Reason.ZERO_STOP_DISTANCE
    if distance < 0:
        return Reason.STOP_WRONG_SIDE
    levels = [row[c] for c in TP_COLUMNS]
    plan = plan_take_profits(side, entry, levels, tick, min_tp_distance(entry, risk))
    if plan.is_empty:
        return Reason.NO_TP_PLAN
    return _Grid(entry, stop, distance, plan)


def _size(
    row: Mapping[str, Any], market: MarketTerms, g: _Grid, book: _Book, ctx: _Ctx
) -> _Verdict:
    """Size from the stop distance (or the override), then clamp, dust, min size, margin."""
    equity, lot = ctx.account.equity, market.lot_size
    unit = market.contract_size * g.entry  # notional of one contract
    override = row["notional_override"]
    requested = (
        override if override is not None else risk_notional(g.entry, g.stop, equity, ctx.risk)
    )
    cap = position_cap(equity, ctx.safety)
    adjustments = [Adjustment.NOTIONAL_OVERRIDE] if override is not None else []
    if requested > cap:
        adjustments.append(Adjustment.CLAMPED_MAX_POSITION)
    size = _fit(min(requested, cap) / unit, lot, lambda s: s * unit <= cap)
    tps = tuple(g.plan.price(i) for i in range(1, len(TP_COLUMNS) + 1))
    common: dict[str, Any] = {
        "requested_notional": requested,
        "tp_skipped": g.plan.skipped_codes,
    }
    if size <= 0 or size * unit < ctx.risk.min_notional_viable:
        return _refuse(row, Reason.DUST, **common)
    if size < market.min_size:
        return _refuse(row, Reason.BELOW_MIN_SIZE, **common)
    lev = row["leverage"]
    ratio = entry_margin_ceiling(ctx.safety)
    cost_rate = ctx.risk.entry_cost_reserve_bps / 1e4

    def fits(s: float) -> bool:
        # Equity after paying this cycle's entry costs: fees must not tip margin over.
        equity_after = equity - book.costs - s * unit * cost_rate
        return book.margin + s * unit / lev < ratio * equity_after

    if not fits(size):
        adjustments.append(Adjustment.SHRUNK_TO_MARGIN)
        room = ratio * (equity - book.costs) - book.margin
        size = _fit(min(size, room / (unit / lev + ratio * unit * cost_rate)), lot, fits)
        viable = size > 0 and size * unit >= ctx.risk.min_notional_viable
        if not viable or size < market.min_size:
            return _refuse(row, Reason.MARGIN_LIMIT, **common)
    notional = size * unit
    return _Verdict(
        IntentStatus.APPROVED,
        None,
        g.entry,
        g.stop,
        tps,
        size=size,
        notional=notional,
        margin=notional / lev,
        adjustments=tuple(adjustments),
        **common,
    )


def _gate(row: Mapping[str, Any], market: MarketTerms | None, book: _Book, ctx: _Ctx) -> _Verdict:
    """The flat run of guard clauses for one new-entry candidate, in rank order."""
    if row["decision"] == Decision.LOST:
        return _refuse(row, Reason(row["reason"]))
    denial = (
        account_denial(ctx.account, ctx.safety)
        or input_denial(row, market)
        or _override_denial(row["notional_override"])
        or _book_denial(row["symbol"], book)
    )
    if denial is not None:
        return _refuse(row, denial)
    assert market is not None  # input_denial refuses a missing market
    grid = _grid(row, market, ctx.risk)
    if isinstance(grid, Reason):
        return _refuse(row, grid)
    verdict = _size(row, market, grid, book, ctx)
    if verdict.status is IntentStatus.APPROVED:
        book.take(row["symbol"], verdict.margin, entry_cost(verdict.notional, ctx.risk))
    return verdict


# --- the OrderIntents frame ----------------------------------------------------------------


def client_intent_id(
    cycle_id: str, symbol: str, side: str | None, signal_ts: datetime | None, strategy: str | None
) -> str:
    """Deterministic order idempotency key: 'smc-' + a hash of cycle, symbol, side, signal
    time and strategy, so a retried cycle produces the same id and the venue recognises it."""
    key = "|".join(
        [cycle_id, symbol, side or "", signal_ts.isoformat() if signal_ts else "", strategy or ""]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:CLIENT_ID_HASH_CHARS]
    return f"{CLIENT_ID_PREFIX}{digest}"


def _intent_id(seen: dict[str, int], cycle_id: str, row: Mapping[str, Any]) -> str:
    """The row's id; an exact repeat of a candidate gets '-2', '-3'... in rank order."""
    base = client_intent_id(cycle_id, row["symbol"], row["side"], row["ts"], row["strategy"])
    seen[base] = seen.get(base, 0) + 1
    out = base if seen[base] == 1 else f"{base}-{seen[base]}"
    assert len(out) <= MAX_CLIENT_ID_CHARS
    return out


def _intent_row(
    row: Mapping[str, Any],
    market: MarketTerms | None,
    v: _Verdict,
    intent_id: str,
    equity: float,
    cycle_id: str,
    ts: datetime,
) -> dict[str, Any]:
    """One OrderIntents row, in the table's column order."""
    tp1, tp2, tp3 = v.tps
    return {
        "cycle_id": cycle_id,
        "ts": ts,
        "client_intent_id": intent_id,
        "rank": row["rank"],
        "symbol": row["symbol"],
        "side": row["side"],
        "strategy": row["strategy"],
        "signal_ts": row["ts"],
        "tier": market.tier if market is not None else None,
        "regime": row["regime"],
        "score": row["score"],
        "entry": v.entry,
        "stop": v.stop,
        "tp1": tp1,
        "tp2": tp2,
        "tp3": tp3,
        "size": v.size,
        "notional": v.notional,
        "margin": v.margin,
        "leverage": row["leverage"],
        "requested_notional": v.requested_notional,
        "notional_override": row["notional_override"],
        "equity": equity,
        "status": v.status.value,
        "reason": v.reason.value if v.reason else None,
        "adjustments": ",".join(v.adjustments),
        "tp_skipped": ",".join(v.tp_skipped),
    }


def intents_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """OrderIntents rows as a frame of the table's schema (not validated here)."""
    return pl.DataFrame(list(rows), schema=polars_schema(OrderIntents))


def risk_rows(
    allocations: Iterable[Mapping[str, Any]],
    markets: MarketBook,
    account: AccountState,
    safety: SafetyConfig,
    risk: RiskConfig,
    open_positions: Sequence[OpenPosition],
    *,
    cycle_id: str,
    ts: datetime,
) -> list[dict[str, Any]]:
    """OrderIntents rows: one per new-entry candidate of `allocations`, in auction rank order.

    Approved rows are sized (contracts on the lot grid, prices on the tick grid, the TP
    plan with skipped levels null). Refused rows carry the Reason of the first gate that
    denied them, auction losses included. Held positions (reaffirmed) produce no row:
    no order churn. Raises only on a naive `ts`, never for a bad candidate; the positions
    are trusted here (`apply_risk` validates them).
    """
    if ts.tzinfo is None:
        raise ValueError(f"apply_risk: ts {ts} is naive; pass a timezone-aware UTC time")
    new = sorted((r for r in allocations if r["kind"] == CandidateKind.NEW), key=_by_rank)
    book = _Book(
        margin=account.margin_used,
        room=concurrency_room(len(open_positions), safety),
        held=frozenset(p.symbol for p in open_positions),
    )
    ctx = _Ctx(account, safety, risk)
    seen: dict[str, int] = {}
    out = []
    for r in new:
        market = markets.terms.get(r["symbol"])
        lev = market.leverage(risk.default_leverage) if market is not None else None
        row = {**r, "leverage": lev}
        verdict = _gate(row, market, book, ctx)
        intent = _intent_row(
            row, market, verdict, _intent_id(seen, cycle_id, r), account.equity, cycle_id, ts
        )
        _log_verdict(intent)
        out.append(intent)
    return out


def _by_rank(row: Mapping[str, Any]) -> int:
    return row["rank"]


def apply_risk(
    allocations: pl.DataFrame,
    markets: pl.DataFrame | MarketBook,
    account: AccountState,
    safety: SafetyConfig,
    risk: RiskConfig,
    open_positions: Sequence[OpenPosition] | pl.DataFrame,
    *,
    cycle_id: str,
    ts: datetime,
) -> pl.DataFrame:
    """`risk_rows` on frames, as a validated OrderIntents frame. Raises on a malformed frame
    or held position (pandera's SchemaError) or a naive `ts`, never for a bad candidate."""
    held = validated_positions(open_positions)
    rows = risk_rows(
        allocations.to_dicts(),
        MarketBook.of(markets),
        account,
        safety,
        risk,
        held,
        cycle_id=cycle_id,
        ts=ts,
    )
    return OrderIntents.validate(intents_frame(rows))


def _log_verdict(r: Mapping[str, Any]) -> None:
    log.info(
        "intent %s symbol=%s side=%s reason=%s size=%s notional=%.2f",
        r["status"],
        r["symbol"],
        r["side"],
        r["reason"],
        r["size"],
        r["notional"],
    )
