"""Pooling a variant's windows, the objective with its minimum trades, walk-forward choice
and the guards' inputs, on small hand-made records (figures computed by hand)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.sweep_analysis import FoldWindows, analyse
from core.sweep_objective import Objective, pool, score
from core.sweep_plan import parse_plan
from tests.support.sweeps import T0, window


def test_pooling_sums_trades_and_compounds_returns_over_the_windows():
    a = window("h", 0, (10.0, -5.0), (0.01, -0.02), dd=0.03)
    b = window("h", 2, (20.0,), (0.02,), dd=0.01)
    p = pool([a, b])
    assert p.trades == 3
    assert p.win_rate == pytest.approx(2 / 3)
    assert p.expectancy_usd == pytest.approx(25 / 3)
    assert p.expectancy_r == pytest.approx(2.5 / 3)
    assert p.trades_per_month == pytest.approx(3 / (4 / (365 / 12)))
    assert p.net_return == pytest.approx(1.01 * 0.98 * 1.02 - 1)
    # the stitched index 1, 1.01, 0.9898, 1.0096: its drawdown 2 % < the worst window's 3 %
    assert p.max_drawdown_pct == pytest.approx(0.03)
    assert p.profit_drawdown == pytest.approx(p.net_return / 0.03)


def test_the_objective_needs_the_minimum_trades():
    p = pool([window("h", 0, (10.0, 2.0), (0.01, 0.0))])
    assert score(p, Objective.EXPECTANCY, min_trades=2) == pytest.approx(6.0)
    assert score(p, Objective.EXPECTANCY, min_trades=3) is None
    assert score(pool([window("h", 0, (), (0.0,))]), Objective.EXPECTANCY, 0) is None


def test_each_fold_chooses_in_sample_and_the_best_is_the_pooled_in_sample_winner():
    folds = [FoldWindows(0, (T0, T0 + timedelta(hours=47)),
                         (T0 + timedelta(days=2), T0 + timedelta(days=4, hours=-1))),
             FoldWindows(1, (T0 + timedelta(days=2), T0 + timedelta(days=4, hours=-1)),
                         (T0 + timedelta(days=4), T0 + timedelta(days=6, hours=-1)))]
    results = {}
    figures = {  # (variant, day) -> pnl
        ("a", 0): (5.0,), ("a", 2): (1.0,), ("a", 4): (-3.0,),
        ("b", 0): (1.0,), ("b", 2): (4.0,), ("b", 4): (2.0,),
    }
    for (digest, day), pnl in figures.items():
        r = window(digest, day, pnl, (0.001 * pnl[0], 0.0005, -0.0002))
        results[(digest, r.start, r.end)] = r
    out = analyse([("A", "a"), ("B", "b")], folds, results, Objective.EXPECTANCY, 1)
    assert [c.chosen for c in out.folds] == ["A", "B"]  # fold 1: 5 > 1; fold 2: 4 > 1
    assert out.best == "A"  # pooled in sample: A (5 + 1) / 2 = 3 > B (1 + 4) / 2 = 2.5
    by = {v.name: v for v in out.variants}
    assert by["A"].out_of_sample.expectancy_usd == pytest.approx((1.0 - 3.0) / 2)
    assert out.walk_forward.trades == 2  # A's fold-1 test (+1) and B's fold-2 test (+2)
    assert out.walk_forward.expectancy_usd == pytest.approx(1.5)
    assert out.pbo is not None and out.pbo.configurations == 2 and out.pbo.blocks == 6
    assert out.dsr is not None and out.dsr.n_trials == 2 and out.dsr.periods == 6


def test_a_sweep_file_refuses_unknown_keys_and_a_bad_objective():
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown keys \\['foldz'\\]"):
        parse_plan({"variants": [{"name": "b"}], "foldz": 2})
    with pytest.raises(ConfigError, match="objective 'profit' unknown"):
        parse_plan({"variants": [{"name": "b"}], "objective": "profit"})
