"""The SMC gates of SPEC §3, evaluated for every decision row at once.

Order: data -> daily bias -> structure (4H, or 1H if allow_1h_structure) ->
regime -> OTE -> risk. The first failing gate's reason is the row's reason; a
gate after it is `skipped`. Every gate is a polars expression over the aligned
decision frame (core/smc/mtf.py), so one cycle and a historical scan of ten
thousand decisions run the same code.

Trade plan of an SMC signal (side +1 long / -1 short, leg from leg_start to
leg_end on the structure timeframe):
- entry: close of the last closed 1H candle (the decision price);
- stop: leg_start - side * atr_stop_buffer * ATR (beyond the invalidation point);
- TP1: leg_end (the extreme just made); TP2/TP3: the leg's tp2/tp3 extensions.
"""

from __future__ import annotations

import polars as pl

from core.smc.fib import retracement_of
from core.smc.reasons import GateOutcome, Reason, Regime
from core.smc.timeframes import duration
from schemas.strategy import StrategyConfig

PASS, FAIL, SKIP = (
    pl.lit(o.value) for o in (GateOutcome.PASS, GateOutcome.FAIL, GateOutcome.SKIPPED)
)


def _fresh(decision: pl.Expr, tf: str, prefix: str, bars: int) -> pl.Expr:
    """The timeframe's last known bar closed at most `bars` bars before the decision."""
    return (decision - pl.col(prefix + "known_at")) <= duration(tf) * bars


def data_gates(config: StrategyConfig) -> list[pl.Expr]:
    """history_ok and fresh_ok: enough history on every timeframe, none of it stale."""
    t = pl.col("ts")
    history = (
        pl.col("d_ema").is_not_null()
        & pl.col("h4_atr").is_not_null()
        & pl.col("h1_atr").is_not_null()
    )
    fresh = (
        _fresh(t, "1d", "d_", config.stale_after_bars)
        & _fresh(t, "4h", "h4_", config.stale_after_bars)
        & _fresh(t, "1h", "h1_", config.stale_after_bars)
    )
    return [
        history.fill_null(False).alias("_history_ok"),
        fresh.fill_null(False).alias("_fresh_ok"),
    ]


def _day(ts: pl.Expr) -> pl.Expr:
    return ts.dt.strftime("%Y-%m-%d")


def history_problem(config: StrategyConfig) -> pl.Expr:
    """Why history_ok failed, per timeframe, in words (null when it did not).

    Reads d_first / d_listed (the market's first daily candle and whether it is its
    listing, core/smc/engine.py) beside the aligned columns.
    """
    warmup = config.bias_warmup_bars
    daily_ts = pl.col("d_known_at") - duration("1d")
    days = ((daily_ts - pl.col("d_first")).dt.total_days() + 1).cast(pl.String)
    ready = pl.col("d_first") + duration("1d") * warmup
    warming = pl.col("d_listed").fill_null(False) & (
        (daily_ts - pl.col("d_first")).dt.total_days() + 1 < warmup
    )
    daily = (
        pl.when(pl.col("d_known_at").is_null())
        .then(pl.lit("1d: no closed daily candle yet"))
        .when(pl.col("d_ema").is_not_null())
        .then(pl.lit(None, pl.String))
        .when(warming)
        .then(
            pl.lit("1d: daily EMA warming up, ")
            + days
            + pl.lit(f" of {warmup} days since the first daily candle (")
            + _day(pl.col("d_first"))
            + pl.lit("); the bias counts from ")
            + _day(ready)
        )
        .otherwise(
            pl.lit("1d: daily candles before ")
            + _day(pl.col("d_first"))
            + pl.lit(
                f" are not loaded and the EMA's seed lies before it: a cycle needs "
                f"{config.bias_window_bars} daily candles (ohlcv.history_bars['1d'])"
            )
        )
    )
    parts = [daily]
    for tf, prefix in (("4h", "h4_"), ("1h", "h1_")):
        parts.append(
            pl.when(pl.col(prefix + "known_at").is_null())
            .then(pl.lit(f"{tf}: no closed candle yet"))
            .when(pl.col(prefix + "atr").is_null())
            .then(pl.lit(f"{tf}: fewer than {config.atr_period + 1} candles (the ATR's)"))
        )
    return pl.concat_str(parts, separator="; ", ignore_nulls=True)


def pick(name: str) -> pl.Expr:
    """The structure timeframe's column: 1H only when 4H failed and 1H was accepted."""
    return (
        pl.when(pl.col("structure_tf") == "1h")
        .then(pl.col("h1_" + name))
        .otherwise(pl.col("h4_" + name))
    )


def structure_columns(config: StrategyConfig) -> list[pl.Expr]:
    """bias (long/short, null on the EMA) and structure_tf: 4h when the 4H trend is the
    bias, else 1h when allowed and the 1H trend is, else null (the gate fails)."""
    side = pl.col("d_bias")
    h4 = (pl.col("h4_trend") == side) & (side != 0)
    h1 = (pl.col("h1_trend") == side) & (side != 0) & config.allow_1h_structure
    return [
        pl.when(side == 1)
        .then(pl.lit("long"))
        .when(side == -1)
        .then(pl.lit("short"))
        .alias("bias"),
        pl.when(h4.fill_null(False))
        .then(pl.lit("4h"))
        .when(h1.fill_null(False))
        .then(pl.lit("1h"))
        .alias("structure_tf"),
    ]


def trade_columns(config: StrategyConfig) -> list[pl.Expr]:
    """The SMC trade plan on the picked structure: entry, stop, TPs, retracement, R:R."""
    side = pl.col("d_bias").cast(pl.Float64)
    start, end, atr = pick("leg_start"), pick("leg_end"), pick("atr")
    entry = pl.col("h1_close")
    stop = start - side * config.atr_stop_buffer * atr
    risk = side * (entry - stop)
    tp2 = start + config.tp2_extension * (end - start)
    return [
        pl.lit("smc").alias("strategy_candidate"),
        pick("regime").alias("regime"),
        pick("structure_kind").alias("structure_kind"),
        pick("bars_since_break").alias("bars_since_break"),
        entry.alias("entry"),
        retracement_of(entry, start, end).alias("retracement"),
        stop.alias("stop"),
        end.alias("tp1"),
        tp2.alias("tp2"),
        (start + config.tp3_extension * (end - start)).alias("tp3"),
        (side * (end - entry) / risk).alias("reward_risk"),
        (side * (tp2 - entry) / risk).alias("reward_risk_tp2"),
    ]


def risk_reason(config: StrategyConfig) -> pl.Expr:
    """Null when the plan in columns side/entry/stop/tp1 is sane, else the risk reason."""
    side = pl.col("d_bias")
    distance = side * (pl.col("entry") - pl.col("stop"))
    return (
        pl.when(~((pl.col("stop") > 0) & (distance > 0)).fill_null(False))
        .then(pl.lit(Reason.RISK_STOP_WRONG_SIDE.value))
        .when(~(distance / pl.col("entry") <= config.max_stop_pct).fill_null(False))
        .then(pl.lit(Reason.RISK_STOP_TOO_WIDE.value))
        .when(~(pl.col("reward_risk") >= config.min_reward_risk).fill_null(False))
        .then(pl.lit(Reason.RISK_REWARD_TOO_LOW.value))
    )


def smc_reason(config: StrategyConfig) -> pl.Expr:
    """The first failing SMC gate's reason (null: every gate passed)."""
    lo, hi = config.ote_min - config.ote_tolerance, config.ote_max + config.ote_tolerance
    in_ote = pl.col("retracement").is_between(lo, hi).fill_null(False)
    return (
        pl.when(pl.col("_bad_data"))
        .then(pl.lit(Reason.BAD_DATA.value))
        .when(~pl.col("_tradeable"))
        .then(pl.lit(Reason.MARKET_NOT_TRADEABLE.value))
        .when(~pl.col("_history_ok"))
        .then(pl.lit(Reason.INSUFFICIENT_HISTORY.value))
        .when(~pl.col("_fresh_ok"))
        .then(pl.lit(Reason.STALE_DATA.value))
        .when(pl.col("bias").is_null())
        .then(pl.lit(Reason.NO_DAILY_BIAS.value))
        .when(pl.col("structure_tf").is_null())
        .then(pl.lit(Reason.STRUCTURE_4H_REQUIRED.value))
        .when(pl.col("regime") != Regime.TIGHT_SMC.value)
        .then(pl.lit(Reason.REGIME_NOT_TRADEABLE.value))
        .when(~in_ote)
        .then(pl.lit(Reason.ENTRY_NOT_IN_OTE.value))
        .otherwise(risk_reason(config))
    )


# Reason -> the gate it fails; gates before it passed, gates after it were skipped.
GATE_OF_REASON: dict[str, str] = {
    Reason.BAD_DATA: "gate_data",
    Reason.MARKET_NOT_TRADEABLE: "gate_data",
    Reason.INSUFFICIENT_HISTORY: "gate_data",
    Reason.STALE_DATA: "gate_data",
    Reason.NO_DAILY_BIAS: "gate_daily_bias",
    Reason.STRUCTURE_4H_REQUIRED: "gate_structure",
    Reason.REGIME_NOT_TRADEABLE: "gate_regime",
    Reason.ENTRY_NOT_IN_OTE: "gate_ote",
    Reason.RISK_STOP_WRONG_SIDE: "gate_risk",
    Reason.RISK_STOP_TOO_WIDE: "gate_risk",
    Reason.RISK_REWARD_TOO_LOW: "gate_risk",
}
SMC_GATES = (
    "gate_data",
    "gate_daily_bias",
    "gate_structure",
    "gate_regime",
    "gate_ote",
    "gate_risk",
)


def gate_outcomes(reason: str = "smc_reason") -> list[pl.Expr]:
    """One pass/fail/skipped column per SMC gate, from the row's first failing reason."""
    failed_index = pl.col(reason).replace_strict(
        {r: SMC_GATES.index(g) for r, g in GATE_OF_REASON.items()},
        default=len(SMC_GATES),
        return_dtype=pl.Int8,
    )
    return [
        pl.when(failed_index > i)
        .then(PASS)
        .when(failed_index == i)
        .then(FAIL)
        .otherwise(SKIP)
        .alias(gate)
        for i, gate in enumerate(SMC_GATES)
    ]
