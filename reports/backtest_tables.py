"""The backtest report's header and tables, built once and written as text, markdown or HTML.

Every figure comes from the run's BacktestMetrics (core/metrics.py); this module only
picks, orders and formats them. None is printed n/a.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from datetime import timedelta

import polars as pl

from core.backtest_result import BacktestResult, BacktestRun, RunStatus
from core.metrics import BacktestMetrics, BreakdownRow, ExitReason
from reports.cells import NA, moment, number, pct, r_multiple, span, usd
from reports.table import TEXT_WIDTH, Align, Column, Table

# The exit reasons every report lists, even with no trade; others only when they occur.
LISTED_EXIT_REASONS = (
    ExitReason.STOP,
    ExitReason.TP1,
    ExitReason.TP2,
    ExitReason.TP3,
    ExitReason.KILL_SWITCH,
    ExitReason.END_OF_DATA,
)
FUNNEL_COLUMNS = ("gate", "rejections")
BREAKDOWN_COLUMNS = (
    Column("Trades"),
    Column("Wins"),
    Column("Win %"),
    Column("Net USD"),
    Column("Exp R"),
)


def header_lines(run: BacktestRun, width: int = TEXT_WIDTH) -> list[str]:
    """Run id, status, config hash, code version, data range, markets, fill model, errors."""
    days = (run.end - run.start).total_seconds() / 86_400
    duration = NA if run.duration_s is None else f"{run.duration_s:.1f} s"
    lines = [
        f"BACKTEST {run.run_id}  status {run.status}  ran in {duration}",
        f"config hash {run.config_hash}   code version {run.code_version}",
        f"data {moment(run.start)} -> {moment(run.end)} UTC ({days:.1f} days) from {run.data_dir}",
        f"initial equity {usd(run.initial_equity)} USD",
    ]
    markets = f"markets ({len(run.markets)}): " + (", ".join(run.markets) or "none")
    lines += textwrap.wrap(markets, width, subsequent_indent="  ")
    lines.append("fill model:")
    lines += [f"  {line}" for line in run.fill_model.lines()]
    if run.market_errors:
        lines.append(f"market errors ({len(run.market_errors)}), left out of the run:")
        for symbol, error in sorted(run.market_errors.items()):
            lines += textwrap.wrap(
                f"{symbol}: {error}", width, initial_indent="  ", subsequent_indent="    "
            )
    if run.status is not RunStatus.COMPLETE:
        lines.append(
            f"WARNING: this run is {run.status}, not complete: the figures cover only what ran"
        )
    return lines


def wins(metrics: BacktestMetrics) -> int:
    """Winning trades: every trade belongs to exactly one market row."""
    return sum(row.wins for row in metrics.by_market)


def summary_table(metrics: BacktestMetrics) -> Table:
    """The freqtrade-style summary: one figure per row."""
    m = metrics
    win_rate = pct(m.win_rate)
    if m.win_rate is not None:
        win_rate += f" ({wins(m)} of {m.trades})"
    rows = (
        ("Period", f"{moment(m.start)} -> {moment(m.end)} UTC"),
        ("Initial equity", f"{usd(m.initial_equity)} USD"),
        ("Final equity", f"{usd(m.final_equity)} USD"),
        ("Net profit", f"{usd(m.net_profit_usd, signed=True)} USD"),
        ("Net profit %", pct(m.net_profit_pct, signed=True)),
        ("CAGR", pct(m.cagr, signed=True)),
        ("Max drawdown", f"{usd(m.max_drawdown_usd)} USD"),
        ("Max drawdown %", pct(m.max_drawdown_pct)),
        ("Sharpe (daily, annualised)", number(m.sharpe)),
        ("Sortino (daily, annualised)", number(m.sortino)),
        ("Calmar", number(m.calmar)),
        ("Profit factor", number(m.profit_factor)),
        ("Expectancy, net of fees (R)", r_multiple(m.expectancy_r)),
        ("Expectancy, net of fees (USD)", _usd_or_na(m.expectancy_usd, signed=True)),
        ("Win rate", win_rate),
        ("SQN", number(m.sqn)),
        ("Trades", f"{m.trades} ({m.r_trades} with a known risk)"),
        ("Trades per month", number(m.trades_per_month)),
        ("Average hold", span(m.average_hold)),
        ("Longest flat spell", span(m.longest_flat)),
        ("Gross profit", f"{usd(m.gross_profit)} USD"),
        ("Gross loss", f"{usd(m.gross_loss)} USD"),
        ("Fees paid", f"{usd(m.fees_paid)} USD"),
        ("Funding paid", f"{usd(m.funding_paid, signed=True)} USD"),
    )
    return Table(
        "SUMMARY METRICS", (Column("Metric", Align.LEFT), Column("Value", Align.LEFT)), rows
    )


def _usd_or_na(value: float | None, *, signed: bool = False) -> str:
    return NA if value is None else f"{usd(value, signed=signed)} USD"


def _breakdown_cells(row: BreakdownRow) -> tuple[str, ...]:
    return (
        str(row.trades),
        str(row.wins),
        pct(row.win_rate),
        usd(row.net_pnl, signed=True),
        number(row.expectancy_r, signed=True),
    )


def _total(metrics: BacktestMetrics, first: str = "TOTAL") -> tuple[str, ...]:
    net = sum(row.net_pnl for row in metrics.by_market)
    return (
        first,
        str(metrics.trades),
        str(wins(metrics)),
        pct(metrics.win_rate),
        usd(net, signed=True),
        number(metrics.expectancy_r, signed=True),
    )


def _no_trades(key: str) -> BreakdownRow:
    return BreakdownRow(key=key, trades=0, wins=0, win_rate=None, net_pnl=0.0, expectancy_r=None)


def _rows(keys: Iterable[str], given: tuple[BreakdownRow, ...]) -> list[BreakdownRow]:
    """The given rows in key order, a row of zeros for a key without trades."""
    by_key = {row.key: row for row in given}
    return [by_key.get(key) or _no_trades(key) for key in keys]


def market_table(result: BacktestResult) -> Table:
    """One row per market of the run (with or without trades), a market in error marked."""
    run, m = result.run, result.metrics
    keys = sorted({*run.markets, *run.market_errors, *(row.key for row in m.by_market)})
    rows = tuple(
        (row.key + (" (error)" if row.key in run.market_errors else ""), *_breakdown_cells(row))
        for row in _rows(keys, m.by_market)
    )
    return Table(
        "PER MARKET",
        (Column("Market", Align.LEFT), *BREAKDOWN_COLUMNS),
        rows,
        _total(m),
        empty="no markets",
    )


def exit_reason_table(metrics: BacktestMetrics) -> Table:
    """Stop, TP1-TP3, kill switch and end of data always; other reasons when they occur."""
    listed = [str(x) for x in LISTED_EXIT_REASONS]
    keys = listed + [row.key for row in metrics.by_exit_reason if row.key not in listed]
    rows = []
    for row in _rows(keys, metrics.by_exit_reason):
        share = row.trades / metrics.trades if metrics.trades else None
        rows.append((row.key, *_breakdown_cells(row), pct(share, digits=1)))
    total = (*_total(metrics), pct(1.0 if metrics.trades else None, digits=1))
    return Table(
        "PER EXIT REASON",
        (Column("Exit reason", Align.LEFT), *BREAKDOWN_COLUMNS, Column("% of trades")),
        tuple(rows),
        total,
    )


def month_table(metrics: BacktestMetrics) -> Table:
    """Every month of the run (the month a trade's exit fell in)."""
    rows = tuple((row.key, *_breakdown_cells(row)) for row in metrics.by_month)
    return Table(
        "PER MONTH (of the exit)",
        (Column("Month", Align.LEFT), *BREAKDOWN_COLUMNS),
        rows,
        _total(metrics) if rows else None,
        empty="no months",
    )


def _funnel_cells(gate: str, rejected: int, stopped: int, decisions: int | None) -> tuple[str, ...]:
    """gate, rejected, its share of the decisions, decisions left after the `stopped` so far."""
    share = rejected / decisions if decisions else None
    left = NA if decisions is None else str(decisions - stopped)
    return (gate, str(rejected), pct(share, digits=1), left)


def funnel_table(result: BacktestResult) -> Table:
    """Rejections per gate in the funnel's (gate) order; with the decision count (the rows of
    the decisions frame) also the share of decisions each gate stopped and how many were left.

    Refuses a funnel frame without the gate and rejections columns.
    """
    funnel = result.funnel
    missing = [c for c in FUNNEL_COLUMNS if c not in funnel.columns]
    if missing:
        raise ValueError(
            f"backtest funnel lacks column(s) {missing}: give one row per gate with "
            f"{list(FUNNEL_COLUMNS)} in gate order (core/backtest_result.py)"
        )
    decisions = result.decisions.height or None
    rows, stopped = [], 0
    for gate, rejected in funnel.select(FUNNEL_COLUMNS).iter_rows():
        stopped += int(rejected)
        rows.append(_funnel_cells(str(gate), int(rejected), stopped, decisions))
    total = _funnel_cells("TOTAL", stopped, stopped, decisions) if rows else None
    return Table(
        f"GATE FUNNEL ({NA if decisions is None else decisions} decisions)",
        (Column("Gate", Align.LEFT), Column("Rejected"), Column("% of decisions"), Column("Left")),
        tuple(rows),
        total,
        empty="no decisions recorded",
    )


def state_spells(equity: pl.DataFrame) -> pl.DataFrame:
    """Consecutive hours in one system state: state, start, end (the last hour in it), hours."""
    if equity.is_empty() or "system_state" not in equity.columns:
        return pl.DataFrame(
            schema={"state": pl.String, "start": pl.Datetime("us", "UTC"),
                    "end": pl.Datetime("us", "UTC"), "hours": pl.UInt32}
        )
    return (
        equity.sort("ts")
        .with_columns(pl.col("system_state").rle_id().alias("spell"))
        .group_by("spell", maintain_order=True)
        .agg(
            pl.col("system_state").first().alias("state"),
            pl.col("ts").first().alias("start"),
            pl.col("ts").last().alias("end"),
            pl.len().alias("hours"),
        )
        .drop("spell")
    )


def state_table(result: BacktestResult) -> Table:
    """Hours per system state, with its longest and its last spell: a run that ends DEGRADED
    opened nothing after that spell began, which the profit figures alone do not say."""
    spells = state_spells(result.equity)
    total = int(spells["hours"].sum()) if spells.height else 0
    last_hour = spells["end"].max() if spells.height else None
    rows = []
    for state in spells["state"].unique(maintain_order=True).to_list():
        mine = spells.filter(pl.col("state") == state)
        longest = mine.sort("hours", descending=True, maintain_order=True).row(0, named=True)
        last = mine.row(mine.height - 1, named=True)
        last_end = "end" if last["end"] == last_hour else moment(last["end"])
        rows.append((
            str(state),
            str(int(mine["hours"].sum())),
            pct(int(mine["hours"].sum()) / total if total else None, digits=1),
            str(mine.height),
            f"{span(timedelta(hours=int(longest['hours'])))} from {moment(longest['start'])}",
            f"{moment(last['start'])} -> {last_end}",
        ))
    return Table(
        "SYSTEM STATE (hourly marks; DEGRADED opens nothing new, HALTED runs the kill switch)",
        (Column("State", Align.LEFT), Column("Hours"), Column("% of hours"), Column("Spells"),
         Column("Longest spell", Align.LEFT), Column("Last spell", Align.LEFT)),
        tuple(rows),
        empty="no hourly marks",
    )


def backtest_tables(result: BacktestResult) -> list[Table]:
    """Summary, system state, per market, per exit reason, per month and the gate funnel,
    in report order."""
    m = result.metrics
    return [
        summary_table(m),
        state_table(result),
        market_table(result),
        exit_reason_table(m),
        month_table(m),
        funnel_table(result),
    ]
