"""Charts of the cycle dashboard as small PNG images, embedded in markdown artifacts.

The Prefect UI (v1 and v2) renders a markdown image whose source is a `data:image/png`
URI (checked with headless Chromium, README "Cycle dashboard"), so no file server is
needed. Every cycle stores one, so the image is kept small: a 64-colour palette PNG.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from core.dashboard import EquityMark

WIDTH_IN, HEIGHT_IN, DPI = 6.4, 2.0, 80


def equity_png(marks: Sequence[EquityMark]) -> bytes | None:
    """Equity and its high-water mark over the marks given; None with fewer than two."""
    if len(marks) < 2:
        return None
    # Imported here: ~1 s of imports that only the chart needs, not every `trader` command.
    # Figure + the Agg canvas, not pyplot: no global figure state, no display backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    times = [m.ts for m in marks]
    ax.plot(times, [m.equity for m in marks], color="#1f6feb", linewidth=1.6, label="equity")
    ax.plot(
        times, [m.high_water for m in marks], color="#8b949e", linewidth=1.0,
        linestyle="--", label="high-water",
    )
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout(pad=0.4)
    raw = io.BytesIO()
    fig.savefig(raw, format="png")
    raw.seek(0)
    # 64 colours are plenty for two lines on white; a third of the RGBA size.
    small = Image.open(raw).convert("RGB").quantize(colors=64)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
