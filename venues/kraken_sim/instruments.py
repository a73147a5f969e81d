"""The feed's markets as Kraken multi-collateral perpetuals: ids, instruments, tickers.

A feed market with base BTC becomes `PF_XBTUSD` (Kraken calls bitcoin XBT),
which ccxt lists as `BTC/USD:USD`; every other base keeps its name
(`PF_ETHUSD`, ETH/USD:USD). Lot sizes must be powers of ten, because Kraken
states the size precision as a number of decimals (contractValueTradePrecision).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from core.market import MarketInfo, Ticker
from venues.kraken_sim.render import iso, num

MAX_POSITION_SIZE = 1_000_000
OPENING_DATE = "2022-01-01T00:00:00.000Z"


def kraken_base(base: str) -> str:
    return "XBT" if base == "BTC" else base


def size_decimals(lot_size: float, symbol: str) -> int:
    """contractValueTradePrecision for a lot size; refuses lots that are not powers of ten."""
    sign, digits, exponent = Decimal(repr(lot_size)).normalize().as_tuple()
    if sign or digits != (1,) or not isinstance(exponent, int):
        raise ValueError(
            f"{symbol}: lot size {lot_size} is not a power of ten; Kraken can only state "
            "size precision in decimals, so give the feed market a lot of 10**k"
        )
    return -exponent


@dataclass(frozen=True, slots=True)
class KrakenMarket:
    kraken_id: str  # PF_XBTUSD
    feed_symbol: str  # the symbol the feed venue uses
    info: MarketInfo  # the engine's market: unified Kraken symbol, Kraken id
    size_decimals: int

    @property
    def pair(self) -> str:
        return f"{kraken_base(self.info.base)}:USD"


class MarketCatalogue:
    """Kraken id <-> feed symbol <-> unified symbol, for every feed market."""

    def __init__(self) -> None:
        self._by_id: dict[str, KrakenMarket] = {}
        self._by_feed: dict[str, KrakenMarket] = {}
        self._by_symbol: dict[str, KrakenMarket] = {}

    def add(self, feed_market: MarketInfo) -> KrakenMarket:
        """Register a feed market (idempotent); refuses one whose lot is not a power of ten."""
        known = self._by_feed.get(feed_market.symbol)
        if known is not None:
            return known
        kraken_id = f"PF_{kraken_base(feed_market.base)}USD"
        info = replace(
            feed_market,
            symbol=f"{feed_market.base}/USD:USD",
            venue_symbol=kraken_id,
            settle="USD",
        )
        market = KrakenMarket(
            kraken_id, feed_market.symbol, info, size_decimals(feed_market.lot_size, kraken_id)
        )
        if kraken_id in self._by_id:
            raise ValueError(
                f"feed markets {self._by_id[kraken_id].feed_symbol!r} and {feed_market.symbol!r} "
                f"both map to {kraken_id}; give the feed one market per base"
            )
        self._by_id[kraken_id] = market
        self._by_feed[feed_market.symbol] = market
        self._by_symbol[info.symbol] = market
        return market

    def __iter__(self) -> Iterator[KrakenMarket]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def by_id(self, kraken_id: str) -> KrakenMarket | None:
        """Case-insensitive, as Kraken accepts `pf_xbtusd` too."""
        return self._by_id.get(kraken_id.upper())

    def by_symbol(self, unified: str) -> KrakenMarket | None:
        return self._by_symbol.get(unified)

    def by_feed(self, feed_symbol: str) -> KrakenMarket | None:
        return self._by_feed.get(feed_symbol)

    def feed_to_engine(self) -> dict[str, str]:
        return {m.feed_symbol: m.info.symbol for m in self._by_id.values()}


def instrument_json(market: KrakenMarket) -> dict[str, object]:
    """One entry of GET /instruments, shaped like a Kraken flexible (PF_) perpetual."""
    initial = 1.0 / market.info.max_leverage
    levels = [
        {"numNonContractUnits": 0, "initialMargin": initial, "maintenanceMargin": initial / 2}
    ]
    return {
        "symbol": market.kraken_id,
        "type": "flexible_futures",
        "tradeable": True,
        "tickSize": market.info.tick_size,
        "contractSize": market.info.contract_size,
        "contractValueTradePrecision": market.size_decimals,
        "impactMidSize": 1,
        "maxPositionSize": MAX_POSITION_SIZE,
        "openingDate": OPENING_DATE,
        "marginLevels": levels,
        "retailMarginLevels": levels,
        "fundingRateCoefficient": 8,
        "maxRelativeFundingRate": 0.001,
        "postOnly": False,
        "base": kraken_base(market.info.base),
        "quote": "USD",
        "pair": market.pair,
        "category": "",
        "tags": [],
    }


def ticker_json(
    market: KrakenMarket, ticker: Ticker | None, mark: float | None, now: datetime
) -> dict[str, object]:
    """One entry of GET /tickers, numbers as decimal strings (as Kraken sends them). A value
    the feed does not know (a new listing, a NaN) is left out, as Kraken leaves out what an
    instrument has no value for: never NaN in the JSON."""
    last = ticker.last if ticker and ticker.last is not None else mark
    volume_usd = ticker.volume_24h_usd if ticker else None
    vol_base = volume_usd / last if volume_usd is not None and last else None
    numbers: dict[str, float | None] = {
        "markPrice": mark if mark is not None else last,
        "bid": ticker.bid if ticker else None,
        "bidSize": 1.0,
        "ask": ticker.ask if ticker else None,
        "askSize": 1.0,
        "vol24h": vol_base,
        "volumeQuote": volume_usd,
        "openInterest": 0.0,
        "open24h": last,
        "indexPrice": last,
        "last": last,
        "lastSize": 0.0,
        "fundingRate": 0.0,
        "fundingRatePrediction": 0.0,
    }
    row: dict[str, object] = {
        "tag": "perpetual",
        "pair": market.pair,
        "symbol": market.kraken_id,
        "lastTime": iso(now),
        "suspended": False,
        "postOnly": False,
    }
    row.update({k: text for k, v in numbers.items() if (text := num(v)) is not None})
    return row
