"""What a backtest produces: the run's description, its trades, equity and decisions.

The engine fills these in; the store persists them (backtest_runs, backtest_trades,
backtest_equity, and the gate trace and intents of every decision); the reports
(terminal, Prefect artifacts, HTML, PNG) read them. Pure records: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import polars as pl

from core.metrics import BacktestMetrics, TradeRecord


class IntrabarOrder(StrEnum):
    """When a stop and a take-profit both lie inside one bar, which filled first."""

    STOP_FIRST = "stop_first"  # the conservative default: the stop fills, the TP is cancelled
    LOWER_TIMEFRAME = "lower_timeframe"  # 15m/5m/1m candles in the data dir decide, if present


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FillModel:
    """How the simulated venue fills, stated in every report."""

    maker_fee: float  # Kraken Futures lowest tier: 0.02 %
    taker_fee: float  # 0.05 %
    slippage_bps: float  # on market and stop fills
    intrabar: IntrabarOrder
    funding: str  # where funding comes from and how it accrues, e.g. "data files, every 8 h"
    grid: str = "lot and tick of the market definitions"

    def lines(self) -> list[str]:
        return [
            f"fees: maker {self.maker_fee:.4%}, taker {self.taker_fee:.4%}",
            f"slippage: {self.slippage_bps:g} bps on market and stop fills",
            f"inside a bar: {self.intrabar}"
            + (
                " (a stop and a take-profit in one bar: the stop fills first)"
                if self.intrabar is IntrabarOrder.STOP_FIRST
                else " (a stop and a take-profit in one bar: the data dir's finest 15m/5m/1m "
                "candles of that hour decide which was reached first; the stop first for a "
                "market without them or an hour they do not cover; see market notes)"
            ),
            f"funding: {self.funding}",
            f"sizes and prices: {self.grid}",
        ]


@dataclass(frozen=True, slots=True)
class BacktestRun:
    """One backtest: its key (config hash, data range, code version) and how it ran."""

    run_id: str
    config_hash: str
    config: dict[str, Any]  # the full effective configuration
    data_dir: str
    start: datetime  # first decision time, UTC
    end: datetime  # last decision time, UTC
    markets: tuple[str, ...]
    code_version: str
    fill_model: FillModel
    initial_equity: float
    status: RunStatus = RunStatus.RUNNING
    duration_s: float | None = None
    market_errors: dict[str, str] = field(default_factory=dict)  # symbol -> what was wrong


@dataclass(frozen=True)
class BacktestResult:
    """Everything a finished run produced.

    Frames (polars, UTC timestamps):
    - equity: ts, equity, cash, margin_used, open_positions, system_state (one row per hour)
    - decisions: the gate trace of every decision (the live cycle's gate_trace columns)
    - signals: every signal (the live cycle's signals columns)
    - intents: every order intent, approved or refused (the live order_intents columns)
    - fills: every fill (fill_id, ts, symbol, side, size, price, fee, position_id)
    - funnel: gate, rejections (decisions stopped at each gate, in gate order)
    - orders: the write-ahead log: every order the engine sent (client_id, action_type,
      symbol, side, state, venue_order_id, cycle_id, payload)
    """

    run: BacktestRun
    trades: tuple[TradeRecord, ...]
    metrics: BacktestMetrics
    equity: pl.DataFrame
    decisions: pl.DataFrame
    signals: pl.DataFrame
    intents: pl.DataFrame
    fills: pl.DataFrame
    funnel: pl.DataFrame
    orders: pl.DataFrame = field(default_factory=pl.DataFrame)
