"""Validation in a backtest: the loop trusts its per-hour frames only inside itself. The
first hour that runs still validates them, and after the loop (and in any other code)
validation is on again: a live task boundary is never left unchecked."""

from __future__ import annotations

import pandera.errors
import polars as pl
import pytest

from schemas.boundaries import frames_trusted
from schemas.frames import Markets
from tests.unit.risk.conftest import market, markets_frame


def bad_markets() -> pl.DataFrame:
    # a negative tick size: the Markets schema refuses it
    return markets_frame([market("ABC/USD:USD", tick_size=-1.0)], validate=False)


def test_frames_are_trusted_only_inside_the_block():
    frame = bad_markets()
    with frames_trusted():
        assert Markets.validate(frame) is frame  # inside: passed through unchecked
    with pytest.raises(pandera.errors.SchemaError):
        Markets.validate(frame)  # outside: checked again


def test_an_error_inside_the_block_still_restores_validation():
    with pytest.raises(RuntimeError), frames_trusted():
        raise RuntimeError("a failing hour")
    with pytest.raises(pandera.errors.SchemaError):
        Markets.validate(bad_markets())
