"""The terminal report of a backtest: header, summary, per market / exit reason / month,
the gate funnel. Plain fixed-width text, at most 100 columns wide."""

from __future__ import annotations

from core.backtest_result import BacktestResult
from reports.backtest_tables import backtest_tables, header_lines
from reports.table import TEXT_WIDTH, text_table


def render_backtest_text(result: BacktestResult, width: int = TEXT_WIDTH) -> str:
    """The whole report as one string (no trailing newline); undefined figures print n/a.

    Refuses (ValueError) a funnel frame without its gate and rejections columns.
    """
    sections = ["\n".join(header_lines(result.run, width))]
    sections += [text_table(table, width) for table in backtest_tables(result)]
    return "\n\n".join(sections)
