"""`trader backtest`: the cycle's own decision code over stored candles, with a report.

    trader backtest --data-dir ../shared/data/binance-usdm --from 2025-03-01 --to 2026-02-01
        [--config DIR] [--markets BTC,ETH] [--equity USD] [--db FILE] [--html FILE]
        [--intrabar stop_first|lower_timeframe]

Prints the report, stores the run (backtest_runs, backtest_trades, backtest_equity and
every decision's gate trace, signals, intents and fills) in the DuckDB file, and writes
the HTML report when --html is given. Runs without Prefect; the `backtest` flow (and its
deployment) runs the same steps as one flow run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from store.backtests import BACKTEST_DB
from tasks.logs import backtest_log_file, setup_logging
from tasks.settings import load_config
from trader.terminal import ProgressBar, iso_time


def _markets(text: str) -> tuple[str, ...]:
    names = tuple(m.strip().upper().removesuffix("USDT") for m in text.split(",") if m.strip())
    if not names:
        raise argparse.ArgumentTypeError("--markets needs base assets, e.g. BTC,ETH")
    return names


def cmd_backtest(args: argparse.Namespace) -> int:
    from core.backtest_result import IntrabarOrder
    from flows.backtest import run_pipeline
    from reports.backtest_text import render_backtest_text
    from tasks.backtest import BacktestRequest

    log_file = backtest_log_file()
    setup_logging(args.log_level, log_file=log_file, console_level="ERROR")
    config = load_config(args.config)
    request = BacktestRequest(
        data_dir=args.data_dir,
        config=config,
        start=args.start,
        end=args.end,
        markets=args.markets or (),
        equity=args.equity,
        intrabar=IntrabarOrder(args.intrabar),
    )
    bar = ProgressBar("backtest", "hours")
    try:
        result = run_pipeline(request, args.db, args.html, progress=bar)
    finally:
        bar.close()
    print(render_backtest_text(result))
    print(f"\nstored as run {result.run.run_id} in {args.db} (query it: trader sql --db "
          f"{args.db}); every decision logged in {log_file}", file=sys.stderr)
    if args.html is not None:
        print(f"HTML report: {args.html}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("backtest", help="backtest the strategy over stored candles, with a report")
    p.add_argument("--data-dir", type=Path, required=True, help="folder of {SYMBOL}USDT_1h files")
    p.add_argument("--from", dest="start", type=iso_time, default=None, help="first decision (UTC)")
    p.add_argument("--to", dest="end", type=iso_time, default=None, help="last decision (UTC)")
    p.add_argument("--config", type=Path, default=None, help="config folder (default: configs)")
    p.add_argument("--markets", type=_markets, default=None, help="base assets, e.g. BTC,ETH")
    p.add_argument("--equity", type=float, default=None, help="starting equity in USD")
    p.add_argument("--db", type=Path, default=BACKTEST_DB,
                   help=f"DuckDB file for results (default {BACKTEST_DB}: never the trading store)")
    p.add_argument("--html", type=Path, default=None, help="write the HTML report here")
    p.add_argument(
        "--intrabar", choices=("stop_first", "lower_timeframe"), default="stop_first",
        help="a bar reaching a stop and a take-profit: the stop fills first, or the data "
        "dir's {SYMBOL}_15m/_5m/_1m candles decide (stop first where there are none)",
    )
    p.set_defaults(func=cmd_backtest)
