"""Lower-timeframe candles decide an hourly bar that reaches both the stop and a take-profit:
hand-built bars through the engine loop (the 15m candles reach the TP first: the TP fills;
they reach the stop first: the stop fills; no 15m file: the stop fills first), and a bad
15m file refused with its name while the other markets proceed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from core.backtest_result import IntrabarOrder
from core.engine.backtest import HourInput, run_hours
from core.engine.state import MemoryState
from core.orders import OrderSide
from schemas.config import AppConfig
from tasks.backtest import _lower_timeframes
from tests.support.feeds import CandleFeed
from tests.unit.backtest.hand_bars import FLAT, HISTORY, INFO, START, SYMBOL, T0, H, candle_frame
from tests.unit.risk.conftest import market, markets_frame, signal, signals_frame
from venues.paper import PaperConfig
from venues.paper.intrabar import LowerTimeframes, read_lower_timeframes, read_sub_bars
from venues.paper.stepped import SteppedPaperVenue

Q = timedelta(minutes=15)
# T0, the decision hour of the signal: its bar is the ambiguous one
AMBIGUOUS = (100.0, 104.0, 94.0, 100.0)  # reaches the 95 stop and the 103 TP1
TP_FIRST = [(100.0, 103.5, 99.5, 103.0), (103.0, 103.2, 94.0, 95.0),
            (95.0, 99.0, 94.5, 98.0), (98.0, 104.0, 97.0, 100.0)]  # fmt: skip
STOP_FIRST = [(100.0, 100.5, 94.0, 95.0), (95.0, 103.5, 95.0, 103.0),
              (103.0, 104.0, 99.0, 100.0), (100.0, 101.0, 99.0, 100.0)]  # fmt: skip


def hourly() -> pl.DataFrame:
    return candle_frame([FLAT] * HISTORY + [AMBIGUOUS] + [FLAT] * 10, START, H)


def write_15m(folder: Path, base: str, rows: list[tuple[float, float, float, float]]) -> Path:
    """Flat 15m candles at 100 around T0's hour, `rows` inside it."""
    flat = [FLAT]
    path = folder / f"{base}USDT_15m.parquet"
    candle_frame(flat * 4 + rows + flat * 8, T0 - H, Q).write_parquet(path)
    return path


def sell_fills(lower: LowerTimeframes | None):
    """The exit fills after one long entry at T0 (stop 95, TPs 103/106/109) and the hour
    whose bar reaches both the stop and TP1."""
    feed = CandleFeed([INFO], {SYMBOL: hourly()}, T0, name="hand")
    config = AppConfig()
    paper = PaperConfig(
        maker_fee=0.0002, taker_fee=0.0005, slippage_bps=2.0, initial_cash=10_000.0,
        default_leverage=config.risk.default_leverage,
    )
    venue = SteppedPaperVenue(feed, paper, lower=lower)
    registry = markets_frame(
        [market(SYMBOL, tick_size=0.01, lot_size=0.001, min_size=0.001, last=100.0,
                bid=99.99, ask=100.01)]
    )
    sig = signals_frame(
        [signal(SYMBOL, ts=T0, entry=100.0, stop=95.0, tp1=103.0, tp2=106.0, tp3=109.0)]
    )

    def hour(n: int) -> HourInput:
        signals = sig if n == 1 else sig.clear()
        return HourInput(T0 + (n - 1) * H, n, n == 1, lambda: (registry, signals))

    run_hours(
        (hour(n) for n in range(1, 4)), venue, MemoryState(), venue.clock, config,
        cash=lambda: venue.engine.cash,
    )
    return [f for f in venue.engine.fills() if f.side is OrderSide.SELL]


def test_15m_candles_that_reach_the_tp_first_fill_the_tp(tmp_path):
    lower, problems = read_lower_timeframes(tmp_path, {})
    sub = read_sub_bars(write_15m(tmp_path, "ABC", TP_FIRST), "15m")
    fills = sell_fills(LowerTimeframes({SYMBOL: sub}))
    first = fills[0]
    assert first.price == pytest.approx(102.97)  # TP1 103 less 2 bps, down a tick
    assert first.ts == T0 + Q  # at the close of the 15m candle that reached it
    # the stop (reached in the second candle) takes the rest of the position
    assert [round(f.price, 2) for f in fills[1:]] == [94.98]
    assert fills[1].ts == T0 + 2 * Q
    assert (lower.markets, problems) == ({}, {})


def test_15m_candles_that_reach_the_stop_first_fill_the_stop(tmp_path):
    sub = read_sub_bars(write_15m(tmp_path, "ABC", STOP_FIRST), "15m")
    fills = sell_fills(LowerTimeframes({SYMBOL: sub}))
    assert [round(f.price, 2) for f in fills] == [94.98]  # the TPs went with the position
    assert fills[0].ts == T0 + Q


def test_without_a_lower_timeframe_file_the_stop_fills_first():
    fills = sell_fills(None)
    assert [round(f.price, 2) for f in fills] == [94.98]
    assert fills[0].ts == T0 + H  # the hourly bar's close


def test_15m_candles_missing_part_of_the_hour_leave_the_stop_first(tmp_path):
    path = write_15m(tmp_path, "ABC", TP_FIRST)
    holed = pl.read_parquet(path).filter(pl.col("ts") != T0 + 2 * Q)
    holed.write_parquet(path)
    fills = sell_fills(LowerTimeframes({SYMBOL: read_sub_bars(path, "15m")}))
    assert [round(f.price, 2) for f in fills] == [94.98]


def test_the_finest_file_is_used(tmp_path):
    write_15m(tmp_path, "ABC", TP_FIRST)
    candle_frame([FLAT] * 120, T0 - H, timedelta(minutes=1)).write_parquet(
        tmp_path / "ABCUSDT_1m.parquet"
    )
    lower, _ = read_lower_timeframes(tmp_path, {SYMBOL: "ABC"})
    assert lower.used() == {SYMBOL: "ABCUSDT_1m.parquet"}


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (lambda f: f.drop("low"), "missing column(s) low"),
        (lambda f: f.with_columns(close=pl.when(pl.col("ts") == T0).then(float("nan"))
                                  .otherwise(pl.col("close"))), "NaN or null values (1 in close)"),
        (lambda f: pl.concat([f, f.head(1)]), "not strictly ascending"),
    ],
)
def test_a_bad_15m_file_is_refused_by_name_and_the_other_markets_proceed(tmp_path, spoil, said):
    bad = write_15m(tmp_path, "BAD", TP_FIRST)
    spoil(pl.read_parquet(bad)).write_parquet(bad)
    write_15m(tmp_path, "ABC", TP_FIRST)
    errors: dict[str, str] = {}
    request = SimpleNamespace(data_dir=tmp_path, intrabar=IntrabarOrder.LOWER_TIMEFRAME)
    lower, kept = _lower_timeframes(request, ["ABC", "BAD", "XYZ"], errors)  # type: ignore[arg-type]
    assert kept == ["ABC", "XYZ"]
    assert str(bad) in errors["BAD/USD:USD"] and said in errors["BAD/USD:USD"]
    assert "_1h files" in errors["BAD/USD:USD"]  # the fix
    assert lower.used() == {"ABC/USD:USD": "ABCUSDT_15m.parquet"}
    assert errors["ABC/USD:USD"] == "note: intrabar order from ABCUSDT_15m.parquet"
    assert errors["XYZ/USD:USD"] == "note: no 15m/5m/1m candles: the stop fills first"
