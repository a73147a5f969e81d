"""Shared fixtures. The real candles live outside the repository (never copied in)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "SMC_TRADER_DATA_DIR"


def real_data_path() -> Path:
    return Path(os.environ.get(DATA_ENV, REPO.parent / "shared" / "data" / "binance-usdm"))


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """../shared/data/binance-usdm (or $SMC_TRADER_DATA_DIR). Fails loudly if absent:
    CI has it, and a silently skipped real-data test would hide a regression."""
    path = real_data_path()
    if not (path / "BTCUSDT_1h.parquet").exists():
        pytest.fail(f"real candles not found in {path}: set {DATA_ENV} to the binance-usdm folder")
    return path


@pytest.fixture
def cli_logs(tmp_path, monkeypatch):
    """Run `trader` in-process with its log file in tmp_path; restore logging afterwards.
    Yields a function returning the log text."""
    log_file = tmp_path / "trader.log"
    monkeypatch.setenv("SMC_TRADER_LOG_FILE", str(log_file))
    from trader.logs import LOGGER_ROOTS

    loggers = [logging.getLogger(name) for name in LOGGER_ROOTS]
    saved = [(list(lg.handlers), lg.propagate, lg.level) for lg in loggers]

    def read() -> str:
        for handler in loggers[0].handlers:
            handler.flush()
        return log_file.read_text() if log_file.exists() else ""

    yield read
    for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        for handler in lg.handlers:
            if handler not in handlers:
                handler.close()
        lg.handlers[:], lg.propagate, lg.level = handlers, propagate, level
