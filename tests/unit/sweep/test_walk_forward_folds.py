"""Walk-forward folds: hand-listed rolling and anchored folds, and the refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from core.errors import ConfigError
from core.sweep_space import Fold, FoldScheme, walk_forward_folds

DAY = timedelta(days=1)


def day(month: int, d: int) -> datetime:
    return datetime(2025, month, d, tzinfo=UTC)


START, END = day(1, 1), day(7, 1)  # 181 days


def test_rolling_folds_end_at_the_range_end_with_a_fixed_train_length():
    # tests back to back from the end: Jul 1 - 30 d = Jun 1, - 30 d = May 2, - 30 d = Apr 2;
    # each train is the 60 days before its test: Feb 1, Mar 3, Apr 2
    folds = walk_forward_folds(START, END, folds=3, test=30 * DAY, train=60 * DAY)
    assert folds == (
        Fold(0, day(2, 1), day(4, 2), day(4, 2), day(5, 2)),
        Fold(1, day(3, 3), day(5, 2), day(5, 2), day(6, 1)),
        Fold(2, day(4, 2), day(6, 1), day(6, 1), day(7, 1)),
    )


def test_anchored_folds_train_from_the_range_start():
    folds = walk_forward_folds(
        START, END, folds=3, test=30 * DAY, train=60 * DAY, scheme=FoldScheme.ANCHORED
    )
    assert folds == (
        Fold(0, day(1, 1), day(4, 2), day(4, 2), day(5, 2)),
        Fold(1, day(1, 1), day(5, 2), day(5, 2), day(6, 1)),
        Fold(2, day(1, 1), day(6, 1), day(6, 1), day(7, 1)),
    )


def test_a_range_that_fits_exactly_uses_every_day():
    # 181 d = 1 d train + 6 x 30 d tests
    folds = walk_forward_folds(START, END, folds=6, test=30 * DAY, train=DAY)
    assert folds[0].train_start == START and folds[-1].test_end == END
    assert all(a.test_end == b.test_start for a, b in pairwise(folds))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"folds": 6, "test": 30 * DAY, "train": 60 * DAY},
            "needs train + folds x test = 60d + 6 x 30d = 240d, but "
            "[2025-01-01T00:00:00+00:00, 2025-07-01T00:00:00+00:00) spans 181d",
        ),
        ({"folds": 0, "test": 30 * DAY, "train": 60 * DAY}, "folds must be >= 1, got 0"),
        ({"folds": 2, "test": timedelta(0), "train": 60 * DAY}, "test (0d) and train (60d)"),
        ({"folds": 2, "test": 30 * DAY, "train": -DAY}, "must be positive"),
    ],
)
def test_impossible_folds_are_refused_with_the_arithmetic(kwargs, message):
    with pytest.raises(ConfigError) as caught:
        walk_forward_folds(START, END, **kwargs)
    assert message in str(caught.value)


def test_an_empty_or_naive_range_is_refused():
    with pytest.raises(ConfigError, match="range is empty"):
        walk_forward_folds(END, START, folds=1, test=DAY, train=DAY)
    with pytest.raises(ConfigError, match="timezone-aware UTC"):
        walk_forward_folds(
            datetime(2025, 1, 1),  # noqa: DTZ001
            END,
            folds=1,
            test=DAY,
            train=DAY,
        )
