"""Signals from candles: `evaluate_markets` (one cycle) and `scan_signals` (history).

Both run the same decision code (core/smc/decide.py) over decision rows
(symbol, ts = decision time); they differ only in how features are computed:
the cycle recomputes the last `incremental_window_bars` closed candles per
market on 4h and 1h and the last `bias_window_bars` on 1d, the scan computes
every bar once. Features being causal and of bounded memory, both give the
same row for the same decision time (a test checks it).

Only the daily EMA feeds a gate (the bias), so the engine computes the EMA on
1d only: on 4h and 1h its ~1200-bar memory would triple the window for a
column nobody reads (`ema`/`bias` are null there). compute_features, for
traders, computes it on every timeframe.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from core.errors import DataError
from core.smc.decide import decide
from core.smc.features import features_of_blocks
from core.smc.inputs import OHLCV, normalise_ohlcv, ohlcv_problems
from core.smc.timeframes import TIMEFRAMES, TS_DTYPE
from core.smc.windows import by_market, tail_per_market
from schemas.strategy import BIAS_TIMEFRAME, StrategyConfig

CANDLE_KEYS = ("symbol", "timeframe")


def _candles(candles: pl.DataFrame) -> pl.DataFrame:
    """Normalised multi-market candles; refuses a frame without symbol/timeframe columns
    or with timeframes the engine does not know."""
    missing = [c for c in CANDLE_KEYS if c not in candles.columns]
    if missing:
        raise DataError(
            "candles", f"missing column(s) {missing}: pass a schemas.frames.Candles frame"
        )
    unknown = set(candles["timeframe"].unique().to_list()) - set(TIMEFRAMES)
    if unknown:
        raise DataError(
            "candles", f"unknown timeframe(s) {sorted(unknown)}: use {sorted(TIMEFRAMES)}"
        )
    return normalise_ohlcv(candles, "candles")


def _utc(when: datetime) -> datetime:
    """The decision time in UTC; refuses a naive datetime (its zone would be a guess)."""
    if when.tzinfo is None:
        raise DataError("decision_time", f"{when} has no time zone: pass an aware UTC datetime")
    return when.astimezone(UTC)


Blocks = tuple[pl.DataFrame, np.ndarray]


def _per_timeframe(
    frame: pl.DataFrame, when: datetime | None, config: StrategyConfig | None
) -> tuple[dict[str, Blocks], pl.Series]:
    """Candles of each timeframe in market blocks: closed by `when`, and the last
    window of bars when `config` is given (a cycle) - all of them otherwise; and the
    markets whose daily block the window cut (it no longer begins at their listing)."""
    out = {}
    cut = pl.Series("symbol", [], pl.String)
    for tf, length in TIMEFRAMES.items():
        part = frame.filter(pl.col("timeframe") == tf).select("symbol", *OHLCV)
        if when is not None:
            part = part.filter(pl.col("ts") + length <= when)
        blocks = by_market(part)
        if config is not None:
            window = config.window_bars(tf)
            if tf == BIAS_TIMEFRAME:
                cut = _longer_than(*blocks, window)
            blocks = tail_per_market(*blocks, window)
        out[tf] = blocks
    return out, cut


def _longer_than(frame: pl.DataFrame, starts: np.ndarray, n: int) -> pl.Series:
    """Symbols of the blocks with more than `n` rows."""
    return frame["symbol"].gather(starts[:-1]).filter(pl.Series(np.diff(starts) > n))


def _listings(part: pl.DataFrame, starts: np.ndarray, cut: pl.Series) -> pl.DataFrame:
    """Per market with daily candles: its first daily candle here (`d_first`) and whether
    that is its listing (`d_listed`: the window did not cut the block)."""
    first = part.select("symbol", pl.col("ts").alias("d_first"))[starts[:-1]]
    return first.with_columns(d_listed=~pl.col("symbol").is_in(cut.implode()))


def _features(
    candles: dict[str, Blocks], cut: pl.Series, config: StrategyConfig
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, pl.DataFrame]:
    """Features per timeframe of the usable markets, the (symbol, problem) rejected, and
    the daily listings (_listings)."""
    found = [
        ohlcv_problems(part, ["symbol"]).with_columns(problem=pl.lit(f"{tf}: ") + pl.col("problem"))
        for tf, (part, _) in candles.items()
    ]
    problems = (
        pl.concat(found)
        .group_by("symbol", maintain_order=True)
        .agg(pl.col("problem").str.join("; "))
    )
    feats = {}
    listings = None
    for tf, (part, starts) in candles.items():
        if problems.height:  # rare: drop the unusable markets, their blocks move
            part, starts = by_market(
                part.filter(~pl.col("symbol").is_in(problems["symbol"].implode()))
            )
        if tf == BIAS_TIMEFRAME:
            listings = _listings(part, starts, cut)
            listed = listings["d_listed"].to_numpy()
            feats[tf] = features_of_blocks(part, starts, tf, config, listed=listed)
        else:
            feats[tf] = features_of_blocks(part, starts, tf, config, ema=False)
    assert listings is not None  # TIMEFRAMES has the bias timeframe
    return feats, problems, listings


def evaluate_markets(
    candles: pl.DataFrame,
    decision_time: datetime,
    config: StrategyConfig,
    markets: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(signals, gate_trace) of one cycle at `decision_time`.

    `candles`: columns symbol, timeframe (1h/4h/1d), ts (UTC open), OHLCV; any
    history length, any order: each market's candles from its listing, or at
    least its last `bias_window_bars` daily candles (a market with fewer is
    taken to begin at its first daily candle here: its listing). Only candles
    closed by the decision time are used, and of those only the last
    `incremental_window_bars` per market on 4h/1h and `bias_window_bars` on 1d.
    `markets` (optional): symbol, tier; a market absent from it or of tier
    REJECT is rejected MARKET_NOT_TRADEABLE.
    Returns signals (schemas.smc.SmcSignals) and one gate-trace row per symbol
    in `candles` (schemas.smc.GateTrace). A market with unusable candles is
    rejected with a reason; only a malformed frame or a naive decision time
    raises (DataError).
    """
    when = _utc(decision_time)
    frame = _candles(candles)
    parts, cut = _per_timeframe(frame, when, config)
    feats, problems, listings = _features(parts, cut, config)
    symbols = frame["symbol"].unique().sort()
    decisions = pl.DataFrame(
        {"symbol": symbols, "ts": pl.Series([when] * len(symbols), dtype=TS_DTYPE)}
    )
    return decide(decisions, feats, problems, config, markets, listings)


def scan_signals(
    candles: pl.DataFrame,
    decision_times: pl.Series,
    config: StrategyConfig,
    markets: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(signals, gate_trace) at every decision time for every symbol: a historical scan.

    Features are computed once on the whole history; a bar's features use only
    bars closed by it and the as-of join only rows known by each decision time,
    so every row equals what evaluate_markets would have decided then.
    """
    frame = _candles(candles)
    feats, problems, listings = _features(*_per_timeframe(frame, None, None), config)
    times = pl.DataFrame({"ts": decision_times.cast(TS_DTYPE).unique().sort()})
    decisions = frame.select(pl.col("symbol").unique().sort()).join(times, how="cross")
    return decide(decisions, feats, problems, config, markets, listings)
