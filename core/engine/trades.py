"""From what the engine kept (position records, attributed fills, the log) to closed trades,
and from the gate trace to the gate funnel: the inputs of the backtest report.

A trade is one position from its first entry fill to flat. Its PnL is what its fills
realised (exits against the average entry, contract size included) less every fee and
the funding paid while it was open; a position still open at the end of the data is
marked at the last close and counted with exit reason `end_of_data`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from core.actions import ActionType
from core.engine.state import MemoryState
from core.metrics import ExitReason, TradeRecord
from core.orders import Fill, PositionSide
from core.positions import Position, PositionState
from core.smc.gates import SMC_GATES

FUNNEL_GATES = (*SMC_GATES, "gate_momentum")


@dataclass(frozen=True, slots=True)
class FundingPayment:
    ts: datetime
    symbol: str
    cash: float  # paid (< 0) or received (> 0) by the account


def _vwap(fills: Sequence[Fill]) -> float:
    size = sum(f.size for f in fills)
    return sum(f.size * f.price for f in fills) / size


def _exit_reason(
    p: Position, last_exit: Fill | None, kinds: Mapping[str, tuple[str, int | None]]
) -> ExitReason:
    if p.state is not PositionState.CLOSED:
        return ExitReason.END_OF_DATA
    if last_exit is None:
        return ExitReason.UNKNOWN
    kind, level = kinds.get(last_exit.client_id or "", ("", None))
    if kind in (ActionType.PLACE_STOP, ActionType.MOVE_STOP):
        return ExitReason.STOP
    if kind == ActionType.PLACE_TP and level in (1, 2, 3):
        return ExitReason(f"tp{level}")
    if kind == ActionType.FLATTEN:
        reason = p.close_reason or ""
        return ExitReason.KILL_SWITCH if "kill switch" in reason else ExitReason.FLATTEN
    return ExitReason.UNKNOWN


def trades_of(
    state: MemoryState,
    *,
    initial_stops: Mapping[str, float],
    contract_sizes: Mapping[str, float],
    funding: Sequence[FundingPayment],
    end: datetime,
    last_close: Mapping[str, float],
) -> list[TradeRecord]:
    """Every position that was entered, as a closed (or end-of-data) trade, by entry time."""
    by_position: dict[str, list[Fill]] = {}
    for fill, pid in state.fills.values():
        if pid is not None:
            by_position.setdefault(pid, []).append(fill)
    kinds: dict[str, tuple[str, int | None]] = {}
    for e in state.intents.values():
        if e.client_id is not None:
            level = json.loads(e.payload).get("level")
            kinds[e.client_id] = (e.action_type, level if isinstance(level, int) else None)
    trades = []
    for pid, fills in by_position.items():
        p = state.positions.get(pid)
        if p is None:
            continue
        trade = _trade(p, fills, kinds, initial_stops, contract_sizes, funding, end, last_close)
        if trade is not None:
            trades.append(trade)
    return sorted(trades, key=lambda t: (t.entry_ts, t.position_id))


def _trade(
    p: Position,
    fills: list[Fill],
    kinds: Mapping[str, tuple[str, int | None]],
    initial_stops: Mapping[str, float],
    contract_sizes: Mapping[str, float],
    funding: Sequence[FundingPayment],
    end: datetime,
    last_close: Mapping[str, float],
) -> TradeRecord | None:
    fills = sorted(fills, key=lambda f: (f.ts, f.fill_id))
    entries = [f for f in fills if f.client_id == p.entry_client_id]
    exits = [f for f in fills if f.client_id != p.entry_client_id]
    if not entries:
        return None
    unit = contract_sizes.get(p.symbol, 1.0)
    sign = 1.0 if p.side is PositionSide.LONG else -1.0
    entry_price = _vwap(entries)
    size = sum(f.size for f in entries)
    closed = p.state is PositionState.CLOSED
    remaining = max(size - sum(f.size for f in exits), 0.0) if not closed else 0.0
    gross = sum(sign * (f.price - entry_price) * f.size * unit for f in exits)
    exit_parts = [(f.price, f.size) for f in exits]
    if remaining > 0:
        mark = last_close.get(p.symbol, entry_price)
        gross += sign * (mark - entry_price) * remaining * unit
        exit_parts.append((mark, remaining))
    exit_size = sum(s for _, s in exit_parts)
    exit_price = sum(px * s for px, s in exit_parts) / exit_size if exit_size else entry_price
    entry_ts = entries[0].ts
    exit_ts = exits[-1].ts if closed and exits else end
    fees = sum(f.fee for f in fills)
    paid = -sum(
        f.cash for f in funding if f.symbol == p.symbol and entry_ts < f.ts <= exit_ts
    )
    stop = initial_stops.get(p.position_id)
    risk = abs(entry_price - stop) * size * unit if stop is not None else 0.0
    return TradeRecord(
        position_id=p.position_id,
        symbol=p.symbol,
        side=p.side,
        entry_ts=entry_ts,
        exit_ts=max(exit_ts, entry_ts),
        entry_price=entry_price,
        exit_price=exit_price,
        size=size * unit,
        pnl=gross - fees - paid,
        fees=fees,
        funding=paid,
        risk=risk,
        exit_reason=_exit_reason(p, exits[-1] if exits else None, kinds),
    )


def gate_funnel(trace: pl.DataFrame) -> pl.DataFrame:
    """Decisions stopped at each gate (its first failing gate), in gate order, then signals."""
    if trace.height == 0:
        return pl.DataFrame({"gate": [], "rejections": []}, schema={"gate": pl.String,
                                                                     "rejections": pl.Int64})
    failed = pl.lit(None, pl.String)
    for gate in reversed(FUNNEL_GATES):
        failed = pl.when(pl.col(gate) == "fail").then(pl.lit(gate)).otherwise(failed)
    first = trace.select(
        pl.when(pl.col("signal")).then(pl.lit("signal")).otherwise(failed).alias("gate")
    )
    counts = dict(first.group_by("gate").len().iter_rows())
    order = [*FUNNEL_GATES, "signal"]
    return pl.DataFrame(
        {"gate": order, "rejections": [int(counts.get(g, 0)) for g in order]},
        schema={"gate": pl.String, "rejections": pl.Int64},
    )
