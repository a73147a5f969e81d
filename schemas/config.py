"""Configuration models: the one place where every parameter has its default.

`configs/config.yaml` and `configs/safety.yaml` override these defaults; they
never restate them (a test enforces it). The safety relations of SPEC §8 are
proven here, at load time, so a configuration that would let the auction trip
its own kill switch never starts.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator

from schemas.base import Frozen
from schemas.execution import ExecutionConfig
from schemas.operations import AlertsConfig
from schemas.risk import RiskConfig
from schemas.strategy import StrategyConfig

Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Positive = Annotated[float, Field(gt=0.0)]

TIMEFRAME_SECONDS: dict[str, int] = {"1h": 3_600, "4h": 14_400, "1d": 86_400}


class VenueKind(StrEnum):
    SIM = "sim"
    REPLAY = "replay"
    KRAKEN = "kraken"


class Tier(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    REJECT = "REJECT"


class SafetyConfig(Frozen):
    """SPEC §8. Read by the risk manager (pre-trade) and the invariant monitor (post-trade)."""

    max_margin_utilization_pct: Fraction = Field(0.92, description="margin utilisation that HALTs")
    degraded_margin_utilization_pct: Fraction = Field(
        0.85, description="margin utilisation that DEGRADEs (no new entries)"
    )
    max_single_position_pct_equity: Fraction = Field(
        0.25, description="largest position notional as a share of equity (clamped pre-trade)"
    )
    max_equity_drawdown_pct: Fraction = Field(
        0.15, description="drawdown from the equity high-water mark that HALTs"
    )
    degraded_equity_drawdown_pct: Fraction = Field(
        0.10, description="drawdown from the equity high-water mark that DEGRADEs"
    )
    max_concurrent_positions: int = Field(10, ge=1, description="open positions that HALT")
    auction_max_margin_util: Fraction = Field(
        0.90, description="auction budget: margin in use after allocation, share of equity"
    )
    degraded_unprotected_cycles: int = Field(
        2,
        ge=1,
        description="cycle ends in a row an open position has had no working stop: DEGRADED",
    )
    max_unprotected_cycles: int = Field(
        4, ge=2, description="cycle ends in a row an open position has had no working stop: HALT"
    )
    kill_switch_flatten: bool = Field(
        False, description="on HALT also flatten positions (default: keep them, protected)"
    )
    kill_switch_cancel_take_profits: bool = Field(
        False, description="on HALT also cancel take-profit orders (stops are always kept)"
    )

    @model_validator(mode="after")
    def _prove_threshold_relations(self) -> SafetyConfig:
        problems = list(_threshold_violations(self))
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _threshold_violations(s: SafetyConfig) -> list[str]:
    """Every SPEC §8 relation that does not hold, each naming both parameters."""
    checks = [
        (
            "degraded_margin_utilization_pct",
            s.degraded_margin_utilization_pct,
            "<=",
            "auction_max_margin_util",
            s.auction_max_margin_util,
            s.degraded_margin_utilization_pct <= s.auction_max_margin_util,
            "DEGRADED must be reached no later than a full auction",
        ),
        (
            "auction_max_margin_util",
            s.auction_max_margin_util,
            "<",
            "max_margin_utilization_pct",
            s.max_margin_utilization_pct,
            s.auction_max_margin_util < s.max_margin_utilization_pct,
            "a full auction would trip the kill switch (the seed's outage 1)",
        ),
        (
            "degraded_margin_utilization_pct",
            s.degraded_margin_utilization_pct,
            "<",
            "max_margin_utilization_pct",
            s.max_margin_utilization_pct,
            s.degraded_margin_utilization_pct < s.max_margin_utilization_pct,
            "every degraded level must sit below its halt level",
        ),
        (
            "degraded_equity_drawdown_pct",
            s.degraded_equity_drawdown_pct,
            "<",
            "max_equity_drawdown_pct",
            s.max_equity_drawdown_pct,
            s.degraded_equity_drawdown_pct < s.max_equity_drawdown_pct,
            "every degraded level must sit below its halt level",
        ),
        (
            "degraded_unprotected_cycles",
            s.degraded_unprotected_cycles,
            "<",
            "max_unprotected_cycles",
            s.max_unprotected_cycles,
            s.degraded_unprotected_cycles < s.max_unprotected_cycles,
            "every degraded level must sit below its halt level",
        ),
    ]
    return [
        f"{a} ({va}) must be {op} {b} ({vb}): {why}; fix one of them in safety.yaml"
        for a, va, op, b, vb, ok, why in checks
        if not ok
    ]


class TierThreshold(Frozen):
    min_volume_24h_usd: Positive = Field(description="24 h futures volume in USD")
    max_spread_bps: Positive = Field(description="bid/ask spread in basis points of mid")


def _default_tiers() -> dict[Tier, TierThreshold]:
    return {
        Tier.A: TierThreshold(min_volume_24h_usd=50_000_000, max_spread_bps=5),
        Tier.B: TierThreshold(min_volume_24h_usd=5_000_000, max_spread_bps=15),
        Tier.C: TierThreshold(min_volume_24h_usd=500_000, max_spread_bps=40),
    }


class MarketsConfig(Frozen):
    """SPEC §2: the market registry's inputs."""

    pinned_tier_a: tuple[str, ...] = Field(
        ("BTC", "ETH", "SOL", "DOGE", "BNB"),
        description="base assets always tier A, bypassing liquidity filters",
    )
    tiers: dict[Tier, TierThreshold] = Field(
        default_factory=_default_tiers, description="per tier: minimum volume, maximum spread"
    )
    candidate_symbols: tuple[str, ...] = Field(
        (), description="base assets to consider (empty: every perpetual the venue lists)"
    )
    settle: str = Field("USD", description="settlement currency of the perpetuals traded")

    @model_validator(mode="before")
    @classmethod
    def _normalise_liquidity_tiers(cls, data: Any) -> Any:
        """Accept the deprecated `liquidity_tiers: {A: [BTC, ...], ...}` form, never reject it."""
        if not isinstance(data, dict) or "liquidity_tiers" not in data:
            return data
        import warnings

        data = dict(data)
        legacy = data.pop("liquidity_tiers") or {}
        symbols: list[str] = list(data.get("candidate_symbols") or [])
        for coins in legacy.values():
            for coin in coins or []:
                if coin not in symbols:
                    symbols.append(coin)
        data["candidate_symbols"] = symbols
        warnings.warn(
            "markets.liquidity_tiers is deprecated: its coins were merged into "
            "markets.candidate_symbols and tiers are now measured from volume and spread; "
            "replace liquidity_tiers with candidate_symbols",
            DeprecationWarning,
            stacklevel=2,
        )
        return data

    @model_validator(mode="after")
    def _tiers_ordered(self) -> MarketsConfig:
        missing = [t for t in (Tier.A, Tier.B, Tier.C) if t not in self.tiers]
        if missing:
            raise ValueError(f"markets.tiers lacks {missing}: give A, B and C thresholds")
        a, b, c = self.tiers[Tier.A], self.tiers[Tier.B], self.tiers[Tier.C]
        if not (a.min_volume_24h_usd >= b.min_volume_24h_usd >= c.min_volume_24h_usd):
            raise ValueError("markets.tiers min_volume_24h_usd must not increase from A to C")
        if not (a.max_spread_bps <= b.max_spread_bps <= c.max_spread_bps):
            raise ValueError("markets.tiers max_spread_bps must not decrease from A to C")
        return self


class VenueConfig(Frozen):
    kind: VenueKind = Field(VenueKind.SIM, description="sim | replay | kraken")
    seed: int = Field(7, description="sim: seed of the synthetic market")
    sim_markets: int = Field(56, ge=6, le=500, description="sim: number of perpetuals")
    data_dir: Path = Field(
        Path("../shared/data/binance-usdm"),
        description="replay: folder of {SYMBOL}USDT_{1h,1d}.parquet (env SMC_TRADER_DATA_DIR)",
    )
    replay_start: str | None = Field(
        None, description="replay: first decision time (ISO, UTC); default 250 days into data"
    )
    sandbox: bool = Field(False, description="kraken: use the demo exchange")
    api_url: str | None = Field(
        None, description="kraken: base URL override (a local Kraken-Futures simulator)"
    )
    timeout_ms: int = Field(10_000, ge=100, description="kraken: HTTP timeout per request")
    read_attempts: int = Field(
        8, ge=1, le=20, description="kraken: tries of one read (429, 5xx, timeout) before it fails"
    )
    read_backoff_s: float = Field(
        0.2, ge=0.0, le=10.0, description="kraken: wait before the first retry of a read (doubles)"
    )
    read_backoff_max_s: float = Field(
        3.2, ge=0.0, le=60.0, description="kraken: longest wait between two tries of a read"
    )
    cost_budget: int = Field(
        450,
        ge=25,
        le=500,
        description="kraken: request cost the bot spends per 10 s (Kraken allows 500)",
    )

    @model_validator(mode="after")
    def _backoff_ordered(self) -> VenueConfig:
        if self.read_backoff_max_s < self.read_backoff_s:
            raise ValueError(
                f"venue.read_backoff_max_s ({self.read_backoff_max_s}) must be >= "
                f"venue.read_backoff_s ({self.read_backoff_s})"
            )
        return self


HISTORY_BARS: dict[str, int] = {"1d": 1200, "4h": 600, "1h": 1000}


class OhlcvConfig(Frozen):
    timeframes: tuple[str, ...] = Field(("1d", "4h", "1h"), description="timeframes kept")
    history_bars: dict[str, int] = Field(
        default_factory=lambda: dict(HISTORY_BARS),
        description="bars fetched for a market seen for the first time (a timeframe left "
        "out keeps its default); must cover strategy.window_bars of that timeframe",
    )
    max_concurrency: int = Field(4, ge=1, le=32, description="parallel market fetches")
    page_limit: int = Field(2000, ge=10, le=5000, description="candles per venue request")

    @field_validator("history_bars", mode="before")
    @classmethod
    def _every_timeframe_has_history(cls, value: Any) -> Any:
        """An override of one timeframe keeps the others' defaults (never a silent 500)."""
        return {**HISTORY_BARS, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _known_timeframes(self) -> OhlcvConfig:
        unknown = [tf for tf in self.timeframes if tf not in TIMEFRAME_SECONDS]
        unknown += [tf for tf in self.history_bars if tf not in TIMEFRAME_SECONDS]
        if unknown:
            raise ValueError(
                f"ohlcv timeframes {unknown} unknown: use some of {sorted(TIMEFRAME_SECONDS)}"
            )
        short = {tf: n for tf, n in self.history_bars.items() if n < 1}
        if short:
            raise ValueError(f"ohlcv.history_bars {short}: fetch at least one bar")
        return self


class CycleConfig(Frozen):
    interval_seconds: int = Field(60, ge=5, description="time between cycle starts (trader run)")
    db_path: Path = Field(Path("data/trading.duckdb"), description="DuckDB file")


class AppConfig(Frozen):
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    venue: VenueConfig = Field(default_factory=VenueConfig)
    markets: MarketsConfig = Field(default_factory=MarketsConfig)
    ohlcv: OhlcvConfig = Field(default_factory=OhlcvConfig)
    cycle: CycleConfig = Field(default_factory=CycleConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @model_validator(mode="after")
    def _prove_history_relations(self) -> AppConfig:
        problems = _history_violations(self.ohlcv, self.strategy)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _history_violations(ohlcv: OhlcvConfig, strategy: StrategyConfig) -> list[str]:
    """Each timeframe whose first load is shorter than what a cycle reads of it.

    A market seen for the first time loads ohlcv.history_bars bars; a cycle computes
    strategy.window_bars of them. With less stored than read, the first bars stored
    stand in for the market's first candles and the decision (the daily EMA, seeded
    on its calendar grid) depends on the day the bot started.
    """
    needs = {
        "1d": "strategy.bias_window_bars ({n}: the daily EMA's memory, 2 x ema_period x "
        "ema_warmup_periods)",
    }
    problems = []
    for tf in ohlcv.timeframes:
        loaded, read = ohlcv.history_bars[tf], strategy.window_bars(tf)
        if loaded < read:
            need = needs.get(tf, "strategy.incremental_window_bars ({n})").format(n=read)
            problems.append(
                f"ohlcv.history_bars[{tf!r}] ({loaded}) must be >= {need}: a new market would "
                "load less history than a cycle reads, so its decisions would depend on the "
                f"day the bot started; raise ohlcv.history_bars[{tf!r}] or shorten that "
                "strategy window in config.yaml"
            )
    return problems


class Secrets(Frozen):
    """Exchange credentials. SecretStr keeps them out of every repr and str."""

    kraken_api_key: SecretStr | None = None
    kraken_api_secret: SecretStr | None = None

    @property
    def has_kraken(self) -> bool:
        return self.kraken_api_key is not None and self.kraken_api_secret is not None
