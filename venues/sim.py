"""The embedded default venue: a seeded synthetic market of perpetuals.

Each market's hourly path mixes three behaviours traders recognise:
- regimes that switch at random (trend up, trend down, range) with a drift per regime;
- volatility clustering: log-volatility follows a slowly mean-reverting process;
- volume that rises with absolute returns around a per-market level.
Per-market 24 h volume and spread are drawn so that tiers A, B, C and rejects all
occur; the pinned majors are among the markets. Everything derives from the seed:
the same seed gives the same market on any machine, offline.

The clock is simulated and starts `WARMUP_DAYS` after the epoch, so the daily
200 EMA has history from the first cycle; it advances one hour per cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np
import polars as pl

from core.errors import DataError, VenueError
from core.smc.timeframes import resample
from schemas.config import TIMEFRAME_SECONDS
from venues.base import (
    MarketInfo,
    SimulatedClock,
    Ticker,
    assumed_market,
    closed_between,
    empty_ohlcv,
)

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
WARMUP_DAYS = 420
HORIZON_HOURS = 3 * 365 * 24
STEP = timedelta(hours=1)

# (base, start price, log10 of typical 24 h USD volume)
_MAJORS = [
    ("BTC", 62_000.0, 9.8),
    ("ETH", 3_100.0, 9.5),
    ("SOL", 140.0, 9.0),
    ("DOGE", 0.15, 8.6),
    ("BNB", 580.0, 8.3),
]
_OTHERS = [
    "XRP",
    "ADA",
    "AVAX",
    "LINK",
    "DOT",
    "LTC",
    "BCH",
    "TRX",
    "POL",
    "ATOM",
    "NEAR",
    "APT",
    "ARB",
    "OP",
    "SUI",
    "SEI",
    "TIA",
    "INJ",
    "FIL",
    "ETC",
    "XLM",
    "HBAR",
    "ICP",
    "AAVE",
    "UNI",
    "LDO",
    "RUNE",
    "SAND",
    "MANA",
    "AXS",
    "GALA",
    "APE",
    "PEPE",
    "SHIB",
    "WIF",
    "BONK",
    "FLOKI",
    "JUP",
    "PYTH",
    "ENA",
    "ONDO",
    "TAO",
    "RENDER",
    "GRT",
    "IMX",
    "STX",
    "KAS",
    "ALGO",
    "EGLD",
    "FET",
]


@dataclass(frozen=True)
class SimMarket:
    info: MarketInfo
    start_price: float
    log_volume_usd: float
    base_spread_bps: float
    hourly_vol: float


def _spread_bps(log_volume_usd: float, rng: np.random.Generator) -> float:
    # Thin books are wide: about 1 bp at $10B a day, tens of bps below $1M.
    return float(np.clip(3e4 / np.sqrt(10**log_volume_usd), 0.5, 80.0) * rng.uniform(0.8, 1.3))


def build_markets(seed: int, count: int) -> list[SimMarket]:
    rng = np.random.default_rng([seed, 0])
    names = [m[0] for m in _MAJORS] + _OTHERS
    names += [f"SIM{i:03d}" for i in range(len(names), count)]
    markets = []
    for i, base in enumerate(names[:count]):
        if i < len(_MAJORS):
            _, price, log_vol = _MAJORS[i]
        else:
            price = float(10 ** rng.uniform(-4.5, 3.0))
            log_vol = float(rng.uniform(5.0, 8.6))  # $100k .. $400M a day
        info = assumed_market(base, f"PF_{base}USD", price, 50.0 if i < len(_MAJORS) else 20.0)
        markets.append(
            SimMarket(
                info=info,
                start_price=price,
                log_volume_usd=log_vol,
                base_spread_bps=_spread_bps(log_vol, rng),
                hourly_vol=float(rng.uniform(0.004, 0.012) * (0.7 if i < len(_MAJORS) else 1.0)),
            )
        )
    return markets


def _regime_drift(rng: np.random.Generator, n: int, vol: float) -> np.ndarray:
    """Piecewise-constant drift: regimes of ~10 days, each trend up, trend down or range."""
    switches = rng.random(n) < 1.0 / 240.0
    regime_id = np.cumsum(switches)
    kinds = rng.choice([-1.0, 0.0, 1.0], size=regime_id[-1] + 1, p=[0.35, 0.3, 0.35])
    strength = rng.uniform(0.015, 0.06, size=regime_id[-1] + 1) * vol
    return (kinds * strength)[regime_id]


def _clustered_vol(rng: np.random.Generator, n: int, vol: float) -> np.ndarray:
    """Log-volatility as a mean-reverting AR(1) (an EWM of noise): calm and wild spells."""
    shocks = pl.Series(rng.standard_normal(n))
    log_vol = shocks.ewm_mean(alpha=0.02, adjust=False).to_numpy() * 4.0
    return vol * np.exp(np.clip(log_vol, -1.5, 1.5))


def generate_hourly(market: SimMarket, seed: int, index: int, hours: int) -> pl.DataFrame:
    """The market's hourly candles from EPOCH: deterministic in (seed, index)."""
    rng = np.random.default_rng([seed, 1, index])
    sigma = _clustered_vol(rng, hours, market.hourly_vol)
    returns = _regime_drift(rng, hours, market.hourly_vol) + sigma * rng.standard_normal(hours)
    close = market.start_price * np.exp(np.cumsum(returns))
    open_ = np.concatenate(([market.start_price], close[:-1]))
    wick_up = np.abs(rng.standard_normal(hours)) * sigma * 0.6
    wick_dn = np.abs(rng.standard_normal(hours)) * sigma * 0.6
    high = np.maximum(open_, close) * np.exp(wick_up)
    low = np.minimum(open_, close) * np.exp(-wick_dn)
    hourly_usd = 10**market.log_volume_usd / 24.0
    activity = 0.5 + np.abs(returns) / market.hourly_vol * 0.5
    volume = hourly_usd * activity * rng.lognormal(0.0, 0.3, hours) / close
    # Round to the tick's decimals (not x/tick*tick, which leaves float dust like 169.6400001).
    decimals = max(0, round(-np.log10(market.info.tick_size)))
    start = EPOCH
    return pl.DataFrame(
        {
            "ts": pl.datetime_range(
                start, start + timedelta(hours=hours - 1), "1h", eager=True, time_zone="UTC"
            ),
            "open": np.round(open_, decimals),
            "high": np.round(high, decimals),
            "low": np.round(low, decimals),
            "close": np.round(close, decimals),
            "volume": volume,
        }
    ).with_columns(
        # Rounding can push open/close past a rounded wick; keep the candle consistent.
        pl.max_horizontal("high", "open", "close").alias("high"),
        pl.min_horizontal("low", "open", "close").alias("low"),
    )


@lru_cache(maxsize=4)
def _universe(seed: int, count: int) -> tuple[list[SimMarket], dict[str, dict[str, pl.DataFrame]]]:
    markets = build_markets(seed, count)
    frames: dict[str, dict[str, pl.DataFrame]] = {}
    for i, market in enumerate(markets):
        hourly = generate_hourly(market, seed, i, HORIZON_HOURS)
        end = EPOCH + timedelta(hours=HORIZON_HOURS)
        frames[market.info.symbol] = {tf: resample(hourly, tf, end) for tf in TIMEFRAME_SECONDS}
    return markets, frames


class SimVenue:
    """Seeded synthetic perpetuals with a simulated clock (one hour per cycle)."""

    name = "sim"

    def __init__(self, seed: int = 7, count: int = 56, start: datetime | None = None) -> None:
        self.seed = seed
        self._markets, self._frames = _universe(seed, count)
        self.clock = SimulatedClock(start or EPOCH + timedelta(days=WARMUP_DAYS), STEP)

    def markets(self) -> list[MarketInfo]:
        return [m.info for m in self._markets]

    def tickers(self) -> dict[str, Ticker]:
        now = self.clock.now()
        end = EPOCH + timedelta(hours=HORIZON_HOURS)
        if now > end:
            raise VenueError(
                f"the sim market ends at {end:%Y-%m-%d}; the clock is at {now:%Y-%m-%d}: "
                "start a fresh database (--db) to begin again"
            )
        out = {}
        for i, market in enumerate(self._markets):
            last_day = self.ohlcv(market.info.symbol, "1h", now - timedelta(hours=24), now)
            if last_day.is_empty():
                continue
            last = float(last_day["close"][-1])
            rng = np.random.default_rng([self.seed, 2, i, int(now.timestamp()) // 3600])
            half = last * market.base_spread_bps * rng.uniform(0.8, 1.25) / 2e4
            volume_usd = float((last_day["close"] * last_day["volume"]).sum())
            out[market.info.symbol] = Ticker(
                market.info.symbol, last, last - half, last + half, volume_usd
            )
        return out

    def ohlcv(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> pl.DataFrame:
        frames = self._frames.get(symbol)
        if frames is None:
            raise DataError(symbol, "not a market of the sim venue")
        if timeframe not in frames:
            raise DataError(symbol, f"timeframe {timeframe} not offered")
        step = timedelta(seconds=TIMEFRAME_SECONDS[timeframe])
        until = min(until, self.clock.now())
        frame = frames[timeframe]
        if since >= until:
            return empty_ohlcv()
        return closed_between(frame, since, until, step)

    def close(self) -> None:
        """Nothing to release."""
