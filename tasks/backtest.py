"""A backtest over stored candles: the cycle's own decision code, hour by hour, in memory.

Prepare (load the replay folder, scan every decision hour with the SMC engine exactly as
`trader signals` does, tier the markets), then run the engine loop
(core/engine/backtest.py) on a stepped paper venue and in-memory state, then collect
trades, equity, decisions and metrics into a BacktestResult (core/backtest_result.py).
"""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from core.backtest_result import (
    BacktestResult,
    BacktestRun,
    FillModel,
    IntrabarOrder,
    RunStatus,
)
from core.engine.backtest import HourInput, marks_frame, run_hours
from core.engine.state import MemoryState
from core.engine.trades import gate_funnel, trades_of
from core.errors import ConfigError, DataError
from core.market_book import MarketBook
from core.metrics import EquityCurve, compute_metrics
from core.registry import registry_rows
from core.risk import intents_frame
from core.smc import scan_signals
from core.sweep_space import config_hash
from schemas.allocation import OrderIntents
from schemas.config import AppConfig
from schemas.frames import Markets, polars_schema
from schemas.smc import GateTrace, SmcSignals
from schemas.strategy import StrategyConfig
from venues.paper import FundingSchedule, PaperConfig
from venues.paper.intrabar import LowerTimeframes, read_lower_timeframes
from venues.paper.stepped import SteppedPaperVenue
from venues.replay import ReplayFolder, ReplayVenue, read_folder

log = logging.getLogger("smc_trader.backtest")
H = timedelta(hours=1)


@dataclass(frozen=True)
class BacktestRequest:
    data_dir: Path
    config: AppConfig
    start: datetime | None = None  # first decision (UTC); default: the replay warm-up
    end: datetime | None = None  # last decision (UTC); default: the data's last close
    markets: tuple[str, ...] = ()  # base assets (BTC, ETH); empty: every market in the folder
    equity: float | None = None  # starting cash; default execution.paper_initial_cash
    intrabar: IntrabarOrder = IntrabarOrder.STOP_FIRST


@dataclass
class Prepared:
    feed: ReplayVenue
    hours: list[datetime]
    signals: pl.DataFrame
    trace: pl.DataFrame
    symbols: list[str]
    errors: dict[str, str] = field(default_factory=dict)
    lower: LowerTimeframes | None = None  # candles that order ambiguous bars (intrabar)


def code_version() -> str:
    """The git commit of this checkout (with '+dirty' when changed), else 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
            text=True, check=True, timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
            capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def _candles(folder: dict[str, dict[str, pl.DataFrame]], bases: Sequence[str]) -> pl.DataFrame:
    parts = [
        folder[b][tf].select("ts", "open", "high", "low", "close", "volume").with_columns(
            symbol=pl.lit(f"{b}/USD:USD"), timeframe=pl.lit(tf)
        )
        for b in bases
        for tf in ("1h", "4h", "1d")
    ]
    return pl.concat(parts).select(
        "symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"
    )


SCAN_CHUNK = 64  # markets scanned together: bounds the scan's memory on wide universes


def _scan(
    frames: dict[str, dict[str, pl.DataFrame]],
    bases: Sequence[str],
    times: pl.Series,
    config: StrategyConfig,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """scan_signals over the markets, SCAN_CHUNK at a time. Each market's features and
    decisions depend on its own candles only and the scan returns rows ordered by (ts,
    symbol), so the chunks' rows in that order are the rows of one scan of them all."""
    parts = [
        scan_signals(_candles(frames, bases[i : i + SCAN_CHUNK]), times, config)
        for i in range(0, len(bases), SCAN_CHUNK)
    ]
    if len(parts) == 1:
        return parts[0]
    signals = pl.concat([p[0] for p in parts], how="vertical_relaxed")
    trace = pl.concat([p[1] for p in parts], how="vertical_relaxed")
    return (
        signals.sort("ts", "symbol", maintain_order=True),
        trace.sort("ts", "symbol", maintain_order=True),
    )


def _bases(folder: ReplayFolder, wanted: Sequence[str]) -> list[str]:
    """The markets to backtest: those asked for (all usable ones by default). Refuses a name
    the folder does not have; a market whose files are unusable is left out (its problem is
    in the run's market_errors) unless none is left."""
    if not wanted:
        return sorted(folder.frames)
    unknown = [w for w in wanted if w not in folder.frames and w not in folder.problems]
    if unknown:
        raise ConfigError(
            f"--markets {','.join(unknown)}: not in the data folder; "
            f"it has {','.join(sorted([*folder.frames, *folder.problems]))}"
        )
    usable = [w for w in dict.fromkeys(wanted) if w in folder.frames]
    if not usable:
        raise DataError(
            ",".join(wanted), "; ".join(folder.problems[w] for w in wanted)
        )
    return usable


def prepare(request: BacktestRequest) -> Prepared:
    """The data, the decision hours and every hour's signals and gate trace.

    Refuses (DataError naming the input) a folder without data, and a `--from` after the
    data ends or a `--to` before `--from`."""
    folder = read_folder(request.data_dir.resolve())
    bases = _bases(folder, request.markets)
    errors = {f"{b}/USD:USD": p for b, p in folder.problems.items()}
    errors |= {f"{b}/USD:USD": f"note: {n}" for b, n in folder.notes.items() if b in bases}
    lower = None
    if request.intrabar is IntrabarOrder.LOWER_TIMEFRAME:
        lower, bases = _lower_timeframes(request, bases, errors)
    feed = ReplayVenue(request.data_dir, start=request.start)
    first = feed.clock.now()
    last = feed.end
    end = min(request.end or last, last)
    if first > last:
        raise DataError(
            str(request.data_dir), f"--from {first:%Y-%m-%d %H:%M} is after the data ends "
            f"({last:%Y-%m-%d %H:%M}): choose an earlier start"
        )
    if end < first:
        raise DataError(str(request.data_dir), f"--to {end} is before --from {first}")
    hours = []
    t = first
    while t <= end:
        hours.append(t)
        t += H
    times = pl.Series("ts", hours, dtype=pl.Datetime("us", "UTC"))
    signals, trace = _scan(folder.frames, bases, times, request.config.strategy)
    # the frames enter the loop here, validated once (the loop trusts them: schemas/boundaries)
    signals, trace = SmcSignals.validate(signals), GateTrace.validate(trace)
    # a market enters the decisions once its data has begun, as in the live registry
    listed = pl.DataFrame(
        {
            "symbol": [f"{b}/USD:USD" for b in bases],
            "listed_at": [folder.frames[b]["1h"]["ts"].min() + H for b in bases],
        },
        schema={"symbol": pl.String, "listed_at": times.dtype},
    )
    cycles = pl.DataFrame({"ts": times, "cycle_id": pl.int_range(1, len(hours) + 1, eager=True)})
    trace = (
        trace.join(listed, on="symbol")
        .filter(pl.col("ts") >= pl.col("listed_at"))
        .drop("listed_at")
        .join(cycles, on="ts")
    )
    signals = signals.join(listed, on="symbol").filter(pl.col("ts") >= pl.col("listed_at"))
    symbols = [f"{b}/USD:USD" for b in bases]
    return Prepared(feed, hours, signals.drop("listed_at"), trace, symbols, errors, lower)


def _lower_timeframes(
    request: BacktestRequest, bases: list[str], errors: dict[str, str]
) -> tuple[LowerTimeframes, list[str]]:
    """The lower-timeframe candles of the markets that have them; a market whose file is
    unusable is left out with the problem in `errors` (the others proceed), a market
    without one keeps the stop-first order (said in its note)."""
    lower, problems = read_lower_timeframes(
        request.data_dir.resolve(), {f"{b}/USD:USD": b for b in bases}
    )
    errors |= problems
    kept = [b for b in bases if f"{b}/USD:USD" not in problems]
    if not kept:
        raise DataError(str(request.data_dir), "; ".join(problems.values()))
    used = lower.used()
    for b in kept:
        symbol = f"{b}/USD:USD"
        said = (
            f"intrabar order from {used[symbol]}"
            if symbol in used
            else "no 15m/5m/1m candles: the stop fills first"
        )
        errors[symbol] = f"{errors[symbol]}; {said}" if symbol in errors else f"note: {said}"
    return lower, kept


def _paper_config(request: BacktestRequest) -> PaperConfig:
    cfg = request.config.execution
    return PaperConfig(
        maker_fee=cfg.maker_fee,
        taker_fee=cfg.taker_fee,
        slippage_bps=cfg.slippage_bps,
        initial_cash=request.equity or cfg.paper_initial_cash,
        default_leverage=request.config.risk.default_leverage,
    )


class _Registry:
    """The market registry as the live cycle builds it at an hour, on the stepped feed: its
    rows (core.registry.registry_rows), the first hour's validated as the Markets frame."""

    def __init__(self, feed: ReplayVenue, symbols: Sequence[str], request: BacktestRequest):
        self.feed = feed
        self.symbols = set(symbols)
        self.config = request.config.markets
        self.checked = False

    def now(self) -> MarketBook:
        markets = [m for m in self.feed.markets() if m.symbol in self.symbols]
        book = MarketBook(registry_rows(markets, self.feed.tickers(), self.config))
        if not self.checked:
            Markets.validate(book.frame(polars_schema(Markets)))
            self.checked = True
        return book


def describe_run(request: BacktestRequest, prepared: Prepared, run_id: str) -> BacktestRun:
    """The run's record before it starts: its key (config hash, data range, code version)."""
    config = request.config
    return BacktestRun(
        run_id=run_id,
        config_hash=config_hash(config),
        config=config.model_dump(mode="json"),
        data_dir=str(request.data_dir),
        start=prepared.hours[0],
        end=prepared.hours[-1],
        markets=tuple(prepared.symbols),
        code_version=code_version(),
        fill_model=FillModel(
            maker_fee=config.execution.maker_fee,
            taker_fee=config.execution.taker_fee,
            slippage_bps=config.execution.slippage_bps,
            intrabar=request.intrabar,
            funding="the data's funding files, settled when due (every 8 h)",
        ),
        initial_equity=_paper_config(request).initial_cash,
        market_errors=prepared.errors,
    )


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def run_backtest(
    request: BacktestRequest,
    progress: Callable[[int, int], None] | None = None,
    *,
    prepared: Prepared | None = None,
    run: BacktestRun | None = None,
) -> BacktestResult:
    """One backtest, start to finish; every trade, decision and the equity, in memory."""
    started = time.perf_counter()
    prepared = prepared or prepare(request)
    run = run or describe_run(request, prepared, new_run_id())
    feed = prepared.feed
    config = request.config
    funding = FundingSchedule.from_binance_dir(
        request.data_dir, {m.symbol: m.base for m in feed.all_markets()}
    )
    venue = SteppedPaperVenue(feed, _paper_config(request), funding=funding, lower=prepared.lower)
    state = MemoryState()
    registry = _Registry(feed, prepared.symbols, request)
    by_hour: dict[datetime, list[dict[str, Any]]] = {}
    for row in prepared.signals.to_dicts():
        by_hour.setdefault(row["ts"], []).append(row)
    kept_signals: list[dict[str, Any]] = []

    def hour_input(n: int, ts: datetime) -> HourInput:
        raw = by_hour.get(ts)

        def inputs() -> tuple[MarketBook, list[dict[str, Any]]]:
            # what the live cycle evaluates: the markets tradeable now, with their tier
            book = registry.now()
            if raw is None:
                return book, []
            mine = []
            for row in raw:
                tier = book.tradeable_tier(row["symbol"])
                if tier is not None:
                    mine.append({**row, "tier": tier})
            kept_signals.extend(mine)
            return book, mine

        return HourInput(ts, n, raw is not None, inputs)

    hours = (hour_input(n, ts) for n, ts in enumerate(prepared.hours, start=1))
    total = len(prepared.hours)
    loop = run_hours(
        hours,
        venue,
        state,
        venue.clock,
        config,
        cash=lambda: venue.engine.cash,
        progress=(lambda n: progress(n, total)) if progress else None,
    )
    equity = marks_frame(loop.marks)
    intents = intents_frame(loop.intents) if loop.intents else pl.DataFrame()
    if intents.height:
        # every hour's intents leave the loop here, validated once (schemas/boundaries.py)
        intents = OrderIntents.validate(intents)
    stops = (
        dict(zip(intents["client_intent_id"], intents["stop"], strict=True))
        if intents.height
        else {}
    )
    sizes = {m.symbol: m.contract_size for m in feed.all_markets()}
    end = prepared.hours[-1]
    last_close = {p.symbol: p.mark_price or p.entry_price for p in venue.positions()}
    trades = trades_of(
        state,
        initial_stops=stops,
        contract_sizes=sizes,
        funding=venue.funding_payments,
        end=end,
        last_close=last_close,
    )
    curve = EquityCurve(tuple(equity["ts"].to_list()), tuple(equity["equity"].to_list()))
    metrics = compute_metrics(trades, curve)
    trace = prepared.trace
    run = replace(run, status=RunStatus.COMPLETE, duration_s=time.perf_counter() - started)
    return BacktestResult(
        run=run,
        trades=tuple(trades),
        metrics=metrics,
        equity=equity,
        decisions=trace,
        signals=(
            pl.DataFrame(kept_signals, schema=prepared.signals.schema)
            if kept_signals
            else pl.DataFrame()
        ),
        intents=intents,
        fills=_fills_frame(state),
        funnel=gate_funnel(trace),
        orders=_orders_frame(state),
    )


def _orders_frame(state: MemoryState) -> pl.DataFrame:
    rows = [
        {
            "intent_id": e.intent_id,
            "client_id": e.client_id,
            "action_type": str(e.action_type),
            "symbol": e.symbol,
            "side": e.side,
            "state": str(e.state),
            "venue_order_id": e.venue_order_id,
            "cycle_id": state.intent_cycles.get(e.intent_id),
            "payload": e.payload,
        }
        for e in state.intents.values()
    ]
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def _fills_frame(state: MemoryState) -> pl.DataFrame:
    rows = [
        {
            "fill_id": f.fill_id,
            "ts": f.ts,
            "symbol": f.symbol,
            "side": str(f.side),
            "size": f.size,
            "price": f.price,
            "fee": f.fee,
            "position_id": pid,
            "client_id": f.client_id,
            "venue_order_id": f.venue_order_id,
        }
        for f, pid in state.fills.values()
    ]
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def market_candles(request: BacktestRequest, timeframe: str) -> dict[str, pl.DataFrame]:
    """Each backtested market's candles on `timeframe` (for the report's charts)."""
    folder = read_folder(request.data_dir.resolve())
    return {
        f"{base}/USD:USD": folder.frames[base][timeframe]
        for base in _bases(folder, request.markets)
    }
