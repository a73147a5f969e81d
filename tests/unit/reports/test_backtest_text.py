"""The terminal report against the hand-built run: figures, tables, n/a, width, edge cases."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import polars as pl
import pytest

from core.backtest_result import RunStatus
from core.metrics import ExitReason
from reports.backtest_text import render_backtest_text
from reports.cells import span
from tests.unit.reports.sample_run import GATES, REJECTIONS, TRADES, at, build_result, trade


def table(text: str, title: str) -> list[list[str]]:
    """The cells of the table under `=== title`, header and total included, rules left out."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"=== {title}"))
    rows = []
    for line in lines[start + 1 :]:
        if not line.startswith("|"):
            break
        if not line.startswith("|-"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def summary(text: str) -> dict[str, str]:
    return {name: value for name, value in table(text, "SUMMARY METRICS")[1:]}


def test_summary_prints_the_hand_computed_figures_of_the_five_trade_run(result):
    figures = summary(render_backtest_text(result))
    # 10 000 + 300 - 150 + 0 + 458 - 80; the deepest fall is 10 300 -> 10 150
    assert figures["Final equity"] == "10,528.00 USD"
    assert figures["Net profit"] == "+528.00 USD"
    assert figures["Net profit %"] == "+5.28%"
    assert figures["Max drawdown"] == "150.00 USD"
    assert figures["Max drawdown %"] == f"{150 / 10_300:.2%}" == "1.46%"
    assert figures["Profit factor"] == f"{758 / 230:.2f}"
    assert figures["Expectancy, net of fees (USD)"] == "+105.60 USD"
    # R over the four trades with a known risk: 2, -1, 0, -0.8 (SOL's risk is unknown)
    assert figures["Expectancy, net of fees (R)"] == "+0.05 R"
    assert figures["Win rate"] == "40.00% (2 of 5)"
    assert figures["Trades"] == "5 (4 with a known risk)"
    assert figures["Trades per month"] == f"{5 / (40 / (365 / 12)):.2f}"
    # holds 28 h, 32 h, 44 h, 40 h, 24 h: mean 33.6 h
    assert figures["Average hold"] == "1d 09:36"
    # flat from ETH's stop (Jan 6 08:00) to BTC's second entry (Jan 20 04:00)
    assert figures["Longest flat spell"] == "13d 20:00"
    assert figures["Fees paid"] == "18.00 USD"
    assert figures["Funding paid"] == "+2.50 USD"
    assert figures["Gross loss"] == "230.00 USD"


def test_summary_ratios_are_the_metrics_rounded_to_two_decimals(result):
    figures = summary(render_backtest_text(result))
    m = result.metrics
    assert m.sharpe is not None and m.sortino is not None and m.calmar is not None
    assert figures["Sharpe (daily, annualised)"] == f"{m.sharpe:.2f}"
    assert figures["Sortino (daily, annualised)"] == f"{m.sortino:.2f}"
    assert figures["Calmar"] == f"{m.calmar:.2f}"
    assert figures["CAGR"] == f"{m.cagr:+.2%}"
    assert figures["SQN"] == f"{m.sqn:.2f}"


def test_header_names_the_run_its_config_code_data_markets_and_fill_model(result):
    text = render_backtest_text(result)
    head = text.split("=== SUMMARY")[0]
    for expected in (
        "bt-test-0001",
        "config hash 0123456789abcdef",
        "code version 0.1.0+test",
        "2025-01-01 00:00 -> 2025-02-10 00:00 UTC (40.0 days)",
        "markets (4): BTCUSDT, ETHUSDT, SOLUSDT, XRPUSDT",
        *result.run.fill_model.lines(),
    ):
        assert expected in head


def test_per_market_lists_every_market_of_the_run_with_or_without_trades(result):
    rows = table(render_backtest_text(result), "PER MARKET")
    assert rows[0] == ["Market", "Trades", "Wins", "Win %", "Net USD", "Exp R"]
    assert rows[1:] == [
        ["BTCUSDT", "2", "1", "50.00%", "+300.00", "+1.00"],
        ["ETHUSDT", "2", "0", "0.00%", "-230.00", "-0.90"],
        ["SOLUSDT", "1", "1", "100.00%", "+458.00", "n/a"],
        ["XRPUSDT", "0", "0", "n/a", "+0.00", "n/a"],
        ["TOTAL", "5", "2", "40.00%", "+528.00", "+0.05"],
    ]


def test_per_exit_reason_always_lists_stop_tp1_to_tp3_kill_switch_and_end_of_data(result):
    rows = table(render_backtest_text(result), "PER EXIT REASON")
    assert [r[0] for r in rows[1:]] == [
        "stop",
        "tp1",
        "tp2",
        "tp3",
        "kill_switch",
        "end_of_data",
        "TOTAL",
    ]
    by_reason = {r[0]: r[1:] for r in rows[1:]}
    assert by_reason["tp1"] == ["2", "1", "50.00%", "+458.00", "+0.00", "40.0%"]
    assert by_reason["tp3"] == ["0", "0", "n/a", "+0.00", "n/a", "0.0%"]
    assert by_reason["TOTAL"][-1] == "100.0%"


def test_an_exit_reason_outside_the_listed_six_follows_them():
    flattened = trade(
        "p6", "BTCUSDT", "long", at(7, 0, 2), at(8, 0, 2), (100, 99), -10.0, 50.0, "flatten"
    )
    rows = table(render_backtest_text(build_result((*TRADES, flattened))), "PER EXIT REASON")
    assert [r[0] for r in rows[1:]][-2:] == [str(ExitReason.FLATTEN), "TOTAL"]


def test_per_month_has_a_row_for_every_month_of_the_run(result):
    rows = table(render_backtest_text(result), "PER MONTH")
    assert rows[1:] == [
        ["2025-01", "3", "1", "33.33%", "+150.00", "+0.33"],
        ["2025-02", "2", "1", "50.00%", "+378.00", "-0.80"],
        ["TOTAL", "5", "2", "40.00%", "+528.00", "+0.05"],
    ]


def test_funnel_keeps_the_gate_order_and_counts_the_decisions_left(result):
    text = render_backtest_text(result)
    assert "=== GATE FUNNEL (205 decisions) ===" in text
    rows = table(text, "GATE FUNNEL")
    assert [r[0] for r in rows[1:-1]] == list(GATES)
    assert [int(r[1]) for r in rows[1:-1]] == list(REJECTIONS)
    assert rows[3] == ["structure", "100", "48.8%", "55"]
    assert rows[-1] == ["TOTAL", "200", "97.6%", "5"]


def test_funnel_without_a_decision_count_prints_na_shares():
    base = build_result()
    no_decisions = dataclasses.replace(base, decisions=base.decisions.clear())
    rows = table(render_backtest_text(no_decisions), "GATE FUNNEL")
    assert rows[1] == ["data", "10", "n/a", "n/a"]


def test_a_funnel_frame_without_its_columns_is_refused_naming_them():
    bad = dataclasses.replace(build_result(), funnel=pl.DataFrame({"gate": ["data"]}))
    with pytest.raises(ValueError, match=r"funnel lacks column\(s\) \['rejections'\]"):
        render_backtest_text(bad)


def test_a_run_without_trades_prints_na_for_every_undefined_figure():
    text = render_backtest_text(build_result(()))
    figures = summary(text)
    for name in (
        "Sharpe (daily, annualised)",
        "Sortino (daily, annualised)",
        "Calmar",
        "Profit factor",
        "Expectancy, net of fees (R)",
        "Expectancy, net of fees (USD)",
        "Win rate",
        "SQN",
        "Average hold",
    ):
        assert figures[name] == "n/a", name
    assert figures["Net profit"] == "+0.00 USD"
    assert figures["Longest flat spell"] == "40d 00:00"
    assert figures["Trades"] == "0 (0 with a known risk)"
    assert table(text, "PER EXIT REASON")[-1] == ["TOTAL", "0", "0", "n/a", "+0.00", "n/a", "n/a"]
    assert not re.search(r"\b(None|nan|NaN|inf)\b", text)


def test_a_run_without_funnel_rows_says_so():
    text = render_backtest_text(build_result(funnel=False))
    assert "=== GATE FUNNEL (n/a decisions) ===\nno decisions recorded" in text


def test_one_market_gives_one_market_row_and_its_total():
    btc = tuple(t for t in TRADES if t.symbol == "BTCUSDT")
    rows = table(render_backtest_text(build_result(btc, markets=("BTCUSDT",))), "PER MARKET")
    assert rows[1:] == [
        ["BTCUSDT", "2", "1", "50.00%", "+300.00", "+1.00"],
        ["TOTAL", "2", "1", "50.00%", "+300.00", "+1.00"],
    ]


def test_report_stays_within_100_columns_with_many_markets_and_long_errors():
    markets = tuple(f"COIN{i:02d}USDT" for i in range(15))
    errors = {"DOGEUSDT": "no 1d candles file DOGEUSDT_1d.parquet: " + "add it " * 30}
    text = render_backtest_text(build_result(markets=markets, errors=errors))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "DOGEUSDT (error)" in text
    assert "market errors (1), left out of the run:" in text


def test_a_failed_run_says_its_figures_are_partial():
    text = render_backtest_text(build_result(status=RunStatus.FAILED))
    assert "WARNING: this run is failed, not complete" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "n/a"),
        (timedelta(0), "0d 00:00"),
        (timedelta(hours=33, minutes=36), "1d 09:36"),
        (timedelta(days=12, seconds=59), "12d 00:01"),
    ],
)
def test_durations_print_as_days_and_hours(value, expected):
    assert span(value) == expected


def test_system_state_table_counts_hours_spells_and_says_a_run_ended_degraded(result):
    start = result.equity["ts"][0]
    states = ["NORMAL"] * 3 + ["DEGRADED"] + ["NORMAL"] + ["DEGRADED"] * 5
    equity = pl.DataFrame(
        {"ts": [start + timedelta(hours=h) for h in range(10)], "system_state": states},
        schema_overrides={"ts": result.equity.schema["ts"]},
    )
    text = render_backtest_text(dataclasses.replace(result, equity=equity))
    section = text.split("=== SYSTEM STATE")[1].split("===")[1]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in section.splitlines() if line.startswith("| ") and "State" not in line}
    first = start.strftime("%Y-%m-%d %H:%M")
    fifth = (start + timedelta(hours=5)).strftime("%Y-%m-%d %H:%M")
    assert rows["NORMAL"][:3] == ["4", "40.0%", "2"]
    assert rows["NORMAL"][3].endswith(f"from {first}")
    assert rows["DEGRADED"][:3] == ["6", "60.0%", "2"]
    assert rows["DEGRADED"][3] == f"{span(timedelta(hours=5))} from {fifth}"
    assert rows["DEGRADED"][4] == f"{fifth} -> end"
