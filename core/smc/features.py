"""SMC features per bar: `compute_features` (one market) and `features_by_market`.

Row t describes the market as known at the CLOSE of bar t, and `known_at`
(= ts + timeframe) says when that is. Facts that need later bars - a swing
needs `swing_length` confirming bars - appear on the row of the bar that
confirms them, carrying their own pivot time (`swing_high_ts`, ...). So every
column of a row is known at its `known_at`, and an as-of join on `known_at`
can never leak the future.

Every feature is a pure function of the `config.feature_memory_bars` bars up to
it (see indicators, structure, zones), and every feature but the EMA (and the
bias from it) of the `config.structure_memory_bars` bars up to it: computing on
a window that long gives the same last row, bit for bit, as a full recompute.
The EMA also depends on the market's listing (its first candle): it is seeded
there when the listing is more recent than its calendar seed, and it counts
only `bias_warmup_bars` after it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.smc.fib import fib_columns
from core.smc.indicators import anchored_ema, bias, true_range, window_mean
from core.smc.inputs import OHLCV, checked_ohlcv
from core.smc.reasons import BreakKind
from core.smc.regime import regime_expr
from core.smc.structure import breaks, latest_swing, legs
from core.smc.swings import swing_confirmations
from core.smc.timeframes import TS_DTYPE, duration
from core.smc.windows import by_market, positions
from core.smc.zones import fvg_events, track_fvg, track_pools
from schemas.strategy import StrategyConfig

POS = pl.col("_pos")


def compute_features(ohlcv: pl.DataFrame, timeframe: str, config: StrategyConfig) -> pl.DataFrame:
    """Every SMC feature of one market's candles, one row per bar (schemas.smc.Features).

    `ohlcv`: columns ts (UTC candle open), open, high, low, close, volume; any
    order. Refuses (DataError) missing columns, naive timestamps, NaN/null or
    non-positive prices, inverted candles and duplicate ts.
    """
    candles = checked_ohlcv(ohlcv, f"{timeframe} candles").select(OHLCV)
    out = features_by_market(candles.with_columns(symbol=pl.lit("")), timeframe, config)
    return out.drop("symbol")


def _bar_locals(frame: pl.DataFrame, timeframe: str, config: StrategyConfig) -> pl.DataFrame:
    """Stage 1, vectorised: known_at, true range, swing confirmations, FVG events."""
    tf = duration(timeframe)
    sh, sl = swing_confirmations(config.swing_length, POS)
    return (
        frame.lazy()
        .with_columns(
            known_at=pl.col("ts") + tf,
            _bar_no=pl.col("ts").dt.epoch("us") // int(tf.total_seconds() * 1_000_000),
            _tr=true_range(POS).fill_null(np.nan),
            swing_high_confirmed=sh,
            swing_low_confirmed=sl,
            fvg=fvg_events(POS),
        )
        .collect()
    )


def _series(name: str, values: np.ndarray) -> pl.Series:
    """A column from a numba output; NaN (the kernels' 'none') becomes null."""
    return pl.Series(name, values, nan_to_null=values.dtype == np.float64)


def _zones(frame: pl.DataFrame, starts: np.ndarray, config: StrategyConfig) -> list[pl.Series]:
    """FVG zones and liquidity pools (core/smc/zones.py)."""
    high, low, fvg = frame["high"].to_numpy(), frame["low"].to_numpy(), frame["fvg"].to_numpy()
    atr = frame["atr"].to_numpy()
    out = []
    for side, name in ((1, "bull"), (-1, "bear")):
        top, bottom = track_fvg(starts, fvg, high, low, side, config.fvg_lookback_bars)
        out += [_series(f"fvg_{name}_top", top), _series(f"fvg_{name}_bottom", bottom)]
    for values, column, up in (
        (high, "swing_high_confirmed", True),
        (low, "swing_low_confirmed", False),
    ):
        level, swept = track_pools(
            starts,
            values,
            frame[column].to_numpy(),
            atr,
            config.swing_length,
            config.structure_lookback_bars,
            config.liquidity_tolerance_atr,
            up,
        )
        side = "bsl" if up else "ssl"
        out += [_series(f"{side}_level", level), _series(f"{side}_swept", swept)]
    return out


def _structure(frame: pl.DataFrame, starts: np.ndarray, config: StrategyConfig) -> list[pl.Series]:
    """Reference swings, breaks and the valid structure (core/smc/structure.py)."""
    col = {c: frame[c].to_numpy() for c in ("open", "high", "low", "close")}
    sh, sh_ix = latest_swing(
        starts,
        col["high"],
        frame["swing_high_confirmed"].to_numpy(),
        config.swing_length,
        config.structure_lookback_bars,
    )
    sl, sl_ix = latest_swing(
        starts,
        col["low"],
        frame["swing_low_confirmed"].to_numpy(),
        config.swing_length,
        config.structure_lookback_bars,
    )
    direction, kind, level = breaks(
        starts, col["open"], col["close"], sh, sh_ix, sl, sl_ix, config.structure_max_age_bars
    )
    valid = legs(
        starts,
        col["open"],
        col["high"],
        col["low"],
        col["close"],
        direction,
        sh_ix,
        sl_ix,
        frame["bsl_swept"].to_numpy(),
        frame["ssl_swept"].to_numpy(),
        config.structure_max_age_bars,
    )
    names = ("trend", "_at", "leg_start", "_leg_ix", "leg_end", "ob_top", "ob_bottom", "_sweep")
    return [
        _series("swing_high", sh),
        _series("_sh_ix", sh_ix),
        _series("swing_low", sl),
        _series("_sl_ix", sl_ix),
        _series("_brk", direction),
        _series("_kind", kind),
        _series("break_level", level),
        *(_series(k, v) for k, v in zip(names, valid, strict=True)),
    ]


def _sequential(
    frame: pl.DataFrame, starts: np.ndarray, config: StrategyConfig, listed: np.ndarray | None
) -> pl.DataFrame:
    """Stage 2, numba: ATR, EMA (when `listed` is given), zones, structure (indices stay
    raw, -1 = none)."""
    pos = frame["_pos"].to_numpy()
    atr = window_mean(frame["_tr"].to_numpy(), pos, config.atr_period)
    if listed is not None:
        ema = anchored_ema(
            frame["close"].to_numpy(),
            frame["_bar_no"].to_numpy(),
            starts,
            listed,
            config.ema_period,
            config.ema_block_bars,
            config.bias_warmup_bars,
        )
    else:
        ema = np.full(frame.height, np.nan)
    frame = frame.with_columns(_series("atr", atr), _series("ema", ema))
    frame = frame.with_columns(_zones(frame, starts, config))
    return frame.with_columns(_structure(frame, starts, config))


def _ts_of(index_col: str) -> pl.Expr:
    """Timestamp of the bar at a global row index (-1: null)."""
    ix = pl.col(index_col)
    return pl.when(ix >= 0).then(pl.col("ts").gather(ix.clip(lower_bound=0)))


def _at_break(column: str) -> pl.Expr:
    """The column's value on the bar of the valid break (null without one)."""
    at = pl.col("_at")
    return pl.when(at >= 0).then(pl.col(column).gather(at.clip(lower_bound=0)))


def _choch_count(window: int) -> pl.Expr:
    """CHoCH breaks in the last `window` bars of the market: an exact integer count
    (cumulative sums per market, so nothing leaks from the market before)."""
    flag = (pl.col("_kind") == 2).cast(pl.Int32)
    total = flag.cum_sum()
    before_market = pl.when(pl.col("_pos") == 0).then(total - flag).forward_fill()
    return total - pl.when(pl.col("_pos") >= window).then(total.shift(window)).otherwise(
        before_market
    )


def _finish(frame: pl.DataFrame, config: StrategyConfig) -> pl.LazyFrame:
    """Stage 3, vectorised: structure labels, index -> time, fibs, regime."""
    kind = _at_break("_kind")
    kind_name = (
        pl.when(kind == 1)
        .then(pl.lit(BreakKind.BOS.value))
        .when(kind == 2)
        .then(pl.lit(BreakKind.CHOCH.value))
    )
    since = pl.int_range(pl.len(), dtype=pl.Int64) - pl.col("_at")
    return (
        frame.lazy()
        .with_columns(
            bias=bias(pl.col("close"), pl.col("ema")),
            swing_high_ts=_ts_of("_sh_ix"),
            swing_low_ts=_ts_of("_sl_ix"),
            bos=pl.when(pl.col("_kind") == 1).then(pl.col("_brk")).otherwise(0).cast(pl.Int8),
            choch=pl.when(pl.col("_kind") == 2).then(pl.col("_brk")).otherwise(0).cast(pl.Int8),
            structure_kind=kind_name,
            structure_level=_at_break("break_level"),
            bars_since_break=pl.when(pl.col("_at") >= 0).then(since).cast(pl.Int32),
            choch_count=_choch_count(config.regime_window_bars).cast(pl.Int32),
            leg_start_ts=_ts_of("_leg_ix"),
            leg_swept_liquidity=pl.when(pl.col("_sweep") >= 0).then(pl.col("_sweep") == 1),
        )
        .with_columns(fib_columns(config.ote_min, config.ote_max))
        .with_columns(regime=regime_expr(config))
    )


FEATURE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "known_at",
    "atr",
    "ema",
    "bias",
    "swing_high_confirmed",
    "swing_low_confirmed",
    "swing_high",
    "swing_high_ts",
    "swing_low",
    "swing_low_ts",
    "bos",
    "choch",
    "break_level",
    "trend",
    "structure_kind",
    "structure_level",
    "bars_since_break",
    "choch_count",
    "leg_start",
    "leg_start_ts",
    "leg_end",
    "leg_swept_liquidity",
    "fib_0_5",
    "fib_0_618",
    "fib_0_705",
    "fib_0_786",
    "ote_top",
    "ote_bottom",
    "retracement",
    "ob_top",
    "ob_bottom",
    "fvg",
    "fvg_bull_top",
    "fvg_bull_bottom",
    "fvg_bear_top",
    "fvg_bear_bottom",
    "bsl_level",
    "ssl_level",
    "bsl_swept",
    "ssl_swept",
    "regime",
)


def features_by_market(
    candles: pl.DataFrame, timeframe: str, config: StrategyConfig
) -> pl.DataFrame:
    """Features of many markets at once (columns symbol, ts, OHLCV; checked, any order).

    Returns FEATURE_COLUMNS, each market one block in ts order. Markets never
    mix: every window is cut at a market boundary (`_pos`) and every scan
    restarts per market.
    """
    frame = candles.select("symbol", *OHLCV).with_columns(pl.col("ts").cast(TS_DTYPE))
    return features_of_blocks(*by_market(frame), timeframe, config)


def features_of_blocks(
    frame: pl.DataFrame,
    starts: np.ndarray,
    timeframe: str,
    config: StrategyConfig,
    *,
    ema: bool = True,
    listed: np.ndarray | None = None,
) -> pl.DataFrame:
    """features_by_market for a frame already laid out in market blocks (core/smc/windows).

    ema=False leaves `ema` and `bias` null: their memory (feature_memory_bars) is
    far longer than every other feature's (structure_memory_bars). `listed[g]`
    says whether market g's block begins at its first candle (its listing) or
    was cut from a longer history (default: every block is a whole history);
    the EMA is seeded at a listing, never at a cut (core/smc/indicators.py).
    """
    frame = frame.select("symbol", *OHLCV).with_columns(
        _pos=pl.Series(positions(starts, frame.height))
    )
    if ema and listed is None:
        listed = np.ones(len(starts) - 1, dtype=np.bool_)
    frame = _bar_locals(frame, timeframe, config)
    frame = _sequential(frame, starts, config, listed if ema else None)
    return _finish(frame, config).select(FEATURE_COLUMNS).collect()
