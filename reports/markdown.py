"""Markdown for Prefect artifacts (create_markdown_artifact): the backtest and sweep reports
as markdown tables, the equity chart as an image.

Whether the Prefect UI renders data: URIs is being checked: every image goes through
markdown_image, the one place to switch (e.g. to a link to a written PNG file).
"""

from __future__ import annotations

import base64

from core.backtest_result import BacktestResult
from reports.backtest_tables import backtest_tables, header_lines
from reports.sweep_records import SweepReport
from reports.sweep_text import BEST_MARK, guard_lines, sweep_table, variant_lines
from reports.table import markdown_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def markdown_image(png: bytes, alt: str) -> str:
    """The PNG as a markdown image with a data: URI. Refuses bytes that are not a PNG."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError(f"image {alt!r} is not a PNG (no PNG signature): pass PNG bytes")
    clean_alt = alt.replace("[", "(").replace("]", ")")
    return f"![{clean_alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def _code_block(lines: list[str]) -> str:
    return "```\n" + "\n".join(lines) + "\n```"


def backtest_markdown(result: BacktestResult, chart_png: bytes | None = None) -> str:
    """Header (as a code block), the equity chart when given, then every report table."""
    run = result.run
    parts = [f"### Backtest {run.run_id} ({run.status})", _code_block(header_lines(run))]
    if chart_png is not None:
        parts.append(markdown_image(chart_png, f"equity and drawdown of {run.run_id}"))
    parts += [markdown_table(table) for table in backtest_tables(result)]
    return "\n\n".join(parts)


def sweep_markdown(report: SweepReport) -> str:
    """Title, the verdict in bold, the IS/OOS table, the variants, guards and formulas."""
    parts = [f"### {report.title}", f"**Verdict: {report.verdict()}**"]
    parts.append(markdown_table(sweep_table(report)))
    if report.best is not None:
        parts.append(f"`{BEST_MARK.strip()}` chosen in sample by {report.objective}")
    parts += [_code_block(variant_lines(report)), _code_block(guard_lines(report))]
    return "\n\n".join(parts)
