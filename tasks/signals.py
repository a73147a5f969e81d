"""Stage 3: SMC features and signals for every tradeable market, with the gate trace stored."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from core.cycle import CycleContext
from core.smc import evaluate_markets
from schemas.config import TIMEFRAME_SECONDS
from schemas.smc import GateTrace, SmcSignals
from schemas.strategy import StrategyConfig
from store.candles import read_candle_windows
from store.db import open_store
from store.frames import append_frame

log = logging.getLogger("smc_trader.signals")


@dataclass(frozen=True)
class SignalResult:
    signals: pl.DataFrame
    gate_trace: pl.DataFrame

    @property
    def coins_processed(self) -> int:
        return self.gate_trace.height

    def rejections(self) -> dict[str, int]:
        counts = self.gate_trace.filter(pl.col("reason").is_not_null())["reason"].value_counts()
        return dict(zip(counts["reason"], counts["count"], strict=True))


def windows(ctx: CycleContext, config: StrategyConfig) -> dict[str, object]:
    """The bounded history each timeframe needs: the engine's window (config.window_bars)."""
    return {
        tf: ctx.decision_time - timedelta(seconds=seconds * (config.window_bars(tf) + 1))
        for tf, seconds in TIMEFRAME_SECONDS.items()
    }


def generate(
    ctx: CycleContext, symbols: list[str], markets: pl.DataFrame, config: StrategyConfig
) -> SignalResult:
    """Signals and one gate-trace row per market; every rejection logged with its reason."""
    with open_store(ctx.db_path) as con:
        candles = read_candle_windows(con, symbols, windows(ctx, config))
    signals, trace = evaluate_markets(
        candles, ctx.decision_time, config, markets.select("symbol", "tier")
    )
    signals, trace = SmcSignals.validate(signals), GateTrace.validate(trace)
    for row in trace.filter(pl.col("reason").is_not_null()).iter_rows(named=True):
        log.info("%s rejected: %s", row["symbol"], row["reason"])
    for row in signals.iter_rows(named=True):
        log.info(
            "SIGNAL %s %s %s entry=%s stop=%s tp1=%s regime=%s score=%.3f",
            row["symbol"],
            row["strategy"],
            row["side"],
            row["entry"],
            row["stop"],
            row["tp1"],
            row["regime"],
            row["score"],
        )
    with open_store(ctx.db_path) as con:
        append_frame(con, "gate_trace", trace, cycle_id=ctx.cycle_id)
        append_frame(con, "signals", signals, cycle_id=ctx.cycle_id)
    return SignalResult(signals, trace)


@task(name="generate_signals", cache_policy=NO_CACHE)
def generate_signals(
    ctx: CycleContext, symbols: list[str], markets: pl.DataFrame, config: StrategyConfig
) -> SignalResult:
    return generate(ctx, symbols, markets, config)
