"""Fixtures of the report tests: the hand-built run of sample_run.py and synthetic 4h candles."""

from __future__ import annotations

import polars as pl
import pytest

from core.backtest_result import BacktestResult
from tests.unit.reports.sample_run import build_result, synthetic_candles


@pytest.fixture
def result() -> BacktestResult:
    return build_result()


@pytest.fixture
def candles() -> dict[str, pl.DataFrame]:
    return {"BTCUSDT": synthetic_candles(100.0), "ETHUSDT": synthetic_candles(50.0, seed=2)}
