"""`PaperOrderVenue`: the paper engine behind the shared OrderVenue port (sim and replay)."""

from __future__ import annotations

from datetime import datetime

from core.orders import Balance, Fill, Order, OrderRequest, PositionReport, RealisedPnl
from venues.base import Clock, MarketDataVenue
from venues.paper.config import PaperConfig
from venues.paper.driver import FeedDriver, FundingSchedule, timeframe_of
from venues.paper.engine import PaperEngine


class PaperOrderVenue:
    """Implements core.orders.OrderVenue on a PaperEngine.

    With a driver, every call first replays the bars the feed closed since the
    previous call, so orders fill as the feed's clock moves, never ahead of it.
    """

    def __init__(self, engine: PaperEngine, clock: Clock, driver: FeedDriver | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.driver = driver

    @classmethod
    def on_feed(
        cls,
        feed: MarketDataVenue,
        config: PaperConfig | None = None,
        *,
        timeframe: str | None = None,
        funding: FundingSchedule | None = None,
    ) -> PaperOrderVenue:
        """A paper venue trading the feed's markets at its prices.

        timeframe defaults to the feed clock's step (a SimulatedClock); refuses a
        feed whose clock has no step when no timeframe is given.
        """
        if timeframe is None:
            step = getattr(feed.clock, "step", None)
            if step is None:
                raise ValueError("feed clock has no step: pass timeframe= (e.g. '1h')")
            timeframe = timeframe_of(step)
        engine = PaperEngine(feed.markets(), config)
        driver = FeedDriver(engine, feed, timeframe, funding=funding)
        driver.prime()
        return cls(engine, feed.clock, driver)

    def _sync(self) -> None:
        if self.driver is not None:
            self.driver.catch_up()

    def submit(self, request: OrderRequest) -> Order:
        """Place an order. Raises OrderRejectedError (a VenueError: do not retry) when refused;
        DuplicateClientIdError when an open order already has the client id."""
        self._sync()
        return self.engine.submit(request, self.clock.now()).order

    def cancel(self, venue_order_id: str) -> Order | None:
        """The order after the attempt (cancelled, or filled if too late); None if unknown."""
        self._sync()
        return self.engine.cancel(venue_order_id, self.clock.now()).order

    def order_by_client_id(self, client_id: str) -> Order | None:
        self._sync()
        return self.engine.order_by_client_id(client_id)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        self._sync()
        return self.engine.open_orders(symbol)

    def positions(self) -> list[PositionReport]:
        self._sync()
        return self.engine.positions()

    def balance(self) -> Balance:
        self._sync()
        return self.engine.balance()

    def fills(self, since: datetime | None = None) -> list[Fill]:
        self._sync()
        return self.engine.fills(since)

    def realised_pnl(
        self, symbol: str, since: datetime, until: datetime | None = None
    ) -> list[RealisedPnl]:
        """The engine's own book of `symbol`'s fills with since <= time < until, oldest
        first: what Kraken's account log answers (see KrakenOrderVenue.realised_pnl)."""
        self._sync()
        return [
            RealisedPnl(
                entry_id=e.fill.fill_id,
                symbol=symbol,
                fill_id=e.fill.fill_id,
                ts=e.fill.ts,
                realised_pnl=e.realised_pnl,
                fee=e.fill.fee,
                price=e.fill.price,
                position_before=e.position_before,
                position_after=e.position_after,
            )
            for e in self.engine.executions(since)
            if e.fill.symbol == symbol and (until is None or e.fill.ts < until)
        ]
