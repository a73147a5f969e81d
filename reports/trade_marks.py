"""Where a market's trades entered and exited, for the charts: from the fills frame when it
holds the trade's fills, else from the TradeRecord (entry price, volume-weighted exit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from core.metrics import TradeRecord
from reports.cells import number, usd

FILL_COLUMNS = ("ts", "side", "size", "price", "position_id")


@dataclass(frozen=True, slots=True)
class Mark:
    """One point on the chart: a fill, or a trade's entry or exit when its fills are absent."""

    ts: datetime
    price: float
    size: float
    trade: TradeRecord
    from_fill: bool

    def label(self, what: str) -> str:
        t = self.trade
        source = "fill" if self.from_fill else "trade record"
        text = f"{t.position_id} {t.side} {what} {self.size:g} @ {self.price:.6g} ({source})"
        if what == "exit":
            text += (
                f"<br>trade closed by {t.exit_reason}: {usd(t.pnl, signed=True)} USD, "
                f"{number(t.r_multiple, signed=True)} R"
            )
        return text


@dataclass(frozen=True, slots=True)
class TradeMarks:
    entries: tuple[Mark, ...]
    exits: tuple[Mark, ...]
    trades: tuple[TradeRecord, ...]


def fills_usable(fills: pl.DataFrame) -> bool:
    """The fills frame carries what a mark needs (core/backtest_result.py's fill columns)."""
    return all(c in fills.columns for c in FILL_COLUMNS)


def trade_marks(symbol: str, trades: Sequence[TradeRecord], fills: pl.DataFrame) -> TradeMarks:
    """Entries and exits of the market's trades; a fill on the trade's entry side is an entry.

    Fills of positions without a TradeRecord are not drawn (nothing says which side opened).
    """
    mine = {t.position_id: t for t in trades if t.symbol == symbol}
    entries: list[Mark] = []
    exits: list[Mark] = []
    drawn: set[str] = set()
    if mine and fills_usable(fills) and fills.height:
        rows = fills.filter(pl.col("position_id").is_in(list(mine))).sort("ts")
        for row in rows.select(FILL_COLUMNS).iter_rows(named=True):
            trade = mine[row["position_id"]]
            mark = Mark(row["ts"], float(row["price"]), float(row["size"]), trade, True)
            entry = str(row["side"]) == str(trade.side.entry_order_side)
            (entries if entry else exits).append(mark)
            drawn.add(trade.position_id)
    for trade in mine.values():
        if trade.position_id not in drawn:
            entries.append(Mark(trade.entry_ts, trade.entry_price, trade.size, trade, False))
            exits.append(Mark(trade.exit_ts, trade.exit_price, trade.size, trade, False))
    return TradeMarks(tuple(entries), tuple(exits), tuple(mine.values()))
