"""`trader`: the operator's command line.

Every command that can fail on input exits non-zero with one line naming the
input and the fix; tracebacks are for bugs, not for bad configuration.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from core.errors import ConfigError, TraderError
from tasks.logs import setup_logging
from tasks.settings import config_as_yaml, load_config

log = logging.getLogger("smc_trader.cli")


def _add_cycle_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="config folder (default: configs)")
    p.add_argument("--venue", choices=["sim", "replay", "kraken"], default=None)
    p.add_argument("--data-dir", default=None, help="replay: folder of *USDT_1h.parquet")
    p.add_argument("--db", default=None, help="DuckDB file (default: data/trading.duckdb)")
    p.add_argument("--api-url", default=None, help="kraken: base URL (a local simulator)")
    p.add_argument("--sandbox", action="store_true", default=None, help="kraken: demo exchange")
    p.add_argument(
        "--live",
        action="store_true",
        default=False,
        help="kraken: allow REAL orders on the live exchange (credentials required)",
    )
    p.add_argument(
        "--paper",
        action="store_true",
        default=False,
        help="kraken: real market data, simulated fills (no orders reach Kraken)",
    )


def _cycle_kwargs(args: argparse.Namespace) -> dict[str, object]:
    return {
        "config_dir": str(args.config or Path("configs")),
        "venue": args.venue,
        "data_dir": args.data_dir,
        "db": args.db,
        "api_url": args.api_url,
        "sandbox": args.sandbox,
        "live": args.live,
        "paper": args.paper,
    }


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(config_as_yaml(config), end="")
    print(f"# configuration in {args.config or 'configs'} is valid", file=sys.stderr)
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    from trader.reference import parameter_table

    text = parameter_table()
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text, end="")
    return 0


def _validate_first(args: argparse.Namespace) -> None:
    """Refuse bad configuration before Prefect starts anything."""
    from schemas.config import VenueKind
    from tasks.settings import cycle_overrides

    config = load_config(
        args.config,
        cycle_overrides(args.venue, args.data_dir, args.db, args.api_url, args.sandbox),
    )
    live = getattr(args, "live", False)
    if live and getattr(args, "paper", False):
        raise ConfigError("--live and --paper contradict each other: choose one")
    if config.venue.kind is VenueKind.KRAKEN and getattr(args, "paper", False):
        log.warning("kraken venue in paper mode: real market data, simulated fills")
    elif config.venue.kind is VenueKind.KRAKEN:
        from tasks.settings import load_secrets
        from venues.kraken_orders import require_explicit_mode

        mode = require_explicit_mode(
            live=live,
            sandbox=config.venue.sandbox,
            api_url=config.venue.api_url,
            has_credentials=load_secrets().has_kraken,
        )
        log.warning("kraken venue in %s mode%s", mode, ": REAL MONEY" if mode == "live" else "")
    elif live:
        raise ConfigError(f"--live applies to --venue kraken only, not {config.venue.kind}")
    if config.venue.kind is VenueKind.KRAKEN:
        from trader.preflight import require_reachable

        require_reachable(config.venue)  # one line instead of a flow run's tracebacks


def cmd_cycle(args: argparse.Namespace) -> int:
    _validate_first(args)
    from flows.cycle import trading_cycle

    failed = []
    for n in range(1, args.cycles + 1):
        state = trading_cycle(**_cycle_kwargs(args), return_state=True)
        if not state.is_completed():
            failed.append(n)
            log.error("cycle %d of %d ended %s: %s", n, args.cycles, state.name, state.message)
    if failed:
        # every cycle ran; the failed ones are named so the operator can look them up
        print(
            f"trader: {len(failed)} of {args.cycles} cycles failed (numbers {failed}); "
            "see logs/trader.log or the flow runs in the Prefect UI",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    _validate_first(args)
    from trader.prefect_server import local_server, require_server

    # SIGTERM (systemd, docker, kill) and SIGHUP (a closed terminal) unwind like Ctrl-C, so
    # a server we started stops too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    if not args.with_server:
        require_server(args.server_wait)  # refuses, naming --with-server and PREFECT_API_URL
        return _serve(args)
    with local_server(port=args.server_port) as api_url:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        # Settings may have been read already: point this process at the server explicitly.
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    from prefect import serve

    from flows.deployments import service_deployments
    from trader.alerts_setup import ensure_alerts
    from trader.service_recovery import deployment_names, recover_unfinished_runs

    config = load_config(args.config)
    interval = args.interval or config.cycle.interval_seconds
    ensure_alerts(config.alerts)
    # A run the last service left "Running" holds the cycle's slot: every cycle would be
    # CANCELLED (trader/service_recovery.py).
    recover_unfinished_runs(deployment_names(pool=False))
    log.info("serving trading-cycle every %ss (never two runs at once)", interval)
    parameters = {k: v for k, v in _cycle_kwargs(args).items() if v is not None}
    # limit=1: one flow run at a time in this service, so the DuckDB file has one writer.
    try:
        serve(*service_deployments(interval, parameters), limit=1)
    except KeyboardInterrupt:
        log.info("stopped by Ctrl-C")
        return 130
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    _validate_first(args)
    from flows.backfill import backfill

    kwargs = {k: v for k, v in _cycle_kwargs(args).items() if k not in ("live", "paper")}
    backfill(days=args.days, progress=not args.no_progress, **kwargs)
    return 0


Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trader", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate and print the effective configuration")
    p.add_argument("--config", type=Path, default=None)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("config-reference", help="print the parameter table generated from models")
    p.add_argument("-o", "--output", default=None)
    p.set_defaults(func=cmd_config_reference)

    p = sub.add_parser("cycle", help="run N trading cycles now, each a Prefect flow run")
    _add_cycle_options(p)
    p.add_argument("--cycles", type=int, default=1)
    p.set_defaults(func=cmd_cycle)

    p = sub.add_parser("run", help="serve the cycle on its interval (a long-lived service)")
    _add_cycle_options(p)
    p.add_argument("--interval", type=int, default=None, help="seconds between cycles")
    p.add_argument(
        "--with-server", action="store_true",
        help="start a local Prefect server + UI (unless PREFECT_API_URL names one)",
    )
    p.add_argument(
        "--server-wait", type=float, default=60.0,
        help="seconds to wait for the PREFECT_API_URL server to answer (a service at boot)",
    )
    p.add_argument(
        "--server-port", type=int, default=None,
        help="port of the server --with-server starts (default 4200, or a free one if taken)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("backfill", help="load N days of candles for every tradeable market")
    _add_cycle_options(p)
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_backfill)

    from trader import (
        alerts_setup,
        backtest_command,
        ops_commands,
        service_recovery,
        sim_exchange_command,
        smc_commands,
        sql_command,
        sweep_command,
    )

    # Command groups that live beside their domain.
    for module in (
        ops_commands, smc_commands, sim_exchange_command, sql_command, alerts_setup,
        service_recovery, backtest_command, sweep_command,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"trader: configuration error: {exc}", file=sys.stderr)
        return 2
    except TraderError as exc:
        print(f"trader: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
