"""Shared fixtures. The real candles live outside the repository (never copied in)."""

from __future__ import annotations

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
