"""The backtest as one self-contained HTML file: header, tables, equity and drawdown, and per
market its candles with the SMC structure and the trades. Works offline (plotly.js inline).

Candles are an input (one polars frame per market: ts, open, high, low, close on the
structure timeframe, 4h by default; core.smc.timeframes.resample_1h_to_4h makes them from
the data's 1h files); the structure is computed by core/smc with the run's strategy config.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from core.backtest_result import BacktestResult
from core.errors import DataError
from reports.backtest_tables import backtest_tables, header_lines
from reports.market_figures import equity_figure, market_figure
from reports.output_file import write_bytes_atomically
from reports.plotly_page import figure_div, html_page
from reports.smc_overlays import MarketOverlays, market_overlays
from reports.table import html_table
from reports.trade_marks import FILL_COLUMNS, fills_usable, trade_marks
from schemas.strategy import StrategyConfig


def strategy_of(result: BacktestResult) -> tuple[StrategyConfig, str]:
    """The run's strategy settings and a sentence saying where they came from: the `strategy`
    section of the run's config, or the model's defaults when the config has none."""
    section = result.run.config.get("strategy")
    if section is None:
        return StrategyConfig(), "the run's config has no strategy section: default settings"
    return StrategyConfig.model_validate(section), "the run's strategy settings"


def _anchor(symbol: str) -> str:
    return "market-" + re.sub(r"[^A-Za-z0-9_-]", "_", symbol)


def _market_section(
    result: BacktestResult,
    symbol: str,
    candles: pl.DataFrame | None,
    config: StrategyConfig,
    timeframe: str,
) -> str:
    """One market's heading and chart; a market without or with refused candles still shows
    its trades, and says why its structure is missing."""
    overlays: MarketOverlays | None = None
    note = None
    if candles is None:
        note = "no candles given for this market: structure not drawn"
    else:
        try:
            overlays = market_overlays(
                symbol,
                candles,
                config,
                timeframe=timeframe,
                start=result.run.start,
                end=result.run.end,
            )
        except DataError as error:
            note = f"candles refused ({error}): structure not drawn"
    marks = trade_marks(symbol, result.trades, result.fills)
    figure = market_figure(symbol, overlays, marks, note)
    parts = [f'<section id="{_anchor(symbol)}"><h3>{html.escape(symbol)}</h3>']
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    parts += [figure_div(figure, f"chart-{_anchor(symbol)}"), "</section>"]
    return "\n".join(parts)


def chart_markets(result: BacktestResult) -> list[str]:
    """The run's markets and any market a trade was in, sorted; markets in error left out."""
    traded = {t.symbol for t in result.trades}
    return sorted((set(result.run.markets) | traded) - (set(result.run.market_errors) - traded))


def render_backtest_html(
    result: BacktestResult,
    candles: Mapping[str, pl.DataFrame] | None = None,
    *,
    strategy: StrategyConfig | None = None,
    timeframe: str = "4h",
) -> str:
    """The whole HTML document as a string.

    `candles`: symbol -> its candles on `timeframe`; a market absent from it is drawn
    without structure. `strategy`: the settings the structure is computed with (default:
    the run's own, see strategy_of). Refuses what render_backtest_text refuses; a market's
    bad candles never stop the others (its section says what was wrong).
    """
    candles = candles or {}
    if strategy is None:
        strategy, source = strategy_of(result)
    else:
        source = "settings given to the report"
    run = result.run
    notes = [f"structure ({timeframe}) computed by core/smc with {source}"]
    if not fills_usable(result.fills):
        notes.append(
            f"the fills frame lacks {[c for c in FILL_COLUMNS if c not in result.fills.columns]}:"
            " entries and exits drawn from the trade records"
        )
    markets = chart_markets(result)
    links = " · ".join(f'<a href="#{_anchor(s)}">{html.escape(s)}</a>' for s in markets)
    body = [
        f"<h1>Backtest {html.escape(run.run_id)}</h1>",
        "<pre>" + html.escape("\n".join(header_lines(run))) + "</pre>",
        "\n".join(html_table(t) for t in backtest_tables(result)),
        "<h2>Equity and drawdown</h2>",
        figure_div(equity_figure(result), "chart-equity"),
        f"<h2>Markets ({len(markets)})</h2>",
        "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes),
        f"<p>{links}</p>",
        *(_market_section(result, s, candles.get(s), strategy, timeframe) for s in markets),
    ]
    return html_page(f"Backtest {run.run_id}", body)


def write_backtest_html(
    result: BacktestResult,
    path: Path,
    candles: Mapping[str, pl.DataFrame] | None = None,
    *,
    strategy: StrategyConfig | None = None,
    timeframe: str = "4h",
) -> Path:
    """render_backtest_html written to `path` atomically (never half a file); returns it."""
    page = render_backtest_html(result, candles, strategy=strategy, timeframe=timeframe)
    return write_bytes_atomically(path, page.encode("utf-8"))
