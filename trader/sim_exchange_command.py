"""`trader sim-exchange`: a Kraken-Futures-compatible exchange on loopback, in the foreground.

    trader sim-exchange --port 8787 --api-key K --api-secret S [--venue sim|replay]
    KRAKEN_API_KEY=K KRAKEN_API_SECRET=S trader run --venue kraken --api-url http://127.0.0.1:8787

By default (--time now) the feed's present is shown as the current hour and the
clock moves one bar per bar of real time, because the kraken venue reads the
wall clock. --time feed serves the feed's own dates and moves one bar every
--bar-seconds (0 keeps the clock frozen).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from tasks.settings import DATA_DIR_ENV, SECRET_ENV

DEFAULT_PORT = 8787


def register(subparsers: Any) -> None:
    """Add the `sim-exchange` subcommand (argparse subparsers of the `trader` parser)."""
    p = subparsers.add_parser(
        "sim-exchange",
        help="serve a Kraken-Futures-compatible exchange on 127.0.0.1 (paper fills)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: any free one)")
    p.add_argument("--api-key", default=os.environ.get(SECRET_ENV["kraken_api_key"]))
    p.add_argument(
        "--api-secret",
        default=os.environ.get(SECRET_ENV["kraken_api_secret"]),
        help="base64, as Kraken issues secrets (default: $KRAKEN_API_SECRET)",
    )
    p.add_argument("--venue", choices=["sim", "replay"], default="sim", help="price feed")
    p.add_argument("--data-dir", type=Path, default=None, help="replay: *USDT_1h.parquet folder")
    p.add_argument("--replay-start", default=None, help="replay: first time shown (ISO, UTC)")
    p.add_argument("--seed", type=int, default=7, help="sim market seed and fault seed")
    p.add_argument("--sim-markets", type=int, default=56)
    p.add_argument("--time", choices=["now", "feed"], default="now", dest="time_mode")
    p.add_argument("--bar-seconds", type=float, default=0.0, help="--time feed: pace (0: frozen)")
    p.add_argument("--no-funding", action="store_true", help="replay: do not settle funding")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="request faults, e.g. server_error:3@sendorder, rate_limit:p0.1, "
        "ack_lost=drop@sendorder; exchange switches: partial_stop=0.5[,keep|,cancel], "
        "wrong_side_stop=reject[,WORD], late_fills=N or late_fills=Nbars",
    )
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--timeout-s", type=float, default=15.0, help="how long timeout faults hang")
    p.add_argument("--rate-budget", type=int, default=500, help="cost per 10 s (0: no limit)")
    p.add_argument("--partial-fill", type=float, default=1.0, help="max fill fraction per bar")
    p.add_argument("--maker-fee", type=float, default=0.0002)
    p.add_argument("--taker-fee", type=float, default=0.0005)
    p.add_argument("--slippage-bps", type=float, default=0.0)
    p.add_argument("--cash", type=float, default=10_000.0, help="starting USD in the flex wallet")
    p.add_argument("--leverage", type=float, default=10.0, help="for margin (capped per market)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; returns the exit code (2 for unusable arguments)."""
    from core.errors import ConfigError
    from venues.kraken_sim import Faults, start_in_thread

    if not args.api_key or not args.api_secret:
        raise ConfigError(
            "sim-exchange needs --api-key and --api-secret (or KRAKEN_API_KEY / "
            "KRAKEN_API_SECRET): the simulator accepts only requests signed with that pair"
        )
    try:
        faults = Faults(
            latency_ms=args.latency_ms,
            timeout_s=args.timeout_s,
            seed=args.seed,
            rate_budget=args.rate_budget or None,
        )
        for spec in args.fault:
            faults.apply(spec)
        feed, funding = _feed(args)
        sim = start_in_thread(
            feed,
            args.api_key,
            args.api_secret,
            port=args.port,
            faults=faults,
            paper=_paper(args),
            funding=funding,
        )
    except (ValueError, OSError) as exc:
        raise ConfigError(f"sim-exchange: {exc}") from exc
    if args.partial_fill < 1.0:
        sim.exchange.set_partial_fills(args.partial_fill)
    _announce(sim, args, len(args.fault))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        _pace(sim, args, stop)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a person stops it
    finally:
        signal.signal(signal.SIGTERM, previous)
        sim.stop()
        print("sim-exchange stopped", file=sys.stderr)
    return 0


def _feed(args: argparse.Namespace) -> tuple[Any, Any]:
    from schemas.config import VenueConfig, VenueKind
    from venues.factory import make_venue
    from venues.kraken_sim.feeds import ShiftedFeed
    from venues.paper import FundingSchedule

    data_dir = args.data_dir or Path(os.environ.get(DATA_DIR_ENV, "../shared/data/binance-usdm"))
    config = VenueConfig(
        kind=VenueKind(args.venue),
        seed=args.seed,
        sim_markets=args.sim_markets,
        data_dir=data_dir,
        replay_start=args.replay_start,
    )
    feed = make_venue(config)
    funding = None
    if args.venue == "replay" and not args.no_funding:
        bases = {m.symbol: m.base for m in feed.markets()}
        funding = FundingSchedule.from_binance_dir(data_dir, bases)
    if args.time_mode == "now":
        shifted = ShiftedFeed.to_present(feed, datetime.now(UTC))
        return shifted, shifted.shift_funding(funding) if funding else None
    return feed, funding


def _paper(args: argparse.Namespace) -> Any:
    from venues.paper import PaperConfig

    return PaperConfig(
        maker_fee=args.maker_fee,
        taker_fee=args.taker_fee,
        slippage_bps=args.slippage_bps,
        initial_cash=args.cash,
        default_leverage=args.leverage,
        seed=args.seed,
    )


def _announce(sim: Any, args: argparse.Namespace, n_faults: int) -> None:
    key_env, secret_env = SECRET_ENV["kraken_api_key"], SECRET_ENV["kraken_api_secret"]
    pace = (
        "one bar per bar of real time, dated now"
        if args.time_mode == "now"
        else f"feed dates, one bar every {args.bar_seconds:g} s"
        if args.bar_seconds
        else "frozen"
    )
    print(
        f"Kraken Futures simulator listening on {sim.url}\n"
        f"  feed: {args.venue}, {len(sim.exchange.catalogue)} markets, "
        f"clock {sim.now():%Y-%m-%d %H:%M} UTC ({pace})\n"
        f"  {n_faults} fault spec(s); cost budget {args.rate_budget or 'off'} per 10 s\n"
        f"Point the bot at it (same key pair in the environment):\n"
        f"  {key_env}={args.api_key} {secret_env}=<the secret> "
        f"trader run --venue kraken --api-url {sim.url}\n"
        "Ctrl-C stops it.",
        flush=True,
    )


def _pace(sim: Any, args: argparse.Namespace, stop: threading.Event) -> None:
    """Move the exchange clock as --time / --bar-seconds say until `stop` is set."""
    step = sim.exchange.driver.step
    while True:
        if args.time_mode == "now":
            while sim.now() + step <= datetime.now(UTC):
                sim.advance()
            wait = 1.0
        elif args.bar_seconds > 0:
            wait = args.bar_seconds
        else:
            wait = 1.0
        if stop.wait(wait):
            return
        if args.time_mode == "feed" and args.bar_seconds > 0:
            sim.advance()
