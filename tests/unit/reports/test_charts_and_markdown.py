"""PNG charts (valid PNG of the asked size, the drawdown drawn when there is one) and the
markdown of Prefect artifacts (tables, the image as a data: URI)."""

from __future__ import annotations

import base64
import io
import re
import struct

import numpy as np
import polars as pl
import pytest
from PIL import Image

from reports.charts import equity_drawdown_png, write_equity_drawdown_png
from reports.curves import drawdown_curve
from reports.markdown import backtest_markdown, markdown_image, sweep_markdown
from tests.unit.reports.sample_run import build_result
from tests.unit.reports.sample_sweep import build_sweep

DRAWDOWN_RED = (214, 39, 40)  # matplotlib's #d62728, the drawdown fill


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def red_pixels(png: bytes) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return int((np.abs(pixels.astype(int) - DRAWDOWN_RED).sum(axis=2) < 30).sum())


def test_chart_is_a_valid_png_of_the_asked_size(result):
    png = equity_drawdown_png(result, width_px=900, height_px=450)
    assert png_size(png) == (900, 450)
    image = Image.open(io.BytesIO(png))
    image.verify()  # the whole stream decodes (CRCs, chunks)
    assert image.format == "PNG"


def test_chart_draws_the_drawdown_only_when_there_is_one(result):
    # a flat curve leaves only the fill's edge at 0 (one line of pixels), a dip an area
    flat = red_pixels(equity_drawdown_png(build_result(())))
    assert flat < 1200 * 2
    assert red_pixels(equity_drawdown_png(result)) > 20 * flat


def test_a_too_small_chart_is_refused(result):
    with pytest.raises(ValueError, match="too small"):
        equity_drawdown_png(result, width_px=100, height_px=100)


def test_chart_written_to_a_file_is_the_same_png(result, tmp_path):
    path = write_equity_drawdown_png(
        result, tmp_path / "ci" / "equity.png", width_px=640, height_px=320
    )
    assert png_size(path.read_bytes()) == (640, 320)
    assert sorted(p.name for p in path.parent.iterdir()) == ["equity.png"]


def test_drawdown_curve_bottoms_at_the_metrics_max_drawdown(result):
    curve = drawdown_curve(result.equity)
    assert -curve["drawdown_usd"].min() == pytest.approx(result.metrics.max_drawdown_usd)
    assert -curve["drawdown_pct"].min() == pytest.approx(result.metrics.max_drawdown_pct)
    assert (curve["drawdown_pct"] <= 0).all()


def test_drawdown_curve_refuses_a_frame_without_equity():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['equity'\]"):
        drawdown_curve(pl.DataFrame({"ts": []}))


def test_markdown_image_is_a_data_uri_of_the_same_png(result):
    png = equity_drawdown_png(result, width_px=400, height_px=200)
    line = markdown_image(png, "equity [run 1]")
    match = re.fullmatch(r"!\[equity \(run 1\)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", line)
    assert match and base64.b64decode(match.group(1)) == png


def test_markdown_image_refuses_bytes_that_are_not_a_png():
    with pytest.raises(ValueError, match="not a PNG"):
        markdown_image(b"GIF89a...", "chart")


def test_backtest_markdown_has_every_table_and_the_chart(result):
    png = equity_drawdown_png(result, width_px=400, height_px=200)
    md = backtest_markdown(result, png)
    for title in ("SUMMARY METRICS", "PER MARKET", "PER EXIT REASON", "PER MONTH", "GATE FUNNEL"):
        assert f"**{title}" in md
    assert "| Net profit | +528.00 USD |" in md
    assert "| structure | 100 | 48.8% | 55 |" in md
    assert md.count("data:image/png;base64,") == 1
    assert "data:image" not in backtest_markdown(result)


def test_backtest_markdown_of_a_run_without_trades_prints_na():
    md = backtest_markdown(build_result(()))
    assert "| Profit factor | n/a |" in md
    assert "| Win rate | n/a |" in md


def test_sweep_markdown_has_the_verdict_the_table_and_the_formulas():
    report = build_sweep()
    md = sweep_markdown(report)
    assert f"**Verdict: {report.verdict()}**" in md
    assert "| * ote_tolerance=0.05 | IS | 41 | 4.10 | 41.5% | +6.20 | +0.09 | 8.1% | 0.92 |" in md
    assert "Deflated Sharpe Ratio (Bailey & López de Prado, 2014)" in md
