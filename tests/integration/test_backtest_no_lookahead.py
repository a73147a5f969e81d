"""No lookahead: the backtest of [a, t] equals the backtest of [a, end] up to t — the same
decisions, intents, fills, closed trades and hourly equity — at several t."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from schemas.config import AppConfig
from tasks.backtest import BacktestRequest, run_backtest

pytestmark = [pytest.mark.integration, pytest.mark.realdata]

A = datetime(2025, 10, 14, tzinfo=UTC)
END = A + timedelta(hours=239)
CUTS = (A + timedelta(hours=60), A + timedelta(hours=130), A + timedelta(hours=200))
MARKETS = ("BTC", "ETH", "SOL", "XRP", "RIVER")


@pytest.fixture(scope="module")
def full(real_data_dir):
    return run_backtest(BacktestRequest(real_data_dir, AppConfig(), A, END, MARKETS))


def same(ours: pl.DataFrame, theirs: pl.DataFrame) -> bool:
    """Equal frames; two empty ones are equal whatever columns an empty one was built with."""
    return (ours.height == 0 and theirs.height == 0) or ours.equals(theirs)


@pytest.mark.parametrize("cut", CUTS, ids=lambda t: f"{t:%m-%d_%H}")
def test_a_shorter_backtest_is_the_longer_ones_beginning(full, real_data_dir, cut):
    short = run_backtest(BacktestRequest(real_data_dir, AppConfig(), A, cut, MARKETS))
    upto = pl.col("ts") <= cut
    assert same(short.decisions, full.decisions.filter(upto))
    assert same(short.intents, full.intents.filter(upto))
    fills = ["fill_id", "ts", "symbol", "side", "size", "price", "fee", "position_id"]
    if short.fills.height:
        assert same(short.fills.select(fills), full.fills.select(fills).filter(upto))
    else:
        assert full.fills.filter(upto).height == 0
    assert short.equity.equals(full.equity.filter(upto))
    closed = [t for t in full.trades if t.exit_ts <= cut and t.exit_reason != "end_of_data"]
    assert [t for t in short.trades if t.exit_reason != "end_of_data"] == closed
    assert short.decisions.height < full.decisions.height  # the cut really cut something


def test_the_window_trades(full):
    assert len(full.trades) >= 3 and full.fills.height >= 6
