"""Execution parameters: the paper account, the position lifecycle, live-trading switches."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Frozen


class ExecutionConfig(Frozen):
    paper_initial_cash: float = Field(
        345.0, gt=0, description="sim/replay: starting USD equity of the paper account"
    )
    maker_fee: float = Field(0.0002, ge=0, lt=0.01, description="paper: Kraken Futures maker fee")
    taker_fee: float = Field(0.0005, ge=0, lt=0.01, description="paper: Kraken Futures taker fee")
    slippage_bps: float = Field(2.0, ge=0, le=100, description="paper: slippage on taker fills")
    tp_fractions: tuple[float, float, float] = Field(
        (0.4, 0.3, 0.3), description="share of the position each of TP1, TP2, TP3 closes"
    )
    break_even_after_tp1: bool = Field(
        False, description="move the stop to the entry price once TP1 has filled"
    )
    import_stop_distance_pct: float = Field(
        0.03, gt=0, lt=0.5, description="stop distance for an imported (PHANTOM) position"
    )
    import_stop_atr_multiple: float = Field(
        2.0, gt=0, description="stop distance in ATRs for an imported position, when ATR is known"
    )

    crossed_stop_action: Literal["close", "reprice"] = Field(
        "close",
        description="a stop already through the mark (after a gap): close the position "
        "reduce-only (what the stop would have done), or re-price the stop beyond the mark",
    )
    crossed_stop_buffer_pct: float = Field(
        0.005, gt=0, lt=0.5, description="a re-priced stop sits this share beyond the mark"
    )
    stop_attempts_per_cycle: int = Field(
        2, ge=1, le=10, description="stop orders sent per position and cycle at most"
    )
    fill_reread_hours: float = Field(
        6.0,
        ge=0,
        le=168,
        description="fills are re-read this far before the newest one seen, so a fill "
        "reported late is still applied (each fill once, by its id)",
    )

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> ExecutionConfig:
        total = sum(self.tp_fractions)
        if abs(total - 1.0) > 1e-9 or min(self.tp_fractions) < 0:
            raise ValueError(
                f"execution.tp_fractions {self.tp_fractions} must be >= 0 and sum to 1 "
                f"(got {total})"
            )
        return self
