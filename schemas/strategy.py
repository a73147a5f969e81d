"""Strategy parameters (SPEC §3). Every relaxation is off by default.

Each parameter has its one default here; `core/smc` reads it and never restates
it. Bars are bars of the timeframe a feature is computed on.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.base import Frozen

BIAS_TIMEFRAME = "1d"  # the daily bias: its EMA needs a far longer window than structure


class StrategyConfig(Frozen):
    # -- swings and market structure ---------------------------------------
    swing_length: int = Field(5, ge=1, le=50, description="bars each side that confirm a swing")
    structure_lookback_bars: int = Field(
        100,
        ge=5,
        le=1000,
        description="oldest swing pivot (bars back) whose break still counts as structure",
    )
    structure_max_age_bars: int = Field(
        30,
        ge=1,
        le=500,
        description="bars a break of structure stays the valid structure (and sets the trend)",
    )
    # -- daily bias, volatility --------------------------------------------
    ema_period: int = Field(200, ge=2, le=1000, description="EMA period of the daily bias")
    ema_warmup_periods: int = Field(
        3,
        ge=1,
        le=20,
        description="history behind every EMA value, in EMA periods (the EMA is re-seeded on a "
        "fixed calendar grid so a window of recent bars reproduces it exactly)",
    )
    atr_period: int = Field(14, ge=2, le=200, description="ATR period (simple mean of true range)")
    atr_stop_buffer: float = Field(
        0.5, ge=0.0, le=5.0, description="stop distance beyond the invalidation point, in ATR"
    )
    # -- Fibonacci / OTE ----------------------------------------------------
    ote_min: float = Field(0.618, gt=0.0, lt=1.0, description="shallow edge of the OTE zone")
    ote_max: float = Field(0.786, gt=0.0, lt=1.0, description="deep edge of the OTE zone")
    ote_tolerance: float = Field(
        0.0,
        ge=0.0,
        le=0.3,
        description="relaxation 1: widen the OTE zone by this retracement on each side (0 = off)",
    )
    tp2_extension: float = Field(
        1.272, gt=1.0, le=5.0, description="TP2 as an extension of the impulse leg"
    )
    tp3_extension: float = Field(
        1.618, gt=1.0, le=5.0, description="TP3 as an extension of the impulse leg"
    )
    # -- relaxations (SPEC §3, all off) -------------------------------------
    allow_1h_structure: bool = Field(
        False, description="relaxation 2: accept 1H structure when 4H has none in the bias"
    )
    momentum: bool = Field(
        False, description="relaxation 3: run the momentum breakout strategy beside SMC"
    )
    widen_tight_smc: bool = Field(
        False, description="relaxation 4: widen the tight_smc regime criteria"
    )
    # -- regime -------------------------------------------------------------
    regime_window_bars: int = Field(
        50, ge=5, le=500, description="bars in which CHoCH flips are counted for the regime"
    )
    tight_max_choch: int = Field(
        2, ge=0, le=50, description="tight_smc: most CHoCH flips within regime_window_bars"
    )
    tight_min_leg_atr: float = Field(
        2.0, gt=0.0, description="tight_smc: smallest impulse leg, in ATR (below: weak_impulse)"
    )
    tight_max_leg_atr: float = Field(
        12.0, gt=0.0, description="tight_smc: largest impulse leg, in ATR (above: extended)"
    )
    max_atr_pct: float = Field(
        0.08, gt=0.0, lt=1.0, description="ATR above this share of price is the volatile regime"
    )
    widen_leg_factor: float = Field(
        1.5,
        ge=1.0,
        le=10.0,
        description="widen_tight_smc: divides tight_min_leg_atr and multiplies tight_max_leg_atr",
    )
    widen_extra_choch: int = Field(
        1, ge=0, le=50, description="widen_tight_smc: CHoCH flips allowed on top of the limit"
    )
    # -- zones (score inputs) -----------------------------------------------
    fvg_lookback_bars: int = Field(
        50, ge=1, le=1000, description="bars a fair value gap stays a scoring zone if unfilled"
    )
    liquidity_tolerance_atr: float = Field(
        0.1, ge=0.0, le=5.0, description="two swing highs (lows) this close, in ATR, are equal"
    )
    # -- risk validation ------------------------------------------------------
    min_reward_risk: float = Field(
        1.0, gt=0.0, le=20.0, description="smallest reward:risk from entry to TP1"
    )
    max_stop_pct: float = Field(
        0.15, gt=0.0, lt=1.0, description="largest stop distance as a share of the entry price"
    )
    stale_after_bars: int = Field(
        2,
        ge=1,
        le=100,
        description="a timeframe whose last closed bar is older than this many bars is stale",
    )
    # -- momentum (relaxation 3) ------------------------------------------------
    momentum_max_age_bars: int = Field(
        1, ge=0, le=50, description="momentum: 1H break no older than this many bars"
    )
    momentum_max_extension_atr: float = Field(
        1.5, gt=0.0, le=20.0, description="momentum: entry at most this far beyond the break, ATR"
    )
    # -- score -----------------------------------------------------------------
    score_weight_ote: float = Field(
        0.3, ge=0.0, le=1.0, description="score share: entry depth near the OTE mid (0.705)"
    )
    score_weight_reward_risk: float = Field(
        0.3, ge=0.0, le=1.0, description="score share: reward:risk to TP2 (3 or more scores 1)"
    )
    score_weight_confluence: float = Field(
        0.4,
        ge=0.0,
        le=1.0,
        description="score share: order block / fair value gap in the OTE zone, liquidity swept",
    )
    # -- incremental computation ---------------------------------------------
    incremental_window_bars: int = Field(
        600,
        ge=50,
        le=100_000,
        description="bars per market recomputed each cycle on the structure timeframes (4h, "
        "1h); must cover structure_memory_bars so the result equals a full recompute (the "
        "daily bias timeframe is recomputed over bias_window_bars)",
    )

    @model_validator(mode="after")
    def _coherent(self) -> StrategyConfig:
        problems = []
        if not self.ote_min < self.ote_max:
            problems.append(f"ote_min ({self.ote_min}) must be < ote_max ({self.ote_max})")
        if not self.tight_min_leg_atr < self.tight_max_leg_atr:
            problems.append(
                f"tight_min_leg_atr ({self.tight_min_leg_atr}) must be < "
                f"tight_max_leg_atr ({self.tight_max_leg_atr})"
            )
        if not self.tp2_extension < self.tp3_extension:
            problems.append(
                f"tp2_extension ({self.tp2_extension}) must be < tp3_extension "
                f"({self.tp3_extension})"
            )
        weights = self.score_weight_ote + self.score_weight_reward_risk
        if weights + self.score_weight_confluence <= 0:
            problems.append("the score_weight_* parameters must not all be 0")
        if self.incremental_window_bars < self.structure_memory_bars:
            problems.append(
                f"incremental_window_bars ({self.incremental_window_bars}) must be >= "
                f"structure_memory_bars ({self.structure_memory_bars}), or a window would not "
                "reproduce a full recompute: raise it or shorten the lookbacks"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def ema_block_bars(self) -> int:
        """Bars in one EMA re-seeding block: every EMA value has 1 to 2 blocks of history."""
        return self.ema_period * self.ema_warmup_periods

    @property
    def structure_memory_bars(self) -> int:
        """Bars of history that fully determine every structure/zone/regime feature of a bar.

        A conservative sum of the chained lookbacks in core/smc: swing confirmation
        (2 x swing_length), pivot age, liquidity pools and sweeps (3 x lookback),
        trend age twice (break kind, then last kind), CHoCH counting, FVGs, ATR.
        """
        return (
            2 * self.swing_length
            + 3 * self.structure_lookback_bars
            + 2 * self.structure_max_age_bars
            + self.regime_window_bars
            + self.fvg_lookback_bars
            + self.atr_period
            + 2
        )

    @property
    def feature_memory_bars(self) -> int:
        """Bars before a row that determine all its features, EMA included: a window this
        long reproduces every column of compute_features."""
        return max(self.structure_memory_bars, 2 * self.ema_block_bars)

    @property
    def bias_window_bars(self) -> int:
        """Daily bars the cycle recomputes: the EMA's whole memory (the bias needs it)."""
        return max(self.incremental_window_bars, self.feature_memory_bars)

    @property
    def bias_warmup_bars(self) -> int:
        """Daily bars a market must have had since its first candle before its EMA, and so
        its bias, counts: one EMA period. Before it the market is INSUFFICIENT_HISTORY."""
        return self.ema_period

    def window_bars(self, timeframe: str) -> int:
        """Closed bars per market a cycle computes on `timeframe`: bias_window_bars on the
        daily bias timeframe, incremental_window_bars on the structure timeframes. A store
        must hold at least this much history for a decision not to depend on its age."""
        if timeframe == BIAS_TIMEFRAME:
            return self.bias_window_bars
        return self.incremental_window_bars
