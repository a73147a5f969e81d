"""The backtest HTML: one offline page, the expected plotly traces per market, n/a handling,
markets without or with bad candles, and the SMC structure drawn from core/smc."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import polars as pl
import pytest

from core.smc.features import compute_features
from reports.backtest_html import render_backtest_html, write_backtest_html
from reports.market_figures import (
    BOS,
    CANDLES,
    CHOCH,
    DRAWDOWN,
    ENTRIES,
    EQUITY,
    EXITS,
    OTE_ZONE,
    STRUCTURE_TRACES,
    SWING_HIGHS,
    TRADE_TRACES,
    TRADES,
)
from schemas.strategy import StrategyConfig
from tests.unit.reports.plotly_html import array, plots, scripts
from tests.unit.reports.sample_run import END, START, build_result, synthetic_candles
from tests.unit.reports.sample_run import TRADES as SAMPLE_TRADES

MARKET_TRACES = [*STRUCTURE_TRACES, *TRADE_TRACES]


@pytest.fixture(scope="module")
def page() -> str:
    candles = {"BTCUSDT": synthetic_candles(100.0), "ETHUSDT": synthetic_candles(50.0, seed=2)}
    return render_backtest_html(build_result(), candles)


def names(traces: list[dict]) -> list[str]:
    return [t["name"] for t in traces]


def by_name(traces: list[dict], name: str) -> dict:
    return next(t for t in traces if t["name"] == name)


def test_page_is_self_contained_with_plotly_js_inline_once(page):
    found = scripts(page)
    assert not [attrs for attrs, _ in found if attrs.get("src")]  # nothing fetched: offline
    library = [text for _, text in found if "plotly.js v" in text[:2000]]
    assert len(library) == 1
    assert not re.search(r"<(link|img|iframe)[^>]+(src|href)=\"https?://", page)


def test_page_has_the_equity_chart_and_one_chart_per_market_of_the_run(page):
    charts = plots(page)
    assert sorted(charts) == [
        "chart-equity",
        "chart-market-BTCUSDT",
        "chart-market-ETHUSDT",
        "chart-market-SOLUSDT",
        "chart-market-XRPUSDT",
    ]
    assert names(charts["chart-equity"][0]) == [EQUITY, DRAWDOWN]
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"):
        assert f"<h3>{symbol}</h3>" in page


def test_a_market_with_candles_has_candles_structure_and_trades_traces(page):
    traces, layout = plots(page)["chart-market-BTCUSDT"]
    assert names(traces) == MARKET_TRACES
    candles = by_name(traces, CANDLES)
    x = array(candles["x"])
    assert len(x) == 240  # every 4h candle of the run's 40 days
    assert x[0] == START.timestamp() * 1000 and x[-1] == END.timestamp() * 1000 - 4 * 3_600_000
    assert layout["xaxis"]["type"] == "date"
    assert "BTCUSDT (4h): 2 trades" in layout["title"]["text"]


def test_markets_without_candles_show_only_their_trades_and_say_why(page):
    traces, layout = plots(page)["chart-market-SOLUSDT"]
    assert names(traces) == list(TRADE_TRACES)
    assert "no candles given for this market" in layout["title"]["text"]
    entries = by_name(traces, ENTRIES)
    assert array(entries["y"]).tolist() == [20.0]  # SOL's entry fill at 20


def test_entries_and_exits_come_from_the_fills_with_the_trade_outcome(page):
    traces, _ = plots(page)["chart-market-BTCUSDT"]
    entries, exits = by_name(traces, ENTRIES), by_name(traces, EXITS)
    assert array(entries["y"]).tolist() == [100.0, 101.0]  # p1, p3
    # p1 left in two fills (TP1 partial at 102, TP2 at 104), p3 in one at 101
    assert array(exits["y"]).tolist() == [102.0, 104.0, 101.0]
    assert "p1 long exit 0.5 @ 102 (fill)" in exits["hovertext"][0]
    assert "trade closed by tp2: +300.00 USD, +2.00 R" in exits["hovertext"][0]
    lines = array(by_name(traces, TRADES)["y"])
    assert lines[:2].tolist() == [100.0, 103.0]  # entry to the volume-weighted exit
    assert np.isnan(lines[2])  # one segment per trade


def test_structure_traces_are_the_engines_features_in_the_run_window(page):
    candles = synthetic_candles(100.0)
    features = compute_features(candles.with_columns(volume=pl.lit(0.0)), "4h", StrategyConfig())
    traces, _ = plots(page)["chart-market-BTCUSDT"]
    breaks = features.filter(pl.col("bos") != 0)
    assert breaks.height > 0, "the synthetic candles must break structure"
    bos_levels = array(by_name(traces, BOS)["y"])
    assert sorted(set(bos_levels[~np.isnan(bos_levels)])) == sorted(breaks["break_level"])
    chochs = features.filter(pl.col("choch") != 0).height
    assert np.isnan(array(by_name(traces, CHOCH)["y"])).sum() == chochs  # one segment each
    pivots = set(features["swing_high"].drop_nulls())
    assert set(array(by_name(traces, SWING_HIGHS)["y"])) == pivots
    zone = array(by_name(traces, OTE_ZONE)["y"])
    bounds = set(features["ote_top"].drop_nulls()) | set(features["ote_bottom"].drop_nulls())
    assert set(zone[~np.isnan(zone)]) == bounds


def test_bad_candles_of_one_market_never_stop_the_others():
    bad = synthetic_candles(50.0).with_columns(
        close=pl.when(pl.int_range(pl.len()) == 5).then(float("nan")).otherwise(pl.col("close"))
    )
    page = render_backtest_html(
        build_result(), {"BTCUSDT": synthetic_candles(100.0), "ETHUSDT": bad}
    )
    charts = plots(page)
    assert names(charts["chart-market-BTCUSDT"][0]) == MARKET_TRACES
    assert names(charts["chart-market-ETHUSDT"][0]) == list(TRADE_TRACES)
    assert "ETHUSDT: 4h candles: unusable candles (null, NaN or non-positive price)" in page


def test_candles_without_their_price_columns_are_refused_by_name():
    page = render_backtest_html(build_result(), {"BTCUSDT": synthetic_candles(100.0).drop("low")})
    assert "BTCUSDT: candles lack column(s) [&#x27;low&#x27;]" in page


def test_a_run_without_trades_prints_na_and_draws_empty_trade_traces():
    page = render_backtest_html(build_result(()), {"BTCUSDT": synthetic_candles(100.0)})
    tables = page[page.index("<table>") : page.index("<h2>Equity")]
    assert '<td class="left">Profit factor</td><td class="left">n/a</td>' in tables
    assert not re.search(r">\s*(None|nan|NaN)\s*<", tables)
    traces, _ = plots(page)["chart-market-BTCUSDT"]
    assert names(traces) == MARKET_TRACES
    assert len(array(by_name(traces, ENTRIES)["x"])) == 0


def test_one_market_run_has_one_market_chart():
    btc = tuple(t for t in SAMPLE_TRADES if t.symbol == "BTCUSDT")
    page = render_backtest_html(
        build_result(btc, markets=("BTCUSDT",)), {"BTCUSDT": synthetic_candles(100.0)}
    )
    assert sorted(plots(page)) == ["chart-equity", "chart-market-BTCUSDT"]


def test_a_market_in_error_has_no_chart_but_is_named_in_the_header():
    result = build_result(errors={"DOGEUSDT": "no 1d file"})
    page = render_backtest_html(result)
    assert "chart-market-DOGEUSDT" not in plots(page)
    assert "DOGEUSDT: no 1d file" in page


def test_the_runs_strategy_section_sets_the_structure_and_the_page_says_so():
    result = build_result()
    wide = dataclasses.replace(result.run, config={"strategy": {"swing_length": 10}})
    page = render_backtest_html(
        dataclasses.replace(result, run=wide), {"BTCUSDT": synthetic_candles(100.0)}
    )
    assert "computed by core/smc with the run&#x27;s strategy settings" in page
    swings = array(by_name(plots(page)["chart-market-BTCUSDT"][0], SWING_HIGHS)["y"])
    features = compute_features(
        synthetic_candles(100.0).with_columns(volume=pl.lit(0.0)),
        "4h",
        StrategyConfig(swing_length=10),
    )
    assert set(swings) == set(features["swing_high"].drop_nulls())


def test_fills_without_their_columns_fall_back_to_the_trade_records_and_say_so():
    result = dataclasses.replace(build_result(), fills=pl.DataFrame())
    page = render_backtest_html(result, {"BTCUSDT": synthetic_candles(100.0)})
    assert "entries and exits drawn from the trade records" in page
    exits = by_name(plots(page)["chart-market-BTCUSDT"][0], EXITS)
    assert array(exits["y"]).tolist() == [103.0, 101.0]


def test_write_leaves_the_whole_file_and_no_partial(tmp_path):
    path = write_backtest_html(build_result(), tmp_path / "out" / "report.html")
    assert path.read_text(encoding="utf-8").rstrip().endswith("</html>")
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
