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

import functools
import hashlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import polars as pl

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

PRECISION_COLUMNS = ("contract_size", "tick_size", "lot_size", "min_size", "max_leverage")
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


def leverage_expr(risk: RiskConfig) -> pl.Expr:
    """Leverage used for margin: RiskConfig.default_leverage, never above the market's
    max_leverage (needs the `with_market` columns)."""
    capped = pl.min_horizontal(pl.col("max_leverage"), pl.lit(risk.default_leverage))
    return pl.when(pl.col("max_leverage").is_not_null()).then(capped).alias("leverage")


# --- bad input, one expression over the whole candidate frame ------------------------------


def with_market(frame: pl.DataFrame, markets: pl.DataFrame) -> pl.DataFrame:
    """`frame` with each row's market (tier, tradeable, precision) joined by symbol.

    Adds `market_found`. A symbol listed twice in `markets` counts as missing: the
    registry must be the single authority, so an ambiguous entry is not trusted.
    """
    market_cols = ["symbol", "tier", *PRECISION_COLUMNS]
    m = markets.select(
        *market_cols,
        (pl.col("tradeable") if "tradeable" in markets.columns else pl.lit(True)).alias(
            "tradeable"
        ),
    ).filter(pl.col("symbol").is_unique())
    m = m.with_columns(
        pl.col(PRECISION_COLUMNS).cast(pl.Float64),
        pl.col("tier").alias("market_tier"),
        pl.lit(True).alias("market_found"),
    ).drop("tier")
    joined = frame.join(m, on="symbol", how="left", maintain_order="left")
    return joined.with_columns(pl.col("market_found").fill_null(False))


def _usable(col: str) -> pl.Expr:
    return (pl.col(col).is_finite() & (pl.col(col) > 0)).fill_null(False)


@functools.cache  # an immutable expression; building it costs more than evaluating it
def input_denial() -> pl.Expr:
    """The first bad-input Reason of each candidate row (null when the input is usable).

    Needs the columns of `with_market` plus side, entry, stop and signal_score.
    """
    precision_ok = pl.all_horizontal(
        *(_usable(c) for c in PRECISION_COLUMNS if c != "min_size"),
        (pl.col("min_size").is_finite() & (pl.col("min_size") >= 0)).fill_null(False),
    )
    tradeable = pl.col("market_tier").is_in(TRADEABLE_TIERS) & pl.col("tradeable")
    score_ok = pl.col("signal_score").is_finite() & pl.col("signal_score").is_between(0.0, 1.0)
    toward_loss = pl.when(pl.col("side") == PositionSide.LONG).then(1.0).otherwise(-1.0)
    return (
        pl.when(~pl.col("market_found"))
        .then(pl.lit(Reason.MARKET_MISSING.value))
        .when(~precision_ok)
        .then(pl.lit(Reason.NO_PRECISION.value))
        .when(~tradeable.fill_null(False))
        .then(pl.lit(Reason.NOT_TRADEABLE.value))
        .when(~pl.col("side").is_in([s.value for s in PositionSide]).fill_null(False))
        .then(pl.lit(Reason.BAD_SIDE.value))
        .when(~(_usable("entry") & _usable("stop")))
        .then(pl.lit(Reason.BAD_PRICE.value))
        .when(~score_ok.fill_null(False))
        .then(pl.lit(Reason.BAD_SCORE.value))
        .when(pl.col("entry") == pl.col("stop"))
        .then(pl.lit(Reason.ZERO_STOP_DISTANCE.value))
        # a long's stop sits below its entry, a short's above
        .when((pl.col("entry") - pl.col("stop")) * toward_loss < 0)
        .then(pl.lit(Reason.STOP_WRONG_SIDE.value))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def _override_denial() -> pl.Expr:
    override = pl.col("notional_override")
    bad = override.is_not_null() & ~(override.is_finite() & (override > 0)).fill_null(False)
    return pl.when(bad).then(pl.lit(Reason.BAD_OVERRIDE.value)).otherwise(None)


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


def _grid(row: Mapping[str, Any], risk: RiskConfig) -> _Grid | Reason:
    """Entry rounded to the tick, stop rounded away from it, and the TP plan; or the denial."""
    side = PositionSide(row["side"])
    tick = row["tick_size"]
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


def _size(row: Mapping[str, Any], g: _Grid, book: _Book, ctx: _Ctx) -> _Verdict:
    """Size from the stop distance (or the override), then clamp, dust, min size, margin."""
    equity, lot = ctx.account.equity, row["lot_size"]
    unit = row["contract_size"] * g.entry  # notional of one contract
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
    if size < row["min_size"]:
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
        if not viable or size < row["min_size"]:
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


def _gate(row: Mapping[str, Any], book: _Book, ctx: _Ctx) -> _Verdict:
    """The flat run of guard clauses for one new-entry candidate, in rank order."""
    if row["decision"] == Decision.LOST:
        return _refuse(row, Reason(row["reason"]))
    denial = (
        account_denial(ctx.account, ctx.safety)
        or _as_reason(row["input_reason"])
        or _as_reason(row["override_reason"])
        or _book_denial(row["symbol"], book)
    )
    if denial is not None:
        return _refuse(row, denial)
    grid = _grid(row, ctx.risk)
    if isinstance(grid, Reason):
        return _refuse(row, grid)
    verdict = _size(row, grid, book, ctx)
    if verdict.status is IntentStatus.APPROVED:
        book.take(row["symbol"], verdict.margin, entry_cost(verdict.notional, ctx.risk))
    return verdict


def _as_reason(value: str | None) -> Reason | None:
    return Reason(value) if value is not None else None


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


def _intent_ids(rows: pl.DataFrame, cycle_id: str) -> list[str]:
    """One id per row; an exact repeat of a candidate gets '-2', '-3'... in rank order."""
    seen: dict[str, int] = {}
    ids: list[str] = []
    for r in rows.select("symbol", "side", "ts", "strategy").iter_rows(named=True):
        base = client_intent_id(cycle_id, r["symbol"], r["side"], r["ts"], r["strategy"])
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    assert all(len(i) <= MAX_CLIENT_ID_CHARS for i in ids)
    return ids


VERDICT_COLUMNS = (
    "entry",
    "stop",
    *TP_COLUMNS,
    "size",
    "notional",
    "margin",
    "requested_notional",
    "status",
    "reason",
    "adjustments",
    "tp_skipped",
)


def _verdict_columns(verdicts: list[_Verdict]) -> dict[str, list[Any]]:
    return {
        "entry": [v.entry for v in verdicts],
        "stop": [v.stop for v in verdicts],
        **{c: [v.tps[i] for v in verdicts] for i, c in enumerate(TP_COLUMNS)},
        "size": [v.size for v in verdicts],
        "notional": [v.notional for v in verdicts],
        "margin": [v.margin for v in verdicts],
        "requested_notional": [v.requested_notional for v in verdicts],
        "status": [v.status.value for v in verdicts],
        "reason": [v.reason.value if v.reason else None for v in verdicts],
        "adjustments": [",".join(v.adjustments) for v in verdicts],
        "tp_skipped": [",".join(v.tp_skipped) for v in verdicts],
    }


def _intents_frame(
    rows: pl.DataFrame, verdicts: list[_Verdict], equity: float, cycle_id: str, ts: datetime
) -> pl.DataFrame:
    schema = polars_schema(OrderIntents)
    decided = pl.DataFrame(
        _verdict_columns(verdicts), schema={c: schema[c] for c in VERDICT_COLUMNS}
    )
    base = rows.select(
        pl.lit(cycle_id).alias("cycle_id"),
        pl.lit(ts).cast(schema["ts"]).alias("ts"),
        pl.Series("client_intent_id", _intent_ids(rows, cycle_id), dtype=pl.String),
        "rank",
        "symbol",
        "side",
        "strategy",
        pl.col("ts").alias("signal_ts"),
        pl.col("market_tier").alias("tier"),
        "regime",
        "score",
        "leverage",
        "notional_override",
        pl.lit(equity, dtype=pl.Float64).alias("equity"),
    )
    return pl.concat([base, decided], how="horizontal").select(schema.names()).cast(schema)


def apply_risk(
    allocations: pl.DataFrame,
    markets: pl.DataFrame,
    account: AccountState,
    safety: SafetyConfig,
    risk: RiskConfig,
    open_positions: Sequence[OpenPosition] | pl.DataFrame,
    *,
    cycle_id: str,
    ts: datetime,
) -> pl.DataFrame:
    """OrderIntents: one row per new-entry candidate of `allocations`, in auction rank order.

    Approved rows are sized (contracts on the lot grid, prices on the tick grid, the TP
    plan with skipped levels null). Refused rows carry the Reason of the first gate that
    denied them, auction losses included. Held positions (reaffirmed) produce no row:
    no order churn. Raises only on a malformed frame or a naive `ts`, never for a bad
    candidate.
    """
    if ts.tzinfo is None:
        raise ValueError(f"apply_risk: ts {ts} is naive; pass a timezone-aware UTC time")
    held = positions_frame(open_positions)
    new = allocations.filter(pl.col("kind") == CandidateKind.NEW).sort("rank")
    rows = (
        with_market(new, markets)
        .with_columns(
            input_reason=input_denial(),
            override_reason=_override_denial(),
        )
        .with_columns(leverage_expr(risk))
    )
    book = _Book(
        margin=account.margin_used,
        room=concurrency_room(held.height, safety),
        held=frozenset(held["symbol"].to_list()),
    )
    ctx = _Ctx(account, safety, risk)
    verdicts = [_gate(row, book, ctx) for row in rows.iter_rows(named=True)]
    intents = _intents_frame(rows, verdicts, account.equity, cycle_id, ts)
    _log_verdicts(intents)
    return OrderIntents.validate(intents)


def _log_verdicts(intents: pl.DataFrame) -> None:
    for r in intents.select("symbol", "side", "status", "reason", "notional", "size").iter_rows(
        named=True
    ):
        log.info(
            "intent %s symbol=%s side=%s reason=%s size=%s notional=%.2f",
            r["status"],
            r["symbol"],
            r["side"],
            r["reason"],
            r["size"],
            r["notional"],
        )
