"""`trader sweep`: many backtests on a Dask cluster, walk-forward, with the overfitting guards.

    trader sweep configs/sweeps/relaxations.yaml --data-dir ../shared/data/binance-usdm
        [--from 2025-03-01 --to 2026-02-01] [--workers N | --dask-address tcp://HOST:8786]
        [--search grid|random|optuna] [--config DIR] [--db FILE] [--html FILE] [--batch N]

The whole space is proven before anything runs: an unknown parameter, a value the config
model refuses or an inverted safety relation in any variant exits 2 with the parameter
named. Results go to the DuckDB file (default data/sweeps.duckdb, apart from the trading
store: a sweep holds its file for its whole run); a rerun skips every stored result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import ConfigError
from trader.terminal import ProgressBar, iso_time


def cmd_sweep(args: argparse.Namespace) -> int:
    from flows.sweep import prove, run_sweep

    if not args.data_dir.is_dir():
        raise ConfigError(f"--data-dir {args.data_dir}: not a folder of candle files")
    # refuse bad input here, before Prefect or a cluster starts, on one line
    try:
        plan, _base, variants, folds = prove(args.file, args.config, args.search, args.start,
                                             args.end)
    except ConfigError as exc:
        raise ConfigError(" ".join(str(exc).split())) from None
    print(
        f"sweep: {len(variants)} variants{' + optuna trials' if plan.optuna else ''}, "
        f"{len(folds)} fold(s), {plan.search}",
        file=sys.stderr,
    )
    bar = ProgressBar("sweep", "backtests")
    try:
        outcome = run_sweep(
            progress=bar,
            space_file=str(args.file),
            data_dir=str(args.data_dir),
            config_dir=str(args.config or "configs"),
            search=args.search,
            start=args.start.isoformat() if args.start else None,
            end=args.end.isoformat() if args.end else None,
            workers=args.workers,
            dask_address=args.dask_address,
            db=str(args.db),
            html=str(args.html) if args.html else None,
            batch=args.batch,
        )
    finally:
        bar.close()
    print(outcome.text)
    print(
        f"\nsweep {outcome.sweep_id}: {outcome.evaluated} backtests run, {outcome.reused} "
        f"reused, stored in {args.db}",
        file=sys.stderr,
    )
    if args.html is not None:
        print(f"HTML report: {args.html}", file=sys.stderr)
    return 1 if outcome.errors else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: give a whole number >= 1")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sweep", help="parameter sweep with walk-forward on a Dask cluster")
    p.add_argument("file", type=Path, help="sweep file, e.g. configs/sweeps/relaxations.yaml")
    p.add_argument("--data-dir", type=Path, required=True, help="folder of {SYMBOL}USDT_1h files")
    p.add_argument("--from", dest="start", type=iso_time, default=None,
                   help="first decision (UTC); default: the file's window.from")
    p.add_argument("--to", dest="end", type=iso_time, default=None,
                   help="end of the range (UTC, excluded); default: the file's window.to")
    p.add_argument("--workers", type=_positive, default=None,
                   help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--dask-address", default=None,
                   help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--search", choices=["grid", "random", "optuna"], default=None,
                   help="override the file's search")
    p.add_argument("--config", type=Path, default=None, help="base config folder (configs)")
    p.add_argument("--db", type=Path, default=Path("data/sweeps.duckdb"), help="DuckDB file")
    p.add_argument("--html", type=Path, default=None, help="write the HTML report here")
    p.add_argument("--batch", type=_positive, default=None,
                   help="backtests per task (default: a few tasks per worker, at most 40)")
    p.set_defaults(func=cmd_sweep)
