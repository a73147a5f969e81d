"""OHLCV refresh: what is asked of the venue, what is kept, and what one bad market costs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.cycle import CycleContext
from core.errors import DataError, RateLimitedError, VenueRetryableError, VenueUnavailableError
from core.market import MarketInfo, Ticker
from core.ohlcv import FetchKind, FetchRequest, floor_time, plan_fetches, validate_candles
from schemas.config import TIMEFRAME_SECONDS, OhlcvConfig
from schemas.frames import UTC_TS
from store.candles import upsert_candles
from store.db import open_store
from tasks.ohlcv import MAX_GAP_ATTEMPTS, RefreshResult, refresh
from venues.base import MarketDataVenue, SimulatedClock

HOUR = timedelta(hours=1)
T0 = datetime(2025, 3, 1, tzinfo=UTC)  # midnight: every timeframe's bucket starts here
NOW = T0 + timedelta(days=30)
HISTORY = 24
CONFIG = OhlcvConfig(timeframes=("1h",), history_bars={"1h": HISTORY})
SYMBOLS = ["AAA/USD:USD", "BBB/USD:USD", "CCC/USD:USD"]


def hourly(start: datetime, hours: int, price: float = 100.0) -> pl.DataFrame:
    """Valid hourly candles: a gentle uptrend with wicks on both sides."""
    ts = [start + HOUR * i for i in range(hours)]
    opens = [price + i * 0.1 for i in range(hours)]
    closes = [o + 0.05 for o in opens]
    return pl.DataFrame(
        {
            "ts": ts,
            "open": opens,
            "high": [c + 0.5 for c in closes],
            "low": [o - 0.5 for o in opens],
            "close": closes,
            "volume": [1_000.0] * hours,
        },
        schema_overrides={"ts": UTC_TS},
    )


def nth(frame: pl.DataFrame, column: str, row: int, value: float) -> pl.DataFrame:
    """The frame with one cell replaced."""
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(value).otherwise(pl.col(column)).alias(column)
    )


# Each corruption turns a valid frame into one the schema must refuse.
CORRUPTIONS: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {
    "NaN close": lambda f: nth(f, "close", 3, float("nan")),
    "negative low": lambda f: nth(f, "low", 3, -1.0),
    "zero open": lambda f: nth(f, "open", 3, 0.0),
    "duplicate ts": lambda f: pl.concat([f, f.slice(3, 1)]).sort("ts"),
    "high below low": lambda f: nth(nth(f, "high", 3, 90.0), "low", 3, 95.0),
    "high below close": lambda f: nth(f, "high", 3, float(f["close"][3]) - 0.01),
    "low above open": lambda f: nth(f, "low", 3, float(f["open"][3]) + 0.01),
    "out of order": lambda f: f.reverse(),
}


# --- plan_fetches ---------------------------------------------------------------------


def test_a_stored_series_asks_only_for_candles_after_its_last_one() -> None:
    last = NOW - 5 * HOUR  # candles up to the one opening 5 h ago are stored
    plan = plan_fetches(["AAA"], ["1h"], {("AAA", "1h"): last}, NOW, {"1h": 1000})
    assert plan == [FetchRequest("AAA", "1h", last + HOUR, NOW, FetchKind.INCREMENTAL)]


def test_nothing_is_asked_while_the_next_candle_has_not_closed() -> None:
    stored = {("AAA", "1h"): NOW - HOUR}  # the candle that opened an hour ago is stored
    assert plan_fetches(["AAA"], ["1h"], stored, NOW + timedelta(minutes=59), {"1h": 10}) == []
    # One more minute and the next candle has closed: it is asked for, alone.
    plan = plan_fetches(["AAA"], ["1h"], stored, NOW + HOUR, {"1h": 10})
    assert [(r.since, r.until) for r in plan] == [(NOW, NOW + HOUR)]


@settings(max_examples=100, deadline=None)
@given(
    timeframe=st.sampled_from(["1h", "4h", "1d"]),
    stored_bars=st.integers(min_value=0, max_value=2_000),
    seconds_later=st.integers(min_value=0, max_value=30 * 86_400),
)
def test_an_incremental_request_never_asks_for_a_stored_or_unclosed_candle_and_misses_none(
    timeframe: str, stored_bars: int, seconds_later: int
) -> None:
    step = timedelta(seconds=TIMEFRAME_SECONDS[timeframe])
    last = T0 + step * stored_bars
    now = last + step + timedelta(seconds=seconds_later)  # the last stored one has closed
    plan = plan_fetches(["AAA"], [timeframe], {("AAA", timeframe): last}, now, {})
    newest_closed = floor_time(now, timeframe) - step
    if newest_closed == last:
        assert plan == []
    else:
        (request,) = plan
        assert request.since == last + step  # nothing stored is asked again
        assert request.until == now  # the venue serves closed candles only, up to now


def test_each_timeframe_waits_for_its_own_candle_to_close() -> None:
    now = T0 + timedelta(hours=6)
    last = {("AAA", "1h"): now - HOUR, ("AAA", "4h"): T0, ("AAA", "1d"): T0 - timedelta(days=1)}
    plan = plan_fetches(["AAA"], ["1d", "4h", "1h"], last, now, {})
    # 1h: up to date. 4h: the 04:00 candle closes at 08:00, not yet. 1d: today's closes tonight.
    assert plan == []
    plan = plan_fetches(["AAA"], ["1d", "4h", "1h"], last, T0 + timedelta(hours=8), {})
    assert [(r.timeframe, r.since) for r in plan] == [
        ("4h", T0 + timedelta(hours=4)),
        ("1h", now),
    ]


@pytest.mark.parametrize(("timeframe", "bars"), [("1h", 1000), ("4h", 600), ("1d", 400)])
def test_a_new_series_asks_for_history_bars_closed_candles(timeframe: str, bars: int) -> None:
    now = T0 + timedelta(hours=5, minutes=30)  # mid-bar for every timeframe
    plan = plan_fetches(["AAA"], [timeframe], {}, now, {"1h": 1000, "4h": 600, "1d": 400})
    (request,) = plan
    step = {"1h": HOUR, "4h": 4 * HOUR, "1d": timedelta(days=1)}[timeframe]
    last_closed_open = {"1h": T0 + 4 * HOUR, "4h": T0, "1d": T0 - timedelta(days=1)}[timeframe]
    assert request.kind is FetchKind.INITIAL
    assert request.until == now
    # `bars` candles fit between since and the last closed one, both included.
    assert (last_closed_open - request.since) / step + 1 == bars


def test_gaps_are_planned_for_the_markets_asked_and_no_others() -> None:
    last = {("AAA", "1h"): NOW - HOUR, ("BBB", "1h"): NOW - HOUR}
    gaps = [
        ("AAA", "1h", T0 + 3 * HOUR, T0 + 6 * HOUR),
        ("ZZZ", "1h", T0 + 3 * HOUR, T0 + 6 * HOUR),  # no longer in the universe
    ]
    plan = plan_fetches(["AAA", "BBB"], ["1h"], last, NOW, {"1h": 10}, gaps)
    assert plan == [FetchRequest("AAA", "1h", T0 + 3 * HOUR, T0 + 6 * HOUR, FetchKind.GAP)]


# --- validate_candles -------------------------------------------------------------------


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_bad_candles_are_refused_naming_market_and_timeframe(corruption: str) -> None:
    frame = CORRUPTIONS[corruption](hourly(T0, 10))
    with pytest.raises(DataError) as err:
        validate_candles("BBB/USD:USD", "1h", frame, NOW)
    assert err.value.symbol == "BBB/USD:USD"
    assert str(err.value).startswith("BBB/USD:USD: 1h candles")


@pytest.mark.parametrize(
    ("corruption", "rule"),
    [
        ("NaN close", "NaN"),
        ("negative low", "'low'"),
        ("duplicate ts", "not unique"),
        ("high below low", "high must be >= max(open, close)"),
        ("out of order", "ts must increase"),
    ],
)
def test_the_refusal_names_the_rule_that_failed(corruption: str, rule: str) -> None:
    with pytest.raises(DataError, match=rule.replace("(", r"\(").replace(")", r"\)")):
        validate_candles("BBB/USD:USD", "4h", CORRUPTIONS[corruption](hourly(T0, 10)), NOW)


def test_valid_candles_pass_tagged_with_market_and_timeframe() -> None:
    out = validate_candles("AAA/USD:USD", "1h", hourly(T0, 10), NOW)
    assert out.height == 10
    assert set(out["symbol"]) == {"AAA/USD:USD"} and set(out["timeframe"]) == {"1h"}
    assert out.schema["ts"] == UTC_TS


def test_candles_that_have_not_closed_are_dropped() -> None:
    frame = hourly(T0, 10)  # the last one opens at T0 + 9h
    out = validate_candles("AAA/USD:USD", "1h", frame, T0 + timedelta(hours=9, minutes=59))
    assert out["ts"].to_list()[-1] == T0 + 8 * HOUR
    assert out.height == 9


def test_a_bad_candle_that_has_not_closed_yet_does_not_condemn_the_market() -> None:
    frame = nth(hourly(T0, 10), "close", 9, float("nan"))  # the still-forming candle
    assert validate_candles("AAA/USD:USD", "1h", frame, T0 + 9 * HOUR).height == 9


def test_an_infinite_price_is_refused() -> None:
    with pytest.raises(DataError):
        validate_candles("AAA/USD:USD", "1h", nth(hourly(T0, 10), "high", 3, float("inf")), NOW)


@pytest.mark.parametrize(
    "malformed",
    [
        pytest.param(lambda f: f.drop("volume"), id="missing volume"),
        pytest.param(lambda f: f.with_columns(pl.col("close").cast(pl.String)), id="text close"),
    ],
)
def test_a_malformed_frame_is_a_data_error(
    malformed: Callable[[pl.DataFrame], pl.DataFrame],
) -> None:
    with pytest.raises(DataError):
        validate_candles("AAA/USD:USD", "1h", malformed(hourly(T0, 10)), NOW)


# --- refresh() against a fake venue -------------------------------------------------------


@dataclass(frozen=True)
class Call:
    symbol: str
    timeframe: str
    since: datetime
    until: datetime


class FakeVenue:
    """Hourly candles for a few markets, with per-market faults set by the test."""

    name = "fake"

    def __init__(self, symbols: list[str], start: datetime = NOW) -> None:
        self.clock = SimulatedClock(start, HOUR)
        self._hourly = {s: hourly(T0, 24 * 60, price=10.0 * (i + 1)) for i, s in enumerate(symbols)}
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self.corrupt: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {}
        self.raises: dict[str, Exception] = {}
        self.never_returns: dict[str, set[datetime]] = {}  # candles the venue lost for good

    def markets(self) -> list[MarketInfo]:
        return [
            MarketInfo(s, s, s.split("/")[0], "USD", 1.0, 0.01, 0.001, 0.001, 20.0)
            for s in self._hourly
        ]

    def tickers(self) -> dict[str, Ticker]:
        return {s: Ticker(s, 100.0, 99.99, 100.01, 1e8) for s in self._hourly}

    def ohlcv(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> pl.DataFrame:
        with self._lock:
            self.calls.append(Call(symbol, timeframe, since, until))
        if symbol in self.raises:
            raise self.raises[symbol]
        until = min(until, self.clock.now())
        frame = self._hourly[symbol].filter(
            (pl.col("ts") >= since) & (pl.col("ts") + HOUR <= until)
        )
        lost = self.never_returns.get(symbol)
        if lost:
            frame = frame.filter(~pl.col("ts").is_in(sorted(lost)))
        corrupt = self.corrupt.get(symbol)
        return corrupt(frame) if corrupt else frame

    def close(self) -> None:
        """Nothing to release."""

    def calls_for(self, symbol: str) -> list[Call]:
        return [c for c in self.calls if c.symbol == symbol]


class Cycles:
    """Runs refresh() as consecutive cycles on one database, one clock step apart if asked."""

    def __init__(self, venue: FakeVenue, db: Path) -> None:
        self.venue = venue
        self.db = db
        self.cycle_id = 0

    def run(self, symbols: list[str] = SYMBOLS, advance: int = 0) -> RefreshResult:
        for _ in range(advance):
            self.venue.clock.advance()
        self.cycle_id += 1
        now = self.venue.clock.now()
        ctx = CycleContext(self.cycle_id, self.venue.name, now, self.db, now)
        self.venue.calls.clear()
        return refresh(self.venue, symbols, ctx, CONFIG)

    def query(self, sql: str, params: list[object] | None = None) -> list[tuple]:
        with open_store(self.db, read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def stored(self, symbol: str) -> list[datetime]:
        rows = self.query("SELECT ts FROM candles WHERE symbol = ? ORDER BY ts", [symbol])
        return [r[0] for r in rows]


@pytest.fixture
def venue() -> FakeVenue:
    return FakeVenue(SYMBOLS)


@pytest.fixture
def cycles(venue: FakeVenue, tmp_path: Path) -> Cycles:
    return Cycles(venue, tmp_path / "trading.duckdb")


def test_the_venue_satisfies_the_port(venue: FakeVenue) -> None:
    assert isinstance(venue, MarketDataVenue)


def test_a_first_refresh_stores_history_bars_closed_candles_per_market(cycles: Cycles) -> None:
    result = cycles.run()
    assert result.errors == {}
    assert result.markets_ok == SYMBOLS
    assert result.candles_upserted == HISTORY * len(SYMBOLS)
    expected = [NOW - HOUR * i for i in range(HISTORY, 0, -1)]
    for symbol in SYMBOLS:
        assert cycles.stored(symbol) == expected


def test_each_market_with_bad_candles_is_skipped_and_the_good_ones_are_stored(
    tmp_path: Path,
) -> None:
    bad = {f"{name.upper().replace(' ', '_')}/USD:USD": name for name in CORRUPTIONS}
    good = ["AAA/USD:USD", "ZZZ/USD:USD"]
    venue = FakeVenue([*bad, *good])
    for symbol, name in bad.items():
        venue.corrupt[symbol] = CORRUPTIONS[name]
    cycles = Cycles(venue, tmp_path / "trading.duckdb")

    result = cycles.run([*bad, *good])

    assert set(result.errors) == set(bad)
    assert result.markets_ok == good
    for symbol in good:
        assert len(cycles.stored(symbol)) == HISTORY
    stored_symbols = cycles.query("SELECT DISTINCT symbol FROM candles ORDER BY symbol")
    assert stored_symbols == [(s,) for s in good]
    recorded = cycles.query("SELECT cycle_id, symbol, stage, error, ts FROM market_errors")
    assert sorted((c, s, st, ts) for c, s, st, _, ts in recorded) == [
        (1, s, "ohlcv", NOW) for s in sorted(bad)
    ]
    for _, symbol, _, error, _ in recorded:
        assert symbol in error and "1h" in error


def test_a_skipped_market_is_fetched_in_full_once_its_data_is_good_again(
    cycles: Cycles, venue: FakeVenue
) -> None:
    venue.corrupt["BBB/USD:USD"] = CORRUPTIONS["NaN close"]
    cycles.run()
    del venue.corrupt["BBB/USD:USD"]
    result = cycles.run(advance=1)
    assert result.errors == {}
    assert cycles.stored("BBB/USD:USD")[-1] == NOW
    assert len(cycles.stored("BBB/USD:USD")) == HISTORY


def test_a_second_refresh_asks_only_for_the_candles_closed_since(
    cycles: Cycles, venue: FakeVenue
) -> None:
    cycles.run()
    first = {c.symbol: c for c in venue.calls}
    assert {s: (c.since, c.until) for s, c in first.items()} == {
        s: (NOW - HISTORY * HOUR, NOW) for s in SYMBOLS
    }

    result = cycles.run(advance=1)
    assert sorted(venue.calls, key=lambda c: c.symbol) == [
        Call(s, "1h", NOW, NOW + HOUR) for s in SYMBOLS
    ]
    assert result.candles_upserted == len(SYMBOLS)

    result = cycles.run(advance=3)
    assert sorted(venue.calls, key=lambda c: c.symbol) == [
        Call(s, "1h", NOW + HOUR, NOW + 4 * HOUR) for s in SYMBOLS
    ]
    assert result.candles_upserted == 3 * len(SYMBOLS)
    for symbol in SYMBOLS:
        stored = cycles.stored(symbol)
        assert stored[-1] == NOW + 3 * HOUR
        assert len(stored) == len(set(stored)) == HISTORY + 4


def test_a_refresh_before_the_next_candle_closed_asks_the_venue_nothing(
    cycles: Cycles, venue: FakeVenue
) -> None:
    cycles.run()
    result = cycles.run()  # same clock: nothing new has closed
    assert venue.calls == []
    assert result.requests == 0
    assert result.candles_upserted == 0
    assert result.markets_ok == SYMBOLS


def test_a_venue_failing_transiently_for_every_market_fails_the_refresh_for_a_retry(
    cycles: Cycles, venue: FakeVenue
) -> None:
    transient = [
        VenueRetryableError("connection reset"),
        RateLimitedError("429 too many requests"),
        VenueUnavailableError("maintenance"),
    ]
    for error in transient:
        venue.raises = dict.fromkeys(SYMBOLS, error)
        with pytest.raises(VenueUnavailableError, match=f"all {len(SYMBOLS)} markets") as err:
            cycles.run()
        assert str(error) in str(err.value)
        cycles.cycle_id -= 1  # Prefect retries the same cycle
    assert all(cycles.stored(s) == [] for s in SYMBOLS)
    # The retry once the venue is back finds nothing half-done and fetches everything.
    venue.raises = {}
    result = cycles.run()
    assert result.errors == {}
    assert result.candles_upserted == HISTORY * len(SYMBOLS)


def test_one_market_failing_transiently_is_recorded_and_the_others_proceed(
    cycles: Cycles, venue: FakeVenue
) -> None:
    venue.raises["CCC/USD:USD"] = VenueRetryableError("timeout fetching CCC")
    result = cycles.run()
    assert set(result.errors) == {"CCC/USD:USD"}
    assert "timeout fetching CCC" in result.errors["CCC/USD:USD"]
    assert result.markets_ok == ["AAA/USD:USD", "BBB/USD:USD"]
    assert cycles.stored("CCC/USD:USD") == []
    assert len(cycles.stored("AAA/USD:USD")) == HISTORY
    assert cycles.query("SELECT symbol, stage FROM market_errors") == [("CCC/USD:USD", "ohlcv")]


def test_a_cycle_where_every_market_is_bad_records_each_and_stores_nothing(
    cycles: Cycles, venue: FakeVenue
) -> None:
    for symbol in SYMBOLS:
        venue.corrupt[symbol] = CORRUPTIONS["NaN close"]
    result = cycles.run()
    assert set(result.errors) == set(SYMBOLS)
    assert result.markets_ok == []
    assert len(cycles.query("SELECT * FROM market_errors")) == len(SYMBOLS)


def test_an_unknown_market_is_a_data_error_for_that_market_only(
    cycles: Cycles, venue: FakeVenue
) -> None:
    venue.raises["BBB/USD:USD"] = DataError("BBB/USD:USD", "not a market of the venue")
    result = cycles.run()
    assert set(result.errors) == {"BBB/USD:USD"}
    assert len(cycles.stored("AAA/USD:USD")) == HISTORY


def test_a_market_returning_a_malformed_frame_is_skipped_and_the_others_proceed(
    cycles: Cycles, venue: FakeVenue
) -> None:
    venue.corrupt["BBB/USD:USD"] = lambda f: f.drop("volume")
    result = cycles.run()
    assert set(result.errors) == {"BBB/USD:USD"}
    assert len(cycles.stored("AAA/USD:USD")) == HISTORY


def punch_hole(db: Path, symbol: str, hole: set[datetime]) -> None:
    """Store the last HISTORY hourly candles of `symbol` except those in `hole`."""
    frame = hourly(T0, 24 * 60).filter(
        (pl.col("ts") >= NOW - HISTORY * HOUR) & (pl.col("ts") < NOW) & ~pl.col("ts").is_in(hole)
    )
    tagged = frame.with_columns(pl.lit(symbol).alias("symbol"), pl.lit("1h").alias("timeframe"))
    with open_store(db) as con:
        upsert_candles(con, tagged)


def test_a_hole_in_stored_candles_is_asked_for_and_recorded_as_filled(
    cycles: Cycles, venue: FakeVenue
) -> None:
    hole = {NOW - 10 * HOUR, NOW - 9 * HOUR, NOW - 8 * HOUR}
    punch_hole(cycles.db, "AAA/USD:USD", hole)
    result = cycles.run(["AAA/USD:USD"])

    # The last stored candle is the newest closed one: the only request is for the hole.
    assert venue.calls == [Call("AAA/USD:USD", "1h", NOW - 10 * HOUR, NOW - 7 * HOUR)]
    assert result.candles_upserted == 3
    assert result.gaps_open == 0
    assert cycles.stored("AAA/USD:USD") == [NOW - HOUR * i for i in range(HISTORY, 0, -1)]
    assert cycles.query("SELECT gap_start, gap_end, attempts, filled FROM candle_gaps") == [
        (NOW - 10 * HOUR, NOW - 7 * HOUR, 1, True)
    ]
    # Filled means done: the next cycle asks only for its new candle.
    cycles.run(["AAA/USD:USD"], advance=1)
    assert venue.calls == [Call("AAA/USD:USD", "1h", NOW, NOW + HOUR)]


def test_a_hole_left_by_the_venue_itself_is_found_on_the_next_cycle(
    cycles: Cycles, venue: FakeVenue
) -> None:
    venue.never_returns["AAA/USD:USD"] = {NOW - 5 * HOUR}
    first = cycles.run(["AAA/USD:USD"])
    assert first.gaps_open == 1
    venue.never_returns.clear()  # the venue got its candle back
    cycles.run(["AAA/USD:USD"])
    assert venue.calls == [Call("AAA/USD:USD", "1h", NOW - 5 * HOUR, NOW - 4 * HOUR)]
    assert NOW - 5 * HOUR in cycles.stored("AAA/USD:USD")


def test_a_gap_the_venue_never_fills_stops_being_asked_after_three_attempts(
    cycles: Cycles, venue: FakeVenue
) -> None:
    lost = NOW - 6 * HOUR
    punch_hole(cycles.db, "AAA/USD:USD", {lost})
    venue.never_returns["AAA/USD:USD"] = {lost}

    gap_calls = []
    for _ in range(MAX_GAP_ATTEMPTS + 1):
        result = cycles.run(["AAA/USD:USD"], advance=1)
        gap_calls += [c for c in venue.calls if c.since == lost]
        assert result.errors == {}

    assert MAX_GAP_ATTEMPTS == 3
    assert gap_calls == [Call("AAA/USD:USD", "1h", lost, lost + HOUR)] * 3
    assert cycles.query("SELECT attempts, filled FROM candle_gaps") == [(3, False)]
    # The market keeps refreshing: every new candle still arrives.
    assert cycles.stored("AAA/USD:USD")[-1] == venue.clock.now() - HOUR
    assert result.gaps_open == 1
