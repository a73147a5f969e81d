"""The sweep as one offline HTML page: the scatter "trades per month vs expectancy, one point
per variant, in sample and out of sample", the table, the guards, the verdict and formulas."""

from __future__ import annotations

import html
from enum import StrEnum
from pathlib import Path

from plotly import graph_objects as go

from reports.output_file import write_bytes_atomically
from reports.plotly_page import TEMPLATE, figure_div, html_page
from reports.sweep_records import SampleFigures, SweepReport
from reports.sweep_text import guard_lines, sweep_table, variant_lines
from reports.table import html_table

IN_SAMPLE, OUT_OF_SAMPLE, MOVES, BEST = "in sample", "out of sample", "IS → OOS", "best (chosen IS)"
LABELLED_VARIANTS = 20  # above this many points the names would hide each other: hover only


class Expectancy(StrEnum):
    """Which expectancy the scatter's y axis shows (both are net of fees and funding)."""

    USD = "expectancy_usd"
    R = "expectancy_r"


def _point(sample: SampleFigures | None, y: Expectancy) -> tuple[float, float] | None:
    """(trades per month, expectancy), or None when either is undefined (n/a: not drawn)."""
    if sample is None:
        return None
    value = getattr(sample, y.value)
    if sample.trades_per_month is None or value is None:
        return None
    return sample.trades_per_month, value


def _samples(report: SweepReport, which: str, y: Expectancy, name: str, symbol: str) -> go.Scatter:
    points = [(v, _point(getattr(v, which), y)) for v in report.variants]
    drawn = [(v, p) for v, p in points if p is not None]
    return go.Scatter(
        x=[p[0] for _, p in drawn],
        y=[p[1] for _, p in drawn],
        mode="markers+text" if len(report.variants) <= LABELLED_VARIANTS else "markers",
        name=name,
        text=[v.name for v, _ in drawn],
        textposition="top center",
        marker={"symbol": symbol, "size": 11},
        hovertext=[f"{v.name} [{v.config_hash}] {name}" for v, _ in drawn],
    )


def _moves(report: SweepReport, y: Expectancy) -> go.Scatter:
    x: list[float | None] = []
    ys: list[float | None] = []
    for v in report.variants:
        a, b = _point(v.in_sample, y), _point(v.out_of_sample, y)
        if a is not None and b is not None:
            x += [a[0], b[0], None]
            ys += [a[1], b[1], None]
    return go.Scatter(
        x=x,
        y=ys,
        mode="lines",
        name=MOVES,
        line={"color": "#999", "dash": "dot"},
        hoverinfo="skip",
    )


def _best(report: SweepReport, y: Expectancy) -> go.Scatter:
    chosen = [v for v in report.variants if v.name == report.best]
    points = [p for v in chosen for p in (_point(v.in_sample, y), _point(v.out_of_sample, y)) if p]
    return go.Scatter(
        x=[p[0] for p in points],
        y=[p[1] for p in points],
        mode="markers",
        name=BEST,
        marker={
            "symbol": "star",
            "size": 18,
            "color": "rgba(0,0,0,0)",
            "line": {"width": 2, "color": "#d62728"},
        },
        hoverinfo="skip",
    )


def not_drawn(report: SweepReport, y: Expectancy) -> list[str]:
    """Variant samples without a point (n/a trades per month or expectancy, or not run)."""
    missing = []
    for v in report.variants:
        for label, sample in (("IS", v.in_sample), ("OOS", v.out_of_sample)):
            if _point(sample, y) is None:
                missing.append(f"{v.name} {label}")
    return missing


def sweep_figure(report: SweepReport, y: Expectancy = Expectancy.USD) -> go.Figure:
    """Traces: in sample, out of sample, the IS → OOS move of each variant, the best marked."""
    figure = go.Figure(
        [
            _samples(report, "in_sample", y, IN_SAMPLE, "circle"),
            _samples(report, "out_of_sample", y, OUT_OF_SAMPLE, "diamond"),
            _moves(report, y),
            _best(report, y),
        ]
    )
    unit = "USD per trade" if y is Expectancy.USD else "R per trade"
    figure.update_layout(
        template=TEMPLATE,
        height=600,
        title=f"Trades per month vs expectancy ({unit}, net of fees), one point per variant",
        xaxis={"title": "trades per month"},
        yaxis={"title": f"expectancy ({unit})", "zeroline": True, "zerolinewidth": 2},
    )
    return figure


def render_sweep_html(report: SweepReport, y: Expectancy = Expectancy.USD) -> str:
    """The sweep page as a string: title, verdict, scatter, table, variants, guards, formulas."""
    missing = not_drawn(report, y)
    body = [
        f"<h1>{html.escape(report.title)}</h1>",
        f"<p><strong>Verdict: {html.escape(str(report.verdict()))}</strong></p>",
        figure_div(sweep_figure(report, y), "chart-sweep"),
    ]
    if missing:
        body.append(f'<p class="note">not drawn (n/a): {html.escape(", ".join(missing))}</p>')
    body += [
        html_table(sweep_table(report)),
        "<pre>" + html.escape("\n".join(variant_lines(report))) + "</pre>",
        "<pre>" + html.escape("\n".join(guard_lines(report))) + "</pre>",
    ]
    return html_page(report.title, body)


def write_sweep_html(report: SweepReport, path: Path, y: Expectancy = Expectancy.USD) -> Path:
    """render_sweep_html written to `path` atomically; returns the path."""
    return write_bytes_atomically(path, render_sweep_html(report, y).encode("utf-8"))
