"""One self-contained HTML page of plotly figures: plotly.js inline (once), no network."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.io as pio
import polars as pl
from plotly import graph_objects as go
from plotly.offline import get_plotlyjs

TEMPLATE = "plotly_white"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; }
table { border-collapse: collapse; margin: .5em 1.5em 1.5em 0; display: inline-table;
        vertical-align: top; font-size: 0.9em; }
caption { font-weight: bold; text-align: left; padding: .3em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .2em .6em; }
td.right, th.right { text-align: right; } td.left, th.left { text-align: left; }
tr.total td { font-weight: bold; border-top: 2px solid #999; }
.note { color: #8a5a00; }
"""


def epoch_ms(ts: pl.Series) -> np.ndarray:
    """UTC timestamps as float milliseconds since the epoch: plotly's date axes read them
    directly and plotly sends float arrays as compact base64, not as ISO strings."""
    return ts.dt.epoch("ms").cast(pl.Float64).to_numpy()


def figure_div(figure: go.Figure, div_id: str) -> str:
    """The figure as a <div> and its script, plotly.js left to the page."""
    return pio.to_html(
        figure,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config=PLOT_CONFIG,
    )


def html_page(title: str, body: Sequence[str]) -> str:
    """A whole HTML document: the title, the style, plotly.js inline, then `body` in order."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n<body>\n'
        + "\n".join(body)
        + "\n</body></html>\n"
    )
