"""Stages 4–5 as engine code: the auction selects, the risk manager sizes and gates.

The live cycle stores what this returns (tasks/allocation.py); a backtest keeps the rows in
memory. One function, so both make the same decisions from the same inputs: the auction
and the risk manager run on rows (core/auction.py, core/risk.py); the frames a live cycle
stores and shows are built from those rows when asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import polars as pl

from core.auction import AuctionResult, run_auction_rows, signal_rows
from core.engine.account import position_notional
from core.market_book import MarketBook
from core.orders import PositionReport
from core.risk import (
    AccountState,
    OpenPosition,
    intents_frame,
    risk_rows,
    validated_positions,
)
from schemas.allocation import IntentStatus, OrderIntents
from schemas.config import AppConfig


class AllocationResult:
    """The auction's result and the risk manager's intents (OrderIntents rows, rank order).
    `intents` is the validated frame of those rows, built when first asked."""

    __slots__ = ("_frame", "auction", "intent_rows")

    def __init__(self, auction: AuctionResult, intent_rows: list[dict[str, Any]]) -> None:
        self.auction = auction
        self.intent_rows = intent_rows
        self._frame: pl.DataFrame | None = None

    @property
    def intents(self) -> pl.DataFrame:
        if self._frame is None:
            self._frame = OrderIntents.validate(intents_frame(self.intent_rows))
        return self._frame

    @property
    def approved(self) -> int:
        return sum(1 for r in self.intent_rows if r["status"] == IntentStatus.APPROVED)


def open_positions(
    reports: list[PositionReport], markets: pl.DataFrame | MarketBook, default_leverage: float
) -> list[OpenPosition]:
    """Venue positions as the auction's candidates, margin at the leverage we size with."""
    book = MarketBook.of(markets)
    out = []
    for p in reports:
        if p.size <= 0:
            continue
        row = book.rows.get(p.symbol)
        max_leverage = row["max_leverage"] if row is not None else None
        leverage = min(default_leverage, max_leverage or default_leverage)
        notional = position_notional(p, book.contract_sizes.get(p.symbol))
        out.append(
            OpenPosition(p.symbol, p.side, p.size, p.entry_price, p.mark_price, notional / leverage)
        )
    return out


def allocate(
    signals: pl.DataFrame | Iterable[Mapping[str, Any]],
    markets: pl.DataFrame | MarketBook,
    positions: list[OpenPosition],
    account: AccountState,
    config: AppConfig,
    *,
    cycle_id: int,
    ts: datetime,
) -> AllocationResult:
    """Winners within the margin budget, then sized, clamped and gated order intents.

    `signals` is a Signals frame or its rows (`core.auction.signal_rows`)."""
    rows = signal_rows(signals) if isinstance(signals, pl.DataFrame) else signals
    book = MarketBook.of(markets)
    positions = validated_positions(positions)
    auction = run_auction_rows(rows, positions, book, account, config.safety, config.risk)
    intents = risk_rows(
        auction.rows,
        book,
        account,
        config.safety,
        config.risk,
        positions,
        cycle_id=str(cycle_id),
        ts=ts,
    )
    return AllocationResult(auction, intents)

