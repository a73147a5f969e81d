"""Frames and codes of the auction allocator and the risk manager (SPEC §4, §5).

Candidates (signals + held positions) -> Allocations (the auction's decision
per candidate) -> OrderIntents (the risk manager's verdict per new-entry
candidate: approved with a size, or refused with a reason). OrderIntents is
stored as the `order_intents` table; its column order is fixed (`ordered`).

The reason codes live here, beside the frames that carry them, so the schema
can check them and SQL users read one list.
"""

from __future__ import annotations

import functools
from enum import StrEnum

import pandera.polars as pa
import polars as pl

from schemas.frames import UtcTs

MAX_CLIENT_ID_CHARS = 100  # Kraken Futures cliOrdId limit


class CandidateKind(StrEnum):
    NEW = "new"  # a signal of this cycle: a possible new entry
    HELD = "held"  # an open position competing to be reaffirmed


class Decision(StrEnum):
    REAFFIRMED = "reaffirmed"  # held position kept: no order
    SELECTED = "selected"  # new entry won budget: goes to the risk manager
    LOST = "lost"  # refused by the auction, with a Reason


class IntentStatus(StrEnum):
    APPROVED = "approved"
    REFUSED = "refused"


class Reason(StrEnum):
    """Why a candidate lost the auction or an intent was refused."""

    # account-level: no new entries at all
    ACCOUNT_INVALID = "ACCOUNT_INVALID"  # equity not positive and finite, or margin unknown
    SYSTEM_HALTED = "SYSTEM_HALTED"
    SYSTEM_DEGRADED = "SYSTEM_DEGRADED"
    DRAWDOWN = "DRAWDOWN"  # equity below high-water by the DEGRADED drawdown or more
    # bad input: this candidate only, the others proceed
    MARKET_MISSING = "MARKET_MISSING"
    NO_PRECISION = "NO_PRECISION"  # contract/tick/lot/min size or max leverage missing
    NOT_TRADEABLE = "NOT_TRADEABLE"  # tier REJECT or registry says not tradeable
    BAD_SIDE = "BAD_SIDE"
    BAD_PRICE = "BAD_PRICE"  # entry or stop NaN, infinite or not positive
    BAD_SCORE = "BAD_SCORE"  # signal score NaN or outside 0..1
    BAD_OVERRIDE = "BAD_OVERRIDE"  # notional_override NaN, infinite or not positive
    STOP_WRONG_SIDE = "STOP_WRONG_SIDE"
    ZERO_STOP_DISTANCE = "ZERO_STOP_DISTANCE"  # also after rounding to the tick
    NO_TP_PLAN = "NO_TP_PLAN"  # every take-profit level passed, too close or invalid
    # competition and limits
    ALREADY_HELD = "ALREADY_HELD"
    LOWER_SCORE_SAME_SYMBOL = "LOWER_SCORE_SAME_SYMBOL"
    MAX_CONCURRENT = "MAX_CONCURRENT"
    BUDGET = "BUDGET"  # auction margin budget exhausted
    DUST = "DUST"  # notional below min_notional_viable after clamps
    BELOW_MIN_SIZE = "BELOW_MIN_SIZE"  # contracts below the market's min_size
    MARGIN_LIMIT = "MARGIN_LIMIT"  # no viable size keeps margin below the DEGRADED level


class Adjustment(StrEnum):
    """What the risk manager changed on an approved intent (comma-joined in `adjustments`)."""

    NOTIONAL_OVERRIDE = "notional_override"  # sized from the auction's override, not the stop
    CLAMPED_MAX_POSITION = "clamped_max_position"  # cut to max_single_position_pct_equity
    SHRUNK_TO_MARGIN = "shrunk_to_margin"  # cut to keep margin below the DEGRADED level


_REASONS = [r.value for r in Reason]


class OpenPositions(pa.DataFrameModel):
    """Positions held now, as the auction and risk manager read them."""

    symbol: str = pa.Field(unique=True)
    side: str = pa.Field(isin=["long", "short"])
    size: float = pa.Field(gt=0, description="contracts")
    entry_price: float = pa.Field(gt=0)
    mark_price: float = pa.Field(nullable=True)
    margin: float = pa.Field(ge=0, description="initial margin in use, settlement currency")

    class Config:
        strict = "filter"
        coerce = True


class Candidates(pa.DataFrameModel):
    """This cycle's signals and the held positions, scored. Bad rows are kept (and lose)."""

    kind: str = pa.Field(isin=[k.value for k in CandidateKind])
    symbol: str
    side: str = pa.Field(nullable=True)
    strategy: str = pa.Field(nullable=True, description="null for held positions")
    ts: UtcTs = pa.Field(nullable=True, description="signal decision time; null when held")  # type: ignore[valid-type]
    entry: float = pa.Field(nullable=True, description="signal entry, or held entry price")
    stop: float = pa.Field(nullable=True)
    tp1: float = pa.Field(nullable=True)
    tp2: float = pa.Field(nullable=True)
    tp3: float = pa.Field(nullable=True)
    regime: str = pa.Field(nullable=True)
    signal_score: float = pa.Field(nullable=True)
    tier: str = pa.Field(nullable=True, description="from the market registry; null if missing")
    score: float = pa.Field(nullable=True, description="auction score (see core.auction)")
    size: float = pa.Field(nullable=True, description="held contracts; null for signals")
    mark_price: float = pa.Field(nullable=True)
    held_margin: float = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True


class Allocations(Candidates):
    """The auction's decision for every candidate, in rank order."""

    rank: int = pa.Field(ge=1, unique=True)
    decision: str = pa.Field(isin=[d.value for d in Decision])
    reason: str = pa.Field(nullable=True, isin=_REASONS, description="set when lost")
    leverage: float = pa.Field(nullable=True)
    planned_notional: float = pa.Field(nullable=True, description="auction's size estimate")
    planned_margin: float = pa.Field(nullable=True)
    notional_override: float = pa.Field(
        nullable=True, description="set on a winner that only partly fits the budget"
    )

    @pa.dataframe_check(error="a lost candidate needs a reason, a winner has none")
    def reason_iff_lost(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("decision") == Decision.LOST) == pl.col("reason").is_not_null()
        )


class OrderIntents(pa.DataFrameModel):
    """The `order_intents` table: one row per new-entry candidate of a cycle.

    Approved rows carry grid-rounded prices, the planned take-profits (null =
    skipped level) and a size; refused rows carry the signal's prices as
    received, size 0 and the reason. Held positions produce no intent.
    """

    cycle_id: str
    ts: UtcTs = pa.Field(description="cycle decision time, UTC")  # type: ignore[valid-type]
    client_intent_id: str = pa.Field(
        unique=True, str_length={"min_value": 1, "max_value": MAX_CLIENT_ID_CHARS}
    )
    rank: int = pa.Field(ge=1, description="auction rank")
    symbol: str
    side: str = pa.Field(nullable=True)
    strategy: str = pa.Field(nullable=True)
    signal_ts: UtcTs = pa.Field(nullable=True)  # type: ignore[valid-type]
    tier: str = pa.Field(nullable=True)
    regime: str = pa.Field(nullable=True)
    score: float = pa.Field(nullable=True, description="auction score")
    entry: float = pa.Field(nullable=True)
    stop: float = pa.Field(nullable=True)
    tp1: float = pa.Field(nullable=True)
    tp2: float = pa.Field(nullable=True)
    tp3: float = pa.Field(nullable=True)
    size: float = pa.Field(ge=0, description="contracts, a multiple of the lot size")
    notional: float = pa.Field(ge=0, description="size x contract_size x entry, USD")
    margin: float = pa.Field(ge=0, description="notional / leverage")
    leverage: float = pa.Field(nullable=True)
    requested_notional: float = pa.Field(nullable=True, description="before clamps")
    notional_override: float = pa.Field(nullable=True)
    equity: float = pa.Field(nullable=True, description="account equity; NaN only when invalid")
    status: str = pa.Field(isin=[s.value for s in IntentStatus])
    reason: str = pa.Field(nullable=True, isin=_REASONS, description="null when approved")
    adjustments: str = pa.Field(description="comma-joined Adjustment codes, '' if none")
    tp_skipped: str = pa.Field(description="comma-joined 'tpN:CODE', '' if none")

    class Config:
        strict = True
        ordered = True
        coerce = True

    @pa.dataframe_check(error="approved rows have no reason; refused rows have one")
    def reason_iff_refused(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("status") == IntentStatus.REFUSED) == pl.col("reason").is_not_null()
        )

    @pa.dataframe_check(error="an approved intent needs positive finite size, prices and margin")
    def approved_is_tradeable(cls, data: pa.PolarsData) -> pl.LazyFrame:
        ok = pl.all_horizontal(
            (pl.col(c) > 0) & pl.col(c).is_finite()
            for c in ("size", "notional", "margin", "entry", "stop")
        ).fill_null(False)
        return data.lazyframe.select((pl.col("status") != IntentStatus.APPROVED) | ok)

    @pa.dataframe_check(error="a refused intent has size, notional and margin 0")
    def refused_is_empty(cls, data: pa.PolarsData) -> pl.LazyFrame:
        empty = (pl.col("size") == 0) & (pl.col("notional") == 0) & (pl.col("margin") == 0)
        return data.lazyframe.select((pl.col("status") != IntentStatus.REFUSED) | empty)


def polars_schema(model: type[pa.DataFrameModel]) -> pl.Schema:
    """The polars schema (names, dtypes, order) a pandera model describes: build empty frames.
    A fresh copy each call (callers may change it) of a schema read once per model."""
    return pl.Schema(_dtypes(model))


@functools.cache
def _dtypes(model: type[pa.DataFrameModel]) -> tuple[tuple[str, pl.DataType], ...]:
    # the backtest asks thousands of times; the model's columns never change at run time
    return tuple((name, col.dtype.type) for name, col in model.to_schema().columns.items())
