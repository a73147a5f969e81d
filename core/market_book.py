"""One cycle's markets as rows by symbol: what the engine's stages look up per market.

The registry produces a Markets frame (validated, stored, shown in the UI). Every stage
after it asks per-market questions: a contract size, a tick and lot, the last price, the
tier and precision of a candidate. A `MarketBook` answers them from dicts built once, so
the auction, the risk manager, execution and the account read the same rows without a
frame operation each. The live cycle hands the stages its frame (each builds a book from
it: `MarketBook.of`); a backtest builds the book from the registry's rows directly and
never makes the frame (core/registry.py: `registry_rows`).

A symbol listed twice is ambiguous: `terms` leaves it out (the auction and risk manager
then refuse it MARKET_MISSING), the plain lookups keep its last row as the frame's dict
conversions did.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

PRECISION_COLUMNS = ("contract_size", "tick_size", "lot_size", "min_size", "max_leverage")


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class MarketTerms:
    """One unambiguous registry row as the auction and risk manager read it."""

    symbol: str
    tier: str | None
    tradeable: bool | None  # None: the registry did not say (a malformed row)
    contract_size: float | None
    tick_size: float | None
    lot_size: float | None
    min_size: float | None
    max_leverage: float | None

    def precision_ok(self) -> bool:
        """Contract size, tick, lot and max leverage positive and finite, min size >= 0."""
        usable = all(
            v is not None and math.isfinite(v) and v > 0
            for v in (self.contract_size, self.tick_size, self.lot_size, self.max_leverage)
        )
        m = self.min_size
        return usable and m is not None and math.isfinite(m) and m >= 0

    def leverage(self, default_leverage: float) -> float | None:
        """The leverage margin is sized with: the default, never above the market's maximum
        (a NaN maximum counts as no cap, as polars' min_horizontal ignores NaN; none: none)."""
        if self.max_leverage is None:
            return None
        if math.isnan(self.max_leverage):
            return default_leverage
        return min(self.max_leverage, default_leverage)


class MarketBook:
    """Rows of one cycle's Markets by symbol (immutable once built)."""

    __slots__ = ("_duplicated", "_frame", "_terms", "contract_sizes", "marks", "rows")

    def __init__(self, rows: Iterable[Mapping[str, Any]], frame: pl.DataFrame | None = None):
        listed = list(rows)
        self._frame = frame
        self.rows: dict[str, Mapping[str, Any]] = {r["symbol"]: r for r in listed}
        self.contract_sizes: dict[str, float] = {
            s: r["contract_size"] for s, r in self.rows.items()
        }
        self.marks: dict[str, float] = {
            s: float(r["last"]) for s, r in self.rows.items() if r.get("last") is not None
        }
        self._duplicated: frozenset[str] = frozenset()
        if len(listed) != len(self.rows):
            counts = Counter(r["symbol"] for r in listed)
            self._duplicated = frozenset(s for s, n in counts.items() if n > 1)
        self._terms: dict[str, MarketTerms] | None = None

    @property
    def terms(self) -> dict[str, MarketTerms]:
        """MarketTerms of every symbol listed once (built when first asked: only hours with a
        candidate need them)."""
        if self._terms is None:
            self._terms = {
                s: _terms(r) for s, r in self.rows.items() if s not in self._duplicated
            }
        return self._terms

    @classmethod
    def of(cls, markets: pl.DataFrame | MarketBook) -> MarketBook:
        """A book of this frame's rows (a book is returned as it is)."""
        if isinstance(markets, MarketBook):
            return markets
        return cls(markets.iter_rows(named=True), markets)

    def frame(self, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
        """The rows as a frame of `schema` (the one it was built from, when there was one)."""
        if self._frame is None:
            self._frame = pl.DataFrame(list(self.rows.values()), schema=dict(schema))
        return self._frame

    def tradeable_tier(self, symbol: str) -> str | None:
        """The tier of a market the registry lets us trade now, else None."""
        row = self.rows.get(symbol)
        return row["tier"] if row is not None and row.get("tradeable", True) else None


def _terms(row: Mapping[str, Any]) -> MarketTerms:
    return MarketTerms(
        row["symbol"],
        row.get("tier"),
        row.get("tradeable", True),
        *(_float(row.get(c)) for c in PRECISION_COLUMNS),
    )
