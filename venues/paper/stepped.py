"""A paper venue a backtest steps through time: the live paper venue, with its clock moved
by the backtest loop instead of by cycles, and funding payments kept per market."""

from __future__ import annotations

from datetime import datetime

from core.engine.trades import FundingPayment
from venues.base import MarketDataVenue, SimulatedClock
from venues.paper.config import PaperConfig
from venues.paper.driver import FeedDriver, FundingSchedule
from venues.paper.engine import PaperEngine
from venues.paper.intrabar import LowerTimeframes
from venues.paper.venue import PaperOrderVenue


class SteppedPaperVenue(PaperOrderVenue):
    """PaperOrderVenue on a feed whose SimulatedClock the backtest moves (`advance_to`)."""

    def __init__(
        self,
        feed: MarketDataVenue,
        config: PaperConfig,
        *,
        funding: FundingSchedule | None = None,
        lower: LowerTimeframes | None = None,
    ) -> None:
        clock = feed.clock
        if not isinstance(clock, SimulatedClock):
            raise TypeError("a backtest steps a feed on a SimulatedClock (replay or sim)")
        engine = PaperEngine(getattr(feed, "all_markets", feed.markets)(), config)
        driver = FeedDriver(engine, feed, "1h", funding=funding, lower=lower)
        super().__init__(engine, clock, driver)
        self.feed_clock = clock
        self.funding_payments: list[FundingPayment] = []
        settle = engine.apply_funding

        def settle_and_keep(symbol: str, rate: float, ts: datetime) -> float:
            # the report charges each trade the funding paid while it was open
            cash = settle(symbol, rate, ts)
            if cash:
                self.funding_payments.append(FundingPayment(ts, symbol, cash))
            return cash

        engine.apply_funding = settle_and_keep  # type: ignore[method-assign]
        driver.prime()

    def advance_to(self, ts: datetime) -> None:
        self.feed_clock.move_to(ts)
        self._sync()

    def busy(self) -> bool:
        return bool(self.engine.open_orders()) or any(
            p.size > 0 for p in self.engine.positions()
        )
