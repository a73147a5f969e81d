"""Paper engine parameters: fees, slippage, leverage, partial fills, starting cash."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """Everything the paper engine charges and assumes.

    Fees are Kraken Futures' base tier (maker 0.02 %, taker 0.05 %). Slippage is
    charged on every taker fill (market, stop and triggered take-profit orders,
    and limit orders that cross at submission), against the trader.
    Partial fills: every fill event (a submission or one bar) fills at most
    `max_fill_fraction` of an order's size (at least one lot), and, when
    `volume_participation` is set, at most that share of the bar's volume;
    each order is capped on its own (the engine keeps no shared book).
    Triggered orders of the kinds in `trigger_partial_kinds` fill at most
    `trigger_fill_fraction` of their size per fill event; `triggered_remainder`
    says what becomes of the rest of a triggered market order (a stop or
    take-profit without a limit price): "keep" works it in the following bars,
    "cancel" cancels it at once, as Kraken does with the immediate-or-cancel
    order a triggered stop-market becomes. A triggered stop-limit always rests.
    """

    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    slippage_bps: float = 0.0
    initial_cash: float = 10_000.0
    default_leverage: float = 10.0  # capped by each market's max_leverage
    leverage: Mapping[str, float] = field(default_factory=dict)  # per unified symbol
    max_fill_fraction: float = 1.0
    volume_participation: float | None = None
    check_margin: bool = True  # refuse entries whose initial margin exceeds free equity
    trigger_fill_fraction: float = 1.0
    triggered_remainder: str = "keep"  # "keep" | "cancel"
    trigger_partial_kinds: tuple[str, ...] = ("stop",)  # OrderType values
    seed: int = 0  # order and fill ids are drawn from it: same inputs, same ids

    def __post_init__(self) -> None:
        for name in ("maker_fee", "taker_fee", "slippage_bps"):
            if getattr(self, name) < 0:
                raise ValueError(f"PaperConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.max_fill_fraction <= 1:
            raise ValueError(
                f"PaperConfig.max_fill_fraction must be in (0, 1], got {self.max_fill_fraction}"
            )
        if not 0 < self.trigger_fill_fraction <= 1:
            raise ValueError(
                "PaperConfig.trigger_fill_fraction must be in (0, 1], "
                f"got {self.trigger_fill_fraction}"
            )
        if self.triggered_remainder not in ("keep", "cancel"):
            raise ValueError(
                "PaperConfig.triggered_remainder must be 'keep' or 'cancel', "
                f"got {self.triggered_remainder!r}"
            )
        if self.volume_participation is not None and not 0 < self.volume_participation <= 1:
            raise ValueError(
                "PaperConfig.volume_participation must be in (0, 1] or None, "
                f"got {self.volume_participation}"
            )
        if self.default_leverage <= 0 or any(v <= 0 for v in self.leverage.values()):
            raise ValueError("PaperConfig leverage values must be positive")
        if self.initial_cash < 0:
            raise ValueError(f"PaperConfig.initial_cash must be >= 0, got {self.initial_cash}")
