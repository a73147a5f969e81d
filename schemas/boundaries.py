"""Where frames are validated: at task boundaries, not inside a loop of pure functions.

The pure stages (registry, auction, risk) validate what they return, because in a live
cycle each result crosses a Prefect task boundary and is stored. A backtest calls the same
functions thousands of times on frames it builds itself with the schemas' own dtypes;
validating every hour's frames there cost about three quarters of its time. The backtest
therefore validates its first decision hour's frames and the frames that enter and leave
it (tasks/backtest.py), and runs the other hours inside `frames_trusted()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pandera.config import config_context


@contextmanager
def frames_trusted() -> Iterator[None]:
    """Skip pandera validation inside this block (this thread/task only: a context var).

    Only for code whose inputs were validated where they entered and whose outputs are
    validated where they leave; never around a live task boundary."""
    with config_context(validation_enabled=False):
        yield
