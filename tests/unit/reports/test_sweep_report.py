"""The sweep report: the IS/OOS table, the variants, the guards with their formulas, the
verdict of core/overfit, and the HTML scatter of trades per month vs expectancy."""

from __future__ import annotations

import dataclasses
import html
import re

import numpy as np
import pytest

from core.overfit import guard_formulas, overfit_verdict
from reports.sweep_html import (
    BEST,
    IN_SAMPLE,
    MOVES,
    OUT_OF_SAMPLE,
    Expectancy,
    render_sweep_html,
    sweep_figure,
)
from reports.sweep_records import SampleFigures, SweepReport
from reports.sweep_text import render_sweep_text
from tests.unit.reports.plotly_html import array, plots
from tests.unit.reports.sample_run import build_result
from tests.unit.reports.sample_sweep import VARIANTS, build_sweep
from tests.unit.reports.test_backtest_text import table


@pytest.fixture(scope="module")
def report() -> SweepReport:
    return build_sweep()


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_table_has_an_in_and_an_out_of_sample_row_per_variant_the_best_marked(report):
    rows = table(render_sweep_text(report), "SWEEP")
    assert rows[0] == [
        "Variant", "Sample", "Trades", "Tr/mo", "Win %", "Exp USD", "Exp R", "Max DD", "Sharpe",
    ]  # fmt: skip
    assert rows[3] == ["* ote_tolerance=0.05", "IS", "41", "4.10", "41.5%", "+6.20", "+0.09",
                       "8.1%", "0.92"]  # fmt: skip
    assert rows[4] == ["", "OOS", "12", "3.00", "33.3%", "-4.80", "-0.07", "5.4%", "-0.40"]
    assert [r[1] for r in rows[1:]] == ["IS", "OOS"] * len(VARIANTS)


def test_undefined_figures_and_a_variant_not_run_out_of_sample_print_na(report):
    rows = table(render_sweep_text(report), "SWEEP")
    assert rows[7] == ["momentum=true", "IS", "0", "0.00", "n/a", "n/a", "n/a", "0.0%", "n/a"]
    assert rows[8] == ["", "OOS", "not run", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"]


def test_every_variant_is_listed_whole_with_its_hash_and_overrides(report):
    text = squash(render_sweep_text(report))
    assert "baseline [a1b2c3d4e5f60718]: none (the base configuration)" in text
    assert "allow_1h_structure=true [c3d4e5f607182930]: strategy.allow_1h_structure=true" in text
    assert (
        "all_relaxations_with_a_rather_long_name_for_the_table [e5f6071829304152]: "
        "strategy.ote_tolerance=0.05, strategy.allow_1h_structure=true, strategy.momentum=true, "
        "strategy.widen_tight_smc=true (same configuration as everything)"
    ) in text


def test_guards_print_their_figures_the_verdict_and_the_formulas(report):
    text = render_sweep_text(report)
    flat = squash(text)
    d, p = report.dsr, report.pbo
    assert f"Deflated Sharpe Ratio of the best: {d.dsr:.3f}" in flat
    assert f"SR0 = {d.benchmark_sharpe:.4f} from N = 5 trials" in flat
    assert f"(CSCV, S = 8 blocks, 70 combinations, N = 5 configurations): {p.pbo:.2f}" in flat
    verdict = overfit_verdict(p.pbo, d.dsr)
    assert f"VERDICT: {verdict.sentence}" in flat
    for formula in guard_formulas().splitlines():
        assert squash(formula) in flat
    assert max(len(line) for line in text.splitlines()) <= 100


def test_the_verdict_says_luck_when_a_guard_fails_and_not_assessed_without_guards(report):
    luck = dataclasses.replace(report, dsr=dataclasses.replace(report.dsr, dsr=0.5))
    assert "VERDICT: the best variant is indistinguishable from luck: DSR 0.50 < 0.95" in (
        render_sweep_text(luck)
    )
    bare = render_sweep_text(build_sweep(guards=False))
    assert "Deflated Sharpe Ratio: not computed" in bare
    assert "Probability of Backtest Overfitting: not computed" in bare
    assert "VERDICT: overfitting not assessed: PBO not computed; DSR not computed" in squash(bare)


def test_a_sweep_without_a_qualifying_variant_marks_none(report):
    text = render_sweep_text(dataclasses.replace(report, best=None))
    assert "Best in sample by expectancy_r (min 10 trades): none (no variant qualified)" in text
    assert "* " not in text.split("Variants")[0]


def test_the_report_refuses_duplicate_names_and_an_unknown_best():
    with pytest.raises(ValueError, match=r"\['baseline'\] appear more than once"):
        build_sweep((VARIANTS[0], VARIANTS[0]), best="baseline")
    with pytest.raises(ValueError, match="best variant 'winner' is not among"):
        build_sweep(best="winner")


def test_sample_figures_are_the_backtest_metrics():
    m = build_result().metrics
    s = SampleFigures.from_metrics(m)
    assert (s.trades, s.trades_per_month, s.win_rate, s.expectancy_usd, s.expectancy_r) == (
        m.trades, m.trades_per_month, m.win_rate, m.expectancy_usd, m.expectancy_r,
    )  # fmt: skip
    assert (s.max_drawdown_pct, s.sharpe) == (m.max_drawdown_pct, m.sharpe)


def test_scatter_has_one_point_per_variant_and_sample_that_has_both_figures(report):
    page = render_sweep_html(report)
    traces, _ = plots(page)["chart-sweep"]
    assert [t["name"] for t in traces] == [IN_SAMPLE, OUT_OF_SAMPLE, MOVES, BEST]
    drawn = [v for v in VARIANTS if v.name != "momentum=true"]  # expectancy n/a, OOS not run
    assert traces[0]["text"] == [v.name for v in drawn]
    assert array(traces[0]["x"]).tolist() == [v.in_sample.trades_per_month for v in drawn]
    assert array(traces[1]["y"]).tolist() == [v.out_of_sample.expectancy_usd for v in drawn]
    assert np.isnan(array(traces[2]["x"])).sum() == len(drawn)  # one IS -> OOS segment each
    assert array(traces[3]["y"]).tolist() == [6.2, -4.8]  # the best, IS and OOS
    assert "not drawn (n/a): momentum=true IS, momentum=true OOS" in page
    assert f"Verdict: {html.escape(str(report.verdict()))}" in page


def test_scatter_can_show_expectancy_in_r(report):
    figure = sweep_figure(report, Expectancy.R)
    assert list(figure.data[0].y) == [
        v.in_sample.expectancy_r for v in VARIANTS if v.in_sample.expectancy_r is not None
    ]
    assert "R per trade" in figure.layout.yaxis.title.text


def test_many_variants_are_drawn_without_name_labels():
    many = tuple(dataclasses.replace(VARIANTS[1], name=f"v{i:03d}") for i in range(30))
    figure = sweep_figure(build_sweep(many, best="v000"))
    assert figure.data[0].mode == "markers"
    assert len(figure.data[0].x) == 30
