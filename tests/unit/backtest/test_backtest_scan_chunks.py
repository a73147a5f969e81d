"""The backtest scans wide universes a few markets at a time (to bound memory): the chunks'
signals and gate trace must be exactly those of one scan of every market."""

from __future__ import annotations

from datetime import UTC, datetime

from polars.testing import assert_frame_equal

import tasks.backtest as bt
from schemas.config import AppConfig
from tasks.backtest import BacktestRequest, prepare

START = datetime(2025, 7, 15, tzinfo=UTC)
END = datetime(2025, 8, 1, tzinfo=UTC)


def test_a_scan_in_chunks_equals_one_scan(real_data_dir, monkeypatch):
    request = BacktestRequest(real_data_dir, AppConfig(), START, END)
    whole = prepare(request)
    monkeypatch.setattr(bt, "SCAN_CHUNK", 4)  # 15 markets: four chunks
    chunked = prepare(request)
    assert len(whole.symbols) > 8
    assert whole.signals.height > 0  # the window has signals to compare
    assert_frame_equal(chunked.signals, whole.signals)
    assert_frame_equal(chunked.trace, whole.trace)
