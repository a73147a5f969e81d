"""Reports of backtests and sweeps: terminal text, markdown for Prefect artifacts, HTML, PNG.

Reads the records of core/backtest_result.py, core/metrics.py and core/overfit.py and
never computes a figure those modules define; it only formats them (None = n/a).
Imports core, schemas, polars, numpy, plotly and matplotlib; never prefect, ccxt or duckdb.

- backtest_text.render_backtest_text(result): the terminal report;
- backtest_html.render_backtest_html(result, candles) / write_backtest_html: offline HTML;
- charts.equity_drawdown_png(result) / write_equity_drawdown_png: the PNG chart;
- sweep_records.SweepReport / VariantResult / SampleFigures: what the sweep fills in;
- sweep_text.render_sweep_text(report), sweep_html.render_sweep_html(report);
- markdown.backtest_markdown(result), markdown.sweep_markdown(report): Prefect artifacts.
"""
