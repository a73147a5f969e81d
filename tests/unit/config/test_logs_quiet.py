"""A sweep worker's backtests log only errors, and the level comes back after the block."""

from __future__ import annotations

import logging

import pytest

from tasks.logs import LOGGER_ROOTS, quiet_decisions


def test_quiet_decisions_passes_only_errors_and_restores_the_levels_even_on_an_error():
    logger = logging.getLogger("core.system_state")
    roots = [logging.getLogger(r) for r in LOGGER_ROOTS]
    before = [r.level for r in roots]
    with pytest.raises(RuntimeError), quiet_decisions():
        assert not logger.isEnabledFor(logging.WARNING)
        assert logger.isEnabledFor(logging.ERROR)
        raise RuntimeError("a backtest failed")
    assert [r.level for r in roots] == before
