"""The sweep report a trader decides from: per variant in sample vs out of sample, the
overfitting guards with their formulas and the plain verdict. Fixed-width, 100 columns."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from math import comb
from typing import Any

from core.overfit import guard_formulas
from reports.cells import NA, number, pct, usd
from reports.sweep_records import SampleFigures, SweepReport, VariantResult
from reports.table import TEXT_WIDTH, Align, Column, Table, text_table

BEST_MARK = "* "
IN_SAMPLE, OUT_OF_SAMPLE = "IS", "OOS"


def overrides_text(overrides: Mapping[str, Any]) -> str:
    """name=value pairs in YAML spelling (true, 0.05); the base configuration when empty."""
    if not overrides:
        return "none (the base configuration)"
    shown = (f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items())
    return ", ".join(shown)


def _figures(sample: SampleFigures | None) -> tuple[str, ...]:
    if sample is None:
        return ("not run",) + (NA,) * 6
    return (
        str(sample.trades),
        number(sample.trades_per_month),
        pct(sample.win_rate, digits=1),
        usd(sample.expectancy_usd, signed=True),
        number(sample.expectancy_r, signed=True),
        pct(sample.max_drawdown_pct, digits=1),
        number(sample.sharpe),
    )


def _name(report: SweepReport, variant: VariantResult) -> str:
    return (BEST_MARK if variant.name == report.best else "") + variant.name


def sweep_table(report: SweepReport) -> Table:
    """Two rows per variant, in sample then out of sample; the chosen variant marked *."""
    rows = []
    for variant in report.variants:
        rows.append((_name(report, variant), IN_SAMPLE, *_figures(variant.in_sample)))
        rows.append(("", OUT_OF_SAMPLE, *_figures(variant.out_of_sample)))
    columns = (
        Column("Variant", Align.LEFT),
        Column("Sample", Align.LEFT),
        Column("Trades"),
        Column("Tr/mo"),
        Column("Win %"),
        Column("Exp USD"),
        Column("Exp R"),
        Column("Max DD"),
        Column("Sharpe"),
    )
    return Table(
        "SWEEP: IN SAMPLE (IS) vs OUT OF SAMPLE (OOS)", columns, tuple(rows), empty="no variants"
    )


def variant_lines(report: SweepReport, width: int = TEXT_WIDTH) -> list[str]:
    """Every variant's full name, config hash and overrides (the table may cut the names)."""
    lines = ["Variants (config hash: overrides):"]
    for v in report.variants:
        text = f"{_name(report, v)} [{v.config_hash}]: {overrides_text(v.overrides)}"
        if v.same_as:
            text += f" (same configuration as {', '.join(v.same_as)})"
        lines += textwrap.wrap(text, width, initial_indent="  ", subsequent_indent="      ")
    return lines


def _dsr_line(report: SweepReport) -> str:
    d = report.dsr
    if d is None:
        return "Deflated Sharpe Ratio: not computed (too few trials or returns)"
    return (
        f"Deflated Sharpe Ratio of the best: {number(d.dsr, digits=3)} (SR {d.sharpe:.4f} per "
        f"period over T = {d.periods}, skew {d.skewness:.2f}, kurt {d.kurtosis:.2f}; "
        f"SR0 = {d.benchmark_sharpe:.4f} from N = {d.n_trials} trials, "
        f"V[SR] = {d.sharpe_variance:.3g})"
    )


def _pbo_line(report: SweepReport) -> str:
    p = report.pbo
    if p is None:
        return (
            "Probability of Backtest Overfitting: not computed (too few configurations or blocks)"
        )
    return (
        f"Probability of Backtest Overfitting (CSCV, S = {p.blocks} blocks, "
        f"{comb(p.blocks, p.blocks // 2)} combinations, N = {p.configurations} configurations): "
        f"{p.pbo:.2f}; degradation slope {number(p.degradation_slope)}; "
        f"probability of loss {p.probability_of_loss:.2f}"
    )


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    """Wrapped at spaces only: a formula's minus signs stay with their operands."""
    return textwrap.wrap(
        text, width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    )


def guard_lines(report: SweepReport, width: int = TEXT_WIDTH) -> list[str]:
    """The guards' figures, the verdict sentence and the formulas, wrapped to `width`."""
    chosen = report.best or "none (no variant qualified)"
    lines = [f"Best in sample by {report.objective}: {chosen}"]
    if report.folds:
        lines.append(f"Folds: {report.folds}")
    for text in (_dsr_line(report), _pbo_line(report), f"VERDICT: {report.verdict()}"):
        lines += _wrap(text, width, "", "    ")
    lines.append("Formulas:")
    for formula in guard_formulas(pbo_max=report.pbo_max, dsr_min=report.dsr_min).splitlines():
        lines += _wrap(formula, width, "  ", "    ")
    return lines


def render_sweep_text(report: SweepReport, width: int = TEXT_WIDTH) -> str:
    """The whole sweep report as one string: title, table, variants, guards and verdict."""
    table = text_table(sweep_table(report), width)
    if report.best is not None:
        table += f"\n{BEST_MARK}chosen in sample by {report.objective}"
    sections = [report.title, table]
    sections.append("\n".join(variant_lines(report, width)))
    if report.notes:
        sections.append("\n".join(textwrap.fill(n, width) for n in report.notes))
    sections.append("\n".join(guard_lines(report, width)))
    return "\n\n".join(sections)
