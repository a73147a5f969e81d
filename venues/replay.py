"""Replay venue: stored candles (e.g. ../shared/data/binance-usdm) on a simulated clock.

Files: `{SYMBOL}USDT_1h.parquet` and `{SYMBOL}USDT_1d.parquet` with columns ts
(UTC, candle open), open, high, low, close, volume. 4h candles are resampled
from 1h by the one rule venues and strategy share (core/smc/timeframes.py:
resample). The clock advances one hour per cycle.

The files carry prices only, so this venue states its assumptions about the
rest: tick = five significant digits of the first price, lot worth about a
dollar, contract size 1, max leverage 50 for the pinned majors and 20 for the
others, bid/ask spread from a square-root model of 24 h volume (about 1 bp
for $10B a day, 13 bp for $5M). Markets are named like Kraken's multi-collateral
perpetuals (`BTC/USD:USD`) although the source is Binance USDT-margined data.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import polars as pl

from core.errors import DataError, VenueError
from core.smc.timeframes import resample
from schemas.config import TIMEFRAME_SECONDS
from venues.base import (
    OHLCV_COLUMNS,
    CandleIndex,
    CandleRow,
    MarketInfo,
    SimulatedClock,
    Ticker,
    assumed_market,
    empty_ohlcv,
)

STEP = timedelta(hours=1)
DEFAULT_WARMUP = timedelta(days=250)  # the daily 200 EMA needs 200 closed days first
MAJORS = {"BTC", "ETH", "SOL", "DOGE", "BNB"}
log = logging.getLogger("smc_trader.replay")


class ReplayDataError(VenueError):
    """The replay folder is missing or malformed; the message names the file."""


def _read(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ReplayDataError(f"{path}: cannot read parquet ({exc})") from exc
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise ReplayDataError(f"{path}: missing columns {missing}; expected {OHLCV_COLUMNS}")
    ts = frame.schema["ts"]
    if not isinstance(ts, pl.Datetime):
        raise ReplayDataError(f"{path}: column ts must be a datetime, got {ts}")
    ts_utc = (
        pl.col("ts").dt.replace_time_zone("UTC")
        if ts.time_zone is None
        else pl.col("ts").dt.convert_time_zone("UTC")
    )
    if frame.height == 0:
        raise ReplayDataError(f"{path}: no candles in the file")
    if frame["ts"].null_count():
        raise ReplayDataError(f"{path}: {frame['ts'].null_count()} rows have no ts")
    try:
        frame = (
            frame.select(OHLCV_COLUMNS)
            .with_columns(
                ts_utc.dt.cast_time_unit("us"), pl.col(OHLCV_COLUMNS[1:]).cast(pl.Float64)
            )
            .sort("ts")
        )
    except pl.exceptions.PolarsError as exc:
        raise ReplayDataError(f"{path}: prices are not numbers ({exc})".splitlines()[0]) from None
    _check_values(path, frame)
    return frame


def _check_values(path: Path, frame: pl.DataFrame) -> None:
    """Refuse NaN, infinite or non-positive prices and a candle time given twice."""
    prices = frame.select(OHLCV_COLUMNS[1:5])
    bad = frame.filter(
        pl.any_horizontal((~pl.col(c).is_finite()) | (pl.col(c) <= 0) for c in prices.columns)
    )
    if bad.height:
        raise ReplayDataError(
            f"{path}: {bad.height} candle(s) with a NaN, infinite or non-positive price, the "
            f"first at {bad['ts'][0]}; fix or drop them"
        )
    repeated = frame.filter(pl.col("ts").is_duplicated())
    if repeated.height:
        raise ReplayDataError(
            f"{path}: {repeated['ts'].n_unique()} candle time(s) given twice, the first "
            f"{repeated['ts'][0]}; keep one candle per time"
        )


@dataclass(frozen=True)
class ReplayFolder:
    """The usable markets of a folder, and why the others were left out."""

    frames: dict[str, dict[str, pl.DataFrame]]  # base -> timeframe -> candles
    problems: dict[str, str]  # base -> what is wrong with its files
    notes: dict[str, str]  # base -> what was assumed (a daily file resampled, gaps)


def read_folder(data_dir: Path) -> ReplayFolder:
    """Every {BASE}USDT_1h.parquet in the folder; one bad market never stops the others.
    Read once per process while its files are unchanged (names, sizes, modification times).

    Refuses (ReplayDataError) a missing folder, a folder without hourly files, and one in
    which no market is usable (naming every problem)."""
    if not data_dir.is_dir():
        raise ReplayDataError(
            f"replay data folder {data_dir} does not exist; pass --data-dir or set "
            "SMC_TRADER_DATA_DIR to a folder of {SYMBOL}USDT_1h.parquet files"
        )
    files = tuple(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(data_dir.glob("*.parquet"))
    )
    return _read_folder(data_dir, files)


@lru_cache(maxsize=4)
def _read_folder(data_dir: Path, _files: tuple[tuple[str, int, int], ...]) -> ReplayFolder:
    hourly: dict[str, pl.DataFrame] = {}
    problems: dict[str, str] = {}
    notes: dict[str, str] = {}
    for hourly_path in sorted(data_dir.glob("*USDT_1h.parquet")):
        base = hourly_path.name.removesuffix("USDT_1h.parquet")
        try:
            hourly[base] = _read(hourly_path)
        except ReplayDataError as exc:
            problems[base] = str(exc)
            log.warning("REPLAY_DATA_PROBLEM %s: %s; market left out", base, exc)
    if not hourly:
        found = "; ".join(problems.values()) or "no *USDT_1h.parquet files found"
        raise ReplayDataError(f"{data_dir}: no usable market ({found})")
    # Buckets close on the replay's clock, which runs to the folder's last hourly close.
    end = max(frame["ts"][-1] for frame in hourly.values()) + STEP
    out: dict[str, dict[str, pl.DataFrame]] = {}
    for base, h1 in hourly.items():
        daily_path = data_dir / f"{base}USDT_1d.parquet"
        try:
            daily = _read(daily_path) if daily_path.exists() else resample(h1, "1d", end)
        except ReplayDataError as exc:
            problems[base] = str(exc)
            log.warning("REPLAY_DATA_PROBLEM %s: %s; market left out", base, exc)
            continue
        said = [] if daily_path.exists() else [f"no {daily_path.name}: daily candles resampled"]
        gaps = _gaps(h1)
        if gaps:
            said.append(gaps)
        if said:
            notes[base] = "; ".join(said)
        out[base] = {"1h": h1, "4h": resample(h1, "4h", end), "1d": daily}
    if not out:
        raise ReplayDataError(f"{data_dir}: no usable market ({'; '.join(problems.values())})")
    return ReplayFolder(out, problems, notes)


def _gaps(hourly: pl.DataFrame) -> str | None:
    steps = hourly["ts"].diff().drop_nulls()
    holes = hourly.filter(pl.col("ts").diff() > STEP)
    if holes.height == 0:
        return None
    return f"{holes.height} gap(s) in the hourly candles, the longest {steps.max()}"


def load_folder(data_dir: Path) -> dict[str, dict[str, pl.DataFrame]]:
    """{base: {timeframe: candles}} for every usable market (see read_folder)."""
    return read_folder(data_dir).frames


class ReplayVenue:
    """Stored candles replayed one hour per cycle."""

    name = "replay"

    def __init__(self, data_dir: Path, start: datetime | None = None) -> None:
        self.data_dir = data_dir
        folder = read_folder(data_dir.resolve())
        self._frames = folder.frames
        self.problems = dict(folder.problems)  # base -> why its files were left out
        first = min(f["1h"]["ts"][0] for f in self._frames.values())
        self.end = max(f["1h"]["ts"][-1] for f in self._frames.values()) + STEP
        self.clock = SimulatedClock(start or first + DEFAULT_WARMUP, STEP)
        self._markets = [self._market_info(base, f["1h"]) for base, f in self._frames.items()]
        self._by_symbol = {m.symbol: m.base for m in self._markets}
        self._index: dict[tuple[str, str], CandleIndex] = {}
        self._listed_at = {base: f["1h"]["ts"][0] + STEP for base, f in self._frames.items()}

    @staticmethod
    def _market_info(base: str, hourly: pl.DataFrame) -> MarketInfo:
        price = float(hourly["close"][0])
        return assumed_market(base, f"{base}USDT", price, 50.0 if base in MAJORS else 20.0)

    def _check_not_exhausted(self) -> None:
        if self.clock.now() > self.end:
            raise VenueError(
                f"replay data in {self.data_dir} ends at {self.end:%Y-%m-%d %H:%M}; "
                "nothing left to replay: start a fresh database (--db) or set venue.replay_start"
            )

    def all_markets(self) -> list[MarketInfo]:
        """Every market in the folder, started or not."""
        return list(self._markets)

    def markets(self) -> list[MarketInfo]:
        """Markets whose data has started by the clock's time."""
        now = self.clock.now()
        return [m for m in self._markets if self._listed_at[m.base] <= now]

    def tickers(self) -> dict[str, Ticker]:
        """Last close and 24 h turnover (sum of close x volume over the bars closed in the
        last 24 h, summed exactly: math.fsum) per started market; the spread from its model."""
        self._check_not_exhausted()
        now = self.clock.now()
        out = {}
        for market in self.markets():
            hourly = self._candles(market.base, "1h")
            day = hourly.rows_between(now - timedelta(hours=24), now, STEP)
            if not day:
                continue
            last = day[-1][4]
            volume_usd = math.fsum(close * volume for _, _, _, _, close, volume in day)
            spread_bps = min(max(3e4 / math.sqrt(max(volume_usd, 1.0)), 0.5), 80.0)
            half = last * spread_bps / 2e4
            out[market.symbol] = Ticker(market.symbol, last, last - half, last + half, volume_usd)
        return out

    def ohlcv(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> pl.DataFrame:
        found = self._window(symbol, timeframe, since, until)
        if found is None:
            return empty_ohlcv()
        index, since, until, step = found
        return index.closed_between(since, until, step)

    def candle_rows(
        self, symbol: str, timeframe: str, since: datetime, until: datetime
    ) -> list[CandleRow]:
        """The candles `ohlcv` returns, as (ts, open, high, low, close, volume) tuples."""
        found = self._window(symbol, timeframe, since, until)
        if found is None:
            return []
        index, since, until, step = found
        return index.rows_between(since, until, step)

    def _window(
        self, symbol: str, timeframe: str, since: datetime, until: datetime
    ) -> tuple[CandleIndex, datetime, datetime, timedelta] | None:
        base = self._by_symbol.get(symbol)
        if base is None:
            raise DataError(symbol, f"not in the replay folder {self.data_dir}")
        if timeframe not in self._frames[base]:
            raise DataError(symbol, f"timeframe {timeframe} not offered")
        until = min(until, self.clock.now())
        if since >= until:
            return None
        step = timedelta(seconds=TIMEFRAME_SECONDS[timeframe])
        return self._candles(base, timeframe), since, until, step

    def _candles(self, base: str, timeframe: str) -> CandleIndex:
        index = self._index.get((base, timeframe))
        if index is None:
            index = self._index[(base, timeframe)] = CandleIndex(self._frames[base][timeframe])
        return index

    def close(self) -> None:
        """Nothing to release."""
