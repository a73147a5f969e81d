"""From aligned features to signals and the gate trace, for any number of decisions.

Each decision row (symbol, ts) is aligned (mtf), gated (gates, momentum),
scored (score) and split into the two outputs: signals (rows that passed every
gate of a strategy) and the gate trace (every row, with every gate's outcome
and the first failing reason; `problem` says what was wrong with a BAD_DATA
market's candles or what an INSUFFICIENT_HISTORY market lacks).
"""

from __future__ import annotations

import polars as pl

from core.smc.gates import (
    SMC_GATES,
    data_gates,
    gate_outcomes,
    history_problem,
    pick,
    smc_reason,
    structure_columns,
    trade_columns,
)
from core.smc.momentum import momentum_plan, momentum_reason, momentum_score
from core.smc.mtf import align
from core.smc.reasons import GateOutcome, Reason
from core.smc.score import smc_score
from schemas.strategy import StrategyConfig

SIGNAL_COLUMNS = (
    "symbol",
    "ts",
    "strategy",
    "side",
    "entry",
    "stop",
    "tp1",
    "tp2",
    "tp3",
    "regime",
    "score",
    "structure_tf",
    "structure_kind",
    "retracement",
    "reward_risk",
    "tier",
    "gate_trace",
)
TRACE_COLUMNS = (
    "symbol",
    "ts",
    "signal",
    "strategy",
    "reason",
    "momentum_reason",
    *SMC_GATES,
    "gate_momentum",
    "bias",
    "daily_close",
    "daily_ema",
    "structure_tf",
    "structure_kind",
    "bars_since_break",
    "regime",
    "entry",
    "retracement",
    "stop",
    "reward_risk",
    "score",
    "tier",
    "problem",
    "daily_known_at",
    "h4_known_at",
    "h1_known_at",
)
# Momentum runs only where SMC failed after the daily bias passed.
MOMENTUM_ELIGIBLE = [
    Reason.STRUCTURE_4H_REQUIRED.value,
    Reason.REGIME_NOT_TRADEABLE.value,
    Reason.ENTRY_NOT_IN_OTE.value,
    Reason.RISK_STOP_WRONG_SIDE.value,
    Reason.RISK_STOP_TOO_WIDE.value,
    Reason.RISK_REWARD_TOO_LOW.value,
]


def _pick_map() -> dict[str, pl.Expr]:
    """The structure timeframe's zone and leg columns the score reads."""
    names = (
        "leg_start", "leg_end", "ob_top", "ob_bottom", "leg_swept_liquidity",
        "fvg_bull_top", "fvg_bull_bottom", "fvg_bear_top", "fvg_bear_bottom",
    )  # fmt: skip
    return {n: pick(n) for n in names}


def _with_markets(
    frame: pl.DataFrame, problems: pl.DataFrame, markets: pl.DataFrame | None
) -> pl.DataFrame:
    """Adds _bad_data, problem, tier and _tradeable."""
    frame = frame.join(problems, on="symbol", how="left").with_columns(
        _bad_data=pl.col("problem").is_not_null()
    )
    if markets is None:
        return frame.with_columns(tier=pl.lit(None, pl.String), _tradeable=pl.lit(True))
    tiers = markets.select("symbol", pl.col("tier").cast(pl.String)).unique("symbol", keep="last")
    frame = frame.join(tiers, on="symbol", how="left")
    return frame.with_columns(
        _tradeable=(pl.col("tier").is_not_null() & (pl.col("tier") != "REJECT"))
    )


def _momentum(frame: pl.DataFrame, config: StrategyConfig) -> pl.DataFrame:
    """Adds momentum_reason, gate_momentum and the m_* plan (nulls when off)."""
    if not config.momentum:
        return frame.with_columns(
            momentum_reason=pl.lit(None, pl.String),
            gate_momentum=pl.lit(GateOutcome.OFF.value),
            m_ok=pl.lit(False),
        )
    eligible = pl.col("smc_reason").is_in(MOMENTUM_ELIGIBLE).fill_null(False)
    frame = frame.with_columns(momentum_plan(config)).with_columns(
        momentum_reason=pl.when(eligible).then(momentum_reason(config))
    )
    return frame.with_columns(
        m_ok=eligible & pl.col("momentum_reason").is_null(),
        gate_momentum=pl.when(~eligible)
        .then(pl.lit(GateOutcome.SKIPPED.value))
        .when(pl.col("momentum_reason").is_null())
        .then(pl.lit(GateOutcome.PASS.value))
        .otherwise(pl.lit(GateOutcome.FAIL.value)),
    )


def _final(config: StrategyConfig) -> list[pl.Expr]:
    """signal, strategy, side, plan and score: SMC first, momentum second."""
    smc = pl.col("smc_reason").is_null()
    mom = ~smc & pl.col("m_ok")

    def choose(smc_col: str, mom_col: str) -> pl.Expr:
        if not config.momentum:
            return pl.when(smc).then(pl.col(smc_col))
        return pl.when(smc).then(pl.col(smc_col)).when(mom).then(pl.col(mom_col))

    exprs = [
        (smc | mom).alias("signal"),
        pl.when(smc).then(pl.lit("smc")).when(mom).then(pl.lit("momentum")).alias("strategy"),
        pl.when(smc | mom).then(pl.col("bias")).alias("side"),
        pl.when(smc).then(pl.lit(None, pl.String)).otherwise(pl.col("smc_reason")).alias("reason"),
        choose("score_smc", "score_momentum").alias("score"),
    ]
    if config.momentum:
        exprs += [
            pl.when(mom).then(pl.col(f"m_{c}")).otherwise(pl.col(c)).alias(c)
            for c in ("stop", "tp1", "tp2", "tp3", "reward_risk")
        ]
        exprs.append(
            pl.when(mom).then(pl.col("h1_regime")).otherwise(pl.col("regime")).alias("regime")
        )
    return exprs


def _step(name: str, gate: str, detail: pl.Expr | None = None) -> pl.Expr:
    """`name=outcome(detail)` for the signal's readable trace."""
    text = pl.lit(name + "=") + pl.col(gate)
    if detail is None:
        return text
    return text + pl.lit("(") + detail.cast(pl.String).fill_null("-") + pl.lit(")")


def _trace_text() -> pl.Expr:
    """Human-readable gate trace carried by each signal, gates in order."""
    structure = pl.concat_str(
        [pl.col("structure_tf").fill_null("-"), pl.col("structure_kind").fill_null("-")],
        separator=" ",
    )
    return pl.concat_str(
        [
            _step("daily_bias", "gate_daily_bias", pl.col("bias")),
            _step("structure", "gate_structure", structure),
            _step("regime", "gate_regime", pl.col("regime")),
            _step("ote", "gate_ote", pl.col("retracement").round(3)),
            _step(
                "risk", "gate_risk", pl.lit("rr ") + pl.col("reward_risk").round(2).cast(pl.String)
            ),
            _step("momentum", "gate_momentum"),
        ],
        separator=" > ",
    )


def decide(
    decisions: pl.DataFrame,
    features: dict[str, pl.DataFrame],
    problems: pl.DataFrame,
    config: StrategyConfig,
    markets: pl.DataFrame | None,
    listings: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(signals, gate_trace) for every decision row; never raises for one market's data.

    `listings`: symbol, d_first, d_listed (core/smc/engine.py) - what the trace's
    `problem` says of a market that lacks history.
    """
    aligned = align(decisions, features).join(listings, on="symbol", how="left")
    frame = _with_markets(aligned, problems, markets)
    picked = _pick_map()
    frame = (
        frame.with_columns(data_gates(config))
        .with_columns(structure_columns(config))
        .with_columns(trade_columns(config))
        .with_columns(smc_reason=smc_reason(config), score_smc=smc_score(config, picked))
        .with_columns(gate_outcomes())
    )
    frame = _momentum(frame, config)
    if config.momentum:
        frame = frame.with_columns(score_momentum=momentum_score())
    frame = frame.with_columns(_final(config)).with_columns(
        problem=pl.when(pl.col("reason") == Reason.INSUFFICIENT_HISTORY.value)
        .then(history_problem(config))
        .otherwise(pl.col("problem")),
        daily_close=pl.col("d_close"),
        daily_ema=pl.col("d_ema"),
        daily_known_at=pl.col("d_known_at"),
        h4_known_at=pl.col("h4_known_at"),
        h1_known_at=pl.col("h1_known_at"),
    )
    frame = frame.sort("ts", "symbol")
    signals = frame.filter(pl.col("signal")).with_columns(gate_trace=_trace_text())
    return signals.select(SIGNAL_COLUMNS), frame.select(TRACE_COLUMNS)
