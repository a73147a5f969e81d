"""Shared fixtures. The real candles live outside the repository (never copied in)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

# Before anything imports prefect: its telemetry logs "database is locked" on SQLite.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "SMC_TRADER_DATA_DIR"


def real_data_path() -> Path:
    return Path(os.environ.get(DATA_ENV, REPO.parent / "shared" / "data" / "binance-usdm"))


@pytest.fixture(scope="session")
def prefect_server():
    """One ephemeral Prefect server for the whole session (~15-20 s to start), shared by
    every test that runs flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """../shared/data/binance-usdm (or $SMC_TRADER_DATA_DIR). Fails loudly if absent:
    CI has it, and a silently skipped real-data test would hide a regression."""
    path = real_data_path()
    if not (path / "BTCUSDT_1h.parquet").exists():
        pytest.fail(f"real candles not found in {path}: set {DATA_ENV} to the binance-usdm folder")
    return path


@pytest.fixture(autouse=True)
def _isolated_logging(tmp_path, monkeypatch):
    """Any test that runs `trader` in-process logs into its own tmp file, and the logger
    configuration it changes is restored afterwards (no leak into the next test)."""
    from tasks.logs import LOGGER_ROOTS

    log_file = tmp_path / "trader.log"
    monkeypatch.setenv("SMC_TRADER_LOG_FILE", str(log_file))
    loggers = [logging.getLogger(name) for name in LOGGER_ROOTS]
    saved = [(list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    yield log_file
    for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        for handler in lg.handlers:
            if handler not in handlers:
                handler.close()
        lg.handlers[:], lg.propagate, lg.level = handlers, propagate, level


@pytest.fixture
def cli_logs(_isolated_logging):
    """A function returning what `trader` logged in this test."""

    def read() -> str:
        for handler in logging.getLogger("smc_trader").handlers:
            handler.flush()
        return _isolated_logging.read_text() if _isolated_logging.exists() else ""

    return read
