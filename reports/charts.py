"""PNG charts with matplotlib (Agg, no display): equity and drawdown of a backtest.

For Prefect markdown artifacts and CI. Draws on an Agg canvas through matplotlib's object
API (Figure), never pyplot: no global figure state, no backend switch, no display needed.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.backtest_result import BacktestResult
from reports.cells import pct, usd
from reports.curves import drawdown_curve
from reports.output_file import write_bytes_atomically

DPI = 100
WIDTH_PX, HEIGHT_PX = 1200, 600


def equity_drawdown_png(
    result: BacktestResult, *, width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX
) -> bytes:
    """PNG bytes, exactly width_px x height_px: equity (top) and drawdown % (bottom), UTC time.

    A curve without marks gives a chart that says so. Refuses sizes under 200 x 150 px
    and an equity frame without ts/equity (ValueError).
    """
    if width_px < 200 or height_px < 150:
        raise ValueError(f"chart size {width_px}x{height_px} px is too small: at least 200x150")
    curve = drawdown_curve(result.equity)
    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    run, m = result.run, result.metrics
    top.set_title(
        f"{run.run_id}  {run.start:%Y-%m-%d} -> {run.end:%Y-%m-%d} ({run.status})  "
        f"net {usd(m.net_profit_usd, signed=True)} USD, max drawdown {pct(m.max_drawdown_pct)}"
    )
    if curve.height == 0:
        top.text(0.5, 0.5, "no equity marks", ha="center", va="center", transform=top.transAxes)
    else:
        ts = curve["ts"].dt.replace_time_zone(None).to_numpy()  # matplotlib plots naive as UTC
        top.plot(ts, curve["equity"].to_numpy(), color="#1f77b4", linewidth=1.2)
        bottom.fill_between(ts, curve["drawdown_pct"].to_numpy() * 100, 0, color="#d62728")
    top.set_ylabel("equity (USD)")
    bottom.set_ylabel("drawdown (%)")
    bottom.set_xlabel("UTC")
    for axes in (top, bottom):
        axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def write_equity_drawdown_png(
    result: BacktestResult, path: Path, *, width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX
) -> Path:
    """The equity and drawdown chart written to `path` (atomically); returns the path."""
    return write_bytes_atomically(
        path, equity_drawdown_png(result, width_px=width_px, height_px=height_px)
    )
