"""A paper account saved between flow runs: the engine and the feed's progress, as JSON.

Each flow run may be a fresh process, so the cycle saves its paper account after
the cycle and restores it at the next. The saved form is versioned JSON text:

    {"format_version": 1, "kind": "smc-trader paper account",
     "feed": {"timeframe": "1h", "done_until": "2025-03-01T10:00:00+00:00",
              "symbols": {"BTC/USD:USD": "BTC/USD:USD", ...}},
     "engine": {... PaperEngine.snapshot() ...}}

Version rule: the reader accepts exactly the versions in READERS. Any change to
what is written (a key added, removed, renamed or meaning something else) bumps
FORMAT_VERSION and adds a migration from the previous version, so every account
ever saved stays readable; the reader refuses unknown keys, so a change without
a bump fails the saved-account fixture test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from venues.base import MarketDataVenue
from venues.paper.driver import TIMEFRAMES, FeedDriver, FundingSchedule
from venues.paper.engine import PaperEngine
from venues.paper.errors import PaperStateError
from venues.paper.reader import JsonObject, as_mapping, write_time
from venues.paper.venue import PaperOrderVenue

FORMAT_VERSION = 1
# what /fills and the account log must answer reaches back hours (the gateway re-reads 6 h
# of fills) or to a position's opening (kept whatever its age): 30 days is ample margin
HISTORY_RETENTION = timedelta(days=30)
KIND = "smc-trader paper account"
ACCOUNT_KEYS = ("format_version", "kind", "feed", "engine")
FEED_KEYS = ("timeframe", "done_until", "symbols")


@dataclass(frozen=True, slots=True)
class PaperAccountState:
    """One saved paper account. done_until: every bar closing up to then, and every
    funding settlement due up to then, is already in the engine (one boundary for both:
    the driver replays them together)."""

    engine: Mapping[str, Any]  # PaperEngine.snapshot()
    timeframe: str  # the bar the driver replays
    done_until: datetime | None  # None: the driver never primed; it primes at its next call
    symbols: Mapping[str, str]  # feed symbol -> engine symbol
    format_version: int = FORMAT_VERSION

    @classmethod
    def capture(cls, driver: FeedDriver) -> PaperAccountState:
        """The account the driver moves, as it stands (nothing is forgotten here)."""
        return cls(
            engine=driver.engine.snapshot(),
            timeframe=driver.timeframe,
            done_until=driver.done_until,
            symbols=dict(driver.symbols),
        )

    def to_json(self) -> str:
        """Compact JSON text. Refuses NaN or infinite figures (PaperStateError)."""
        data = {
            "format_version": self.format_version,
            "kind": KIND,
            "feed": {
                "timeframe": self.timeframe,
                "done_until": write_time(self.done_until),
                "symbols": dict(self.symbols),
            },
            "engine": self.engine,
        }
        try:
            return json.dumps(data, allow_nan=False, separators=(",", ":"))
        except ValueError as exc:
            raise PaperStateError("engine", f"cannot be written as JSON: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> PaperAccountState:
        """The account in `text`; its engine snapshot is checked when it is opened.

        Refuses (PaperStateError naming what is wrong): a pickled account from before the
        JSON format (convert it once with venues.paper.legacy), text that is not JSON, a
        format_version this code does not read, and a malformed account or feed field.
        """
        data = _parse(text)
        version = data.get("format_version")
        reader = READERS.get(version) if isinstance(version, int) else None
        if reader is None:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            raise PaperStateError(
                "format_version",
                f"{version!r} is not a version this code reads ({sorted(READERS)})"
                + ("; a newer smc-trader wrote it: run that version" if newer else ""),
            )
        return reader(data)

    def open_venue(
        self, feed: MarketDataVenue, *, funding: FundingSchedule | None = None
    ) -> PaperOrderVenue:
        """The paper venue continuing this account on `feed`. Feed markets the account does
        not know yet are added and followed from done_until on; saved markets keep their
        saved definitions. Refuses a malformed engine snapshot (PaperStateError)."""
        engine = PaperEngine.restore(self.engine)
        symbols = dict(self.symbols)
        known = {m.symbol for m in engine.markets()}
        strangers = sorted(set(symbols.values()) - known)
        if strangers:
            raise PaperStateError("account.feed.symbols", f"{strangers} are not engine markets")
        for market in feed.markets():
            if market.symbol not in known:
                engine.add_market(market)
                symbols.setdefault(market.symbol, market.symbol)
        driver = FeedDriver(engine, feed, self.timeframe, symbols=symbols, funding=funding)
        if self.done_until is not None:
            driver.resume(self.done_until)
        return PaperOrderVenue(engine, feed.clock, driver)


def save_paper_account(
    venue: PaperOrderVenue, *, retention: timedelta | None = HISTORY_RETENTION
) -> str:
    """The venue's account as JSON text, after forgetting the history older than
    `retention` before the feed's progress (see PaperEngine.forget_history; None keeps
    everything). Refuses a venue without a feed driver (ValueError)."""
    driver = venue.driver
    if driver is None:
        raise ValueError("a paper venue without a feed driver has no progress to save")
    if retention is not None and driver.done_until is not None:
        venue.engine.forget_history(driver.done_until - retention)
    return PaperAccountState.capture(driver).to_json()


def load_paper_account(
    text: str | bytes, feed: MarketDataVenue, *, funding: FundingSchedule | None = None
) -> PaperOrderVenue:
    """The paper venue saved by save_paper_account, continuing on `feed`. Refuses anything
    PaperAccountState.from_json or open_venue refuses (PaperStateError); nothing is
    restored in part."""
    return PaperAccountState.from_json(text).open_venue(feed, funding=funding)


def _parse(text: str | bytes) -> dict[str, object]:
    if isinstance(text, bytes | bytearray | memoryview):
        raw = bytes(text)
        if raw[:1] == b"\x80":
            raise PaperStateError(
                "venue_state",
                "a pickled paper account from before the JSON format; convert it once with "
                "venues.paper.legacy.from_pickle",
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PaperStateError("venue_state", f"not UTF-8 text: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PaperStateError("venue_state", f"not JSON: {exc}") from None
    return as_mapping(data, "venue_state")


def _read_v1(data: dict[str, object]) -> PaperAccountState:
    root = JsonObject(data, "account", ACCOUNT_KEYS)
    if root.raw("kind") != KIND:
        raise PaperStateError(root.at("kind"), f"{root.raw('kind')!r} is not {KIND!r}")
    feed = root.child("feed", FEED_KEYS)
    timeframe = feed.text("timeframe")
    if timeframe not in TIMEFRAMES:
        raise PaperStateError(feed.at("timeframe"), f"{timeframe!r} is not in {sorted(TIMEFRAMES)}")
    symbols = JsonObject(feed.mapping("symbols"), feed.at("symbols"), feed.mapping("symbols"))
    return PaperAccountState(
        engine=as_mapping(root.raw("engine"), root.at("engine")),
        timeframe=timeframe,
        done_until=feed.optional_time("done_until"),
        symbols={k: symbols.text(k) for k in symbols.data},
        format_version=1,
    )


READERS: dict[int, Callable[[dict[str, object]], PaperAccountState]] = {1: _read_v1}
