"""One report table, written as fixed-width text, markdown or HTML from the same cells."""

from __future__ import annotations

import html
from dataclasses import dataclass
from enum import StrEnum

TEXT_WIDTH = 100  # the terminal report stays readable in a 100-column window
ELLIPSIS = "…"


class Align(StrEnum):
    LEFT = "left"
    RIGHT = "right"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    align: Align = Align.RIGHT


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of already formatted cells; `total` is an optional last row set apart."""

    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    total: tuple[str, ...] | None = None
    empty: str = "nothing to show"  # printed instead of the rows when there are none

    def __post_init__(self) -> None:
        for row in (*self.rows, *(() if self.total is None else (self.total,))):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: a row has {len(row)} cells for "
                    f"{len(self.columns)} columns ({row!r})"
                )


def _fit(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: width - 1] + ELLIPSIS


def _widths(table: Table, max_width: int) -> list[int]:
    """Column widths; the first column is cut (with …) when the table is wider than allowed."""
    rows = [*table.rows, *(() if table.total is None else (table.total,))]
    widths = [max([len(c.name), *(len(r[i]) for r in rows)]) for i, c in enumerate(table.columns)]
    overflow = sum(widths) + 3 * len(widths) + 1 - max_width
    if overflow > 0:
        widths[0] = max(len(table.columns[0].name), 8, widths[0] - overflow)
    return widths


def _line(cells: tuple[str, ...], table: Table, widths: list[int]) -> str:
    parts = []
    for cell, column, width in zip(cells, table.columns, widths, strict=True):
        text = _fit(cell, width)
        parts.append(text.ljust(width) if column.align is Align.LEFT else text.rjust(width))
    return "| " + " | ".join(parts) + " |"


def text_table(table: Table, max_width: int = TEXT_WIDTH) -> str:
    """The table as fixed-width text under its title, at most `max_width` columns when the
    first column can be cut to fit; a table without rows prints its `empty` sentence."""
    widths = _widths(table, max_width)
    rule = "|-" + "-+-".join("-" * w for w in widths) + "-|"
    lines = [f"=== {table.title} ==="]
    if not table.rows:
        return "\n".join([*lines, table.empty])
    names = tuple(c.name for c in table.columns)
    lines += [_line(names, table, widths), rule]
    lines += [_line(row, table, widths) for row in table.rows]
    if table.total is not None:
        lines += [rule, _line(table.total, table, widths)]
    return "\n".join(lines)


def _md_cell(cell: str) -> str:
    return cell.replace("|", "\\|")


def markdown_table(table: Table) -> str:
    """The table as a GitHub-flavoured markdown table under a bold title."""
    lines = [f"**{table.title}**", ""]
    if not table.rows:
        return "\n".join([*lines, f"_{table.empty}_"])
    lines.append("| " + " | ".join(_md_cell(c.name) for c in table.columns) + " |")
    lines.append(
        "|" + "|".join(":---" if c.align is Align.LEFT else "---:" for c in table.columns) + "|"
    )
    for row in (*table.rows, *(() if table.total is None else (table.total,))):
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return "\n".join(lines)


def html_table(table: Table) -> str:
    """The table as an HTML <table> with a caption; every cell escaped."""
    if not table.rows:
        return f"<h3>{html.escape(table.title)}</h3><p>{html.escape(table.empty)}</p>"

    def row(cells: tuple[str, ...], tag: str, css: str = "") -> str:
        out = "".join(
            f'<{tag} class="{c.align}">{html.escape(v)}</{tag}>'
            for v, c in zip(cells, table.columns, strict=True)
        )
        return f"<tr{css}>{out}</tr>"

    body = "".join(row(r, "td") for r in table.rows)
    if table.total is not None:
        body += row(table.total, "td", ' class="total"')
    head = row(tuple(c.name for c in table.columns), "th")
    return (
        f"<table><caption>{html.escape(table.title)}</caption>"
        f"<thead>{head}</thead><tbody>{body}</tbody></table>"
    )
