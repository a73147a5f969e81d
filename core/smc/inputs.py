"""Input checks for OHLCV frames: refuse (one market) or flag (many markets) bad candles.

The engine never trusts its input: a NaN or an inverted candle in one market
must reject that market with BAD_DATA, never poison the others (SPEC §11.5).
"""

from __future__ import annotations

import polars as pl

from core.errors import DataError
from core.smc.timeframes import TS_DTYPE

OHLCV = ("ts", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")


def _cast(frame: pl.DataFrame) -> list[pl.Expr]:
    """The casts that are needed: none for a frame already in the engine's types."""
    exprs = []
    if frame.schema["ts"] != TS_DTYPE:
        exprs.append(pl.col("ts").dt.convert_time_zone("UTC").cast(TS_DTYPE))
    exprs += [pl.col(c).cast(pl.Float64) for c in OHLCV[1:] if frame.schema[c] != pl.Float64]
    return exprs


def normalise_ohlcv(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """The frame with ts as UTC microseconds and OHLCV as Float64, other columns kept.

    Refuses (DataError naming `name`) missing columns, a ts that is not a
    time-zone-aware datetime, and OHLCV columns that are not numeric.
    """
    missing = [c for c in OHLCV if c not in frame.columns]
    if missing:
        raise DataError(
            name,
            f"missing column(s) {missing}: an OHLCV frame needs {list(OHLCV)} "
            "(ts = candle open time, UTC)",
        )
    ts_dtype = frame.schema["ts"]
    if not isinstance(ts_dtype, pl.Datetime) or ts_dtype.time_zone is None:
        raise DataError(
            name,
            f"column ts is {ts_dtype}, expected a time-zone-aware datetime: store candle open "
            "times as UTC timestamps",
        )
    not_numeric = [c for c in OHLCV[1:] if not frame.schema[c].is_numeric()]
    if not_numeric:
        raise DataError(name, f"column(s) {not_numeric} are not numeric: store prices as floats")
    casts = _cast(frame)
    return frame.with_columns(casts) if casts else frame


def _problem_exprs() -> list[tuple[str, pl.Expr]]:
    """(message, per-row expression that is True on a bad row)."""
    price_bad = pl.any_horizontal(
        *(pl.col(c).is_null() | pl.col(c).is_nan() | (pl.col(c) <= 0) for c in PRICES)
    )
    return [
        ("null ts", pl.col("ts").is_null()),
        ("null, NaN or non-positive price", price_bad),
        (
            "null, NaN or negative volume",
            pl.col("volume").is_null() | pl.col("volume").is_nan() | (pl.col("volume") < 0),
        ),
        ("high below open/close or low above open/close", _inverted()),
    ]


def _inverted() -> pl.Expr:
    return (pl.col("high") < pl.max_horizontal(PRICES)) | (
        pl.col("low") > pl.min_horizontal(PRICES)
    )


def ohlcv_problems(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """One row per group (columns `by` + `problem`) whose candles are unusable.

    Checks nulls, NaN, non-positive prices, negative volume, inverted candles and
    duplicate ts. `frame` must be normalised and sorted by `by` then ts.
    """
    same_group = pl.all_horizontal([pl.col(c) == pl.col(c).shift(1) for c in by] or [pl.lit(True)])
    duplicate = (same_group & (pl.col("ts") == pl.col("ts").shift(1))).fill_null(False)
    checks = [*_problem_exprs(), ("duplicate ts", duplicate)]
    # Fast path, the usual case: one pass finds no bad row at all.
    if frame.is_empty() or not frame.select(pl.any_horizontal(e for _, e in checks).any()).item():
        return pl.DataFrame(schema={**{c: frame.schema[c] for c in by}, "problem": pl.String})
    flags = [expr.any().alias(f"_p{i}") for i, (_, expr) in enumerate(checks)]
    per_group = frame.group_by(by, maintain_order=True).agg(flags) if by else frame.select(flags)
    problem = pl.concat_str(
        [pl.when(pl.col(f"_p{i}")).then(pl.lit(msg)) for i, (msg, _) in enumerate(checks)],
        separator="; ",
        ignore_nulls=True,
    )
    return (
        per_group.with_columns(problem=problem)
        .filter(pl.col("problem") != "")
        .select([*by, "problem"])
    )


def checked_ohlcv(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """One market's candles normalised and sorted by ts; refuses unusable candles.

    Raises DataError naming `name`, the problem and the fix.
    """
    out = normalise_ohlcv(frame, name).sort("ts")
    problems = ohlcv_problems(out, [])
    if problems.height:
        raise DataError(
            name,
            f"unusable candles ({problems['problem'][0]}): drop or repair those rows",
        )
    return out
