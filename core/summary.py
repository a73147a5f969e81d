"""The CYCLE_END line operators grep for, built from what the cycle actually did."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from core.positions import Position


@dataclass(slots=True)
class CycleSummary:
    """Counts of one cycle. None means "this stage did not run", printed as n/a."""

    cycle_id: int
    venue: str
    clock: str
    duration_s: float = 0.0
    markets_total: int = 0
    tradeable_markets: int = 0
    coins_processed: int = 0
    candles_upserted: int = 0
    signals: int | None = None
    candidates: int | None = None
    winners_selected: int | None = None
    intents: int | None = None
    orders_placed: int | None = None
    orders_cancelled: int | None = None
    open_positions: int | None = None
    unprotected_positions: int | None = None  # open positions without a working stop
    equity: float | None = None
    margin_utilization: float | None = None
    system_state: str | None = None
    market_errors: int = 0
    failed_stages: int = 0
    tiers: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        def show(value: object, fmt: str = "{}") -> str:
            return "n/a" if value is None else fmt.format(value)

        tiers = ",".join(f"{k}:{v}" for k, v in self.tiers.items())
        return (
            f"CYCLE_END cycle_id={self.cycle_id} venue={self.venue} clock={self.clock} "
            f"duration={self.duration_s:.2f}s coins_processed={self.coins_processed} "
            f"signals={show(self.signals)} candidates={show(self.candidates)} "
            f"winners_selected={show(self.winners_selected)} intents={show(self.intents)} "
            f"orders_placed={show(self.orders_placed)} "
            f"orders_cancelled={show(self.orders_cancelled)} "
            f"open_positions={show(self.open_positions)} "
            f"unprotected={show(self.unprotected_positions)} "
            f"equity={show(self.equity, '{:.2f}')} "
            f"margin_util={show(self.margin_utilization, '{:.3f}')} "
            f"system_state={show(self.system_state)} markets={self.markets_total} "
            f"tradeable={self.tradeable_markets} tiers={tiers} "
            f"candles_upserted={self.candles_upserted} market_errors={self.market_errors} "
            f"failed_stages={self.failed_stages}"
        )

    def as_record(self) -> dict[str, object]:
        record = asdict(self)
        record.pop("tiers")
        return record


def count_unprotected(positions: Iterable[Position]) -> int:
    """Open position records with no working stop order (what the unprotected alert counts)."""
    return sum(1 for p in positions if p.is_open and p.stop_order_id is None)
