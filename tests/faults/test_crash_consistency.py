"""Crash consistency: the trading process SIGKILLed at many points, restarted, and checked.

One scenario (fresh DuckDB file, fresh simulator on loopback, real ccxt in the trading
process):

  phase 1  two approved intents (BTC long, ETH short; market entries, stop, TP1-TP3)
           through `tasks.execution.execute` (an unknown outcome is retried, as the Prefect
           task would) and `reconcile_stage(startup=True)`;
  phase 2  the simulator moves one bar: BTC's TP1 fills; `execute` applies the fill and
           moves the stop to break-even (place the new stop, cancel the old one), then
           `reconcile_stage`.

A counting run lists every kill point in program order: just before and just after each
durable write that has something to write (store.execution.save_intent, save_positions,
save_fills, record_events, save_progress; a save_progress carrying fills is its own kind,
the fill-processing points) and each venue call (KrakenOrderVenue.submit / cancel). For
each chosen point a fresh scenario runs in a trading process that kills itself there with
SIGKILL; a second trading process (the restart) runs the whole scenario again; then the
test checks, against the simulator's own engine and the DuckDB file:

- no duplicate orders: each client id at most one order, at most one entry per intent,
  no venue position larger than its intent;
- every open position at the venue has a working reduce-only stop covering it, and its
  record names that stop;
- no fill lost: every venue fill of ours is in the fills table, attributed to its
  position, and applied (record size, entry fill and TP levels agree with the venue);
- the intent log is fully resolved (nothing pending, sent or unknown);
- no record stuck in pending_entry, and no open order at the venue that no record names
  (a stray reduce-only exit could later close a new position).

Speed: trading processes fork from a forkserver that imported the heavy modules once
(no interpreter start per kill); the simulator runs in this process; two scenarios run
at a time.
"""

from __future__ import annotations

import importlib
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core.orders import Fill, Order, OrderType, PositionReport
from core.positions import Position
from store import execution as ex
from store.db import open_store
from tests.faults.conftest import BTC, CASH, ETH, HISTORY, KEY, MARKETS, SECRET, START, H
from tests.support.feeds import CandleFeed, hourly_candles
from venues.base import SimulatedClock
from venues.kraken_sim import Faults, RunningSim, start_in_thread
from venues.paper import PaperConfig

log = logging.getLogger(__name__)

LOTS = {m.symbol: m.lot_size for m in MARKETS}
# bar 1 after the start: BTC trades up through TP1 (62k) and nowhere near its stops
FUTURE = {BTC.symbol: [62_500.0, 62_500.0], ETH.symbol: [3_000.0, 3_000.0]}
INTENTS = [
    {
        "client_intent_id": "crash-btc",
        "symbol": BTC.symbol,
        "side": "long",
        "size": 0.3,
        "stop": 57_000.0,
        "tp1": 62_000.0,
        "tp2": 64_000.0,
        "tp3": 66_000.0,
        "status": "approved",
    },
    {
        "client_intent_id": "crash-eth",
        "symbol": ETH.symbol,
        "side": "short",
        "size": 3.0,
        "stop": 3_150.0,
        "tp1": 2_900.0,
        "tp2": 2_800.0,
        "tp3": 2_700.0,
        "status": "approved",
    },
]
REQUESTED = {i["symbol"]: i["size"] for i in INTENTS}

WRITES = ("save_intent", "save_positions", "save_fills", "record_events", "save_progress")
VENUE_CALLS = ("submit", "cancel")
# at least 50 distinct kill points, spread evenly over the program; CRASH_TEST_POINTS=all
# (or a number) in the environment runs every point (112 at the time of writing)
TARGET_POINTS = int(os.environ.get("CRASH_TEST_POINTS", "56").replace("all", "100000"))
WORKERS = 2  # scenarios at a time (the simulators live in this process, one thread each)
CHILD_TIMEOUT_S = 60.0  # one trading process; far above the ~2 s one takes
EXECUTE_ATTEMPTS = 3  # the Prefect task's 1 + 2 retries
PRELOAD = [
    "duckdb",
    "ccxt",
    "polars",
    "requests",
    "core.positions",
    "store.db",
    "store.execution",
    "core.engine.gateway",
    "core.engine.execution",
    "tasks.execution",
    "venues.kraken",
    "venues.kraken_orders",
    "schemas.execution",
]

Point = tuple[str, int, str]  # (function, nth call with something to do, "before" | "after")


# -- the feed behind the simulator ------------------------------------------------------------


def scripted_feed() -> CandleFeed:
    """BTC flat at 60k, ETH at 3k for HISTORY bars; then FUTURE."""
    flat = {BTC.symbol: 60_000.0, ETH.symbol: 3_000.0}
    frames = {
        s: hourly_candles([flat[s]] * HISTORY + FUTURE[s], flat[s] * 1e-4, START) for s in flat
    }
    return CandleFeed(MARKETS, frames, START + HISTORY * H, name="crash-scripted")


# -- the trading process (runs in a child forked from the forkserver) --------------------------


@dataclass(frozen=True)
class Job:
    url: str
    db_path: str
    log_path: str
    kill: Point | None


def _markets_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": [m.symbol for m in MARKETS],
            "tick_size": [m.tick_size for m in MARKETS],
            "lot_size": [m.lot_size for m in MARKETS],
            "contract_size": [m.contract_size for m in MARKETS],
            "max_leverage": [m.max_leverage for m in MARKETS],
        }
    )


def _label(name: str, args: tuple[Any, ...]) -> str | None:
    """The kill-point name of one call; None when it writes nothing (not a point). A save
    that carries fills is named apart: those are the fill-processing points."""
    if name == "save_progress":  # (con, positions, events, fills, cycle_id)
        if not (args[1] or args[2] or args[3]):
            return None
        return "save_progress+fills" if args[3] else name
    if name in ("save_positions", "save_fills", "record_events"):  # (con, rows, ...)
        return name if args[1] else None
    return name


def _install_kill_points(kill: Point | None, calls: list[tuple[str, int]]) -> None:
    """Wrap the durable writes and the venue calls with counters; SIGKILL at `kill`."""
    import store.execution as store_ex
    from venues.kraken_orders import KrakenOrderVenue

    counts: Counter[str] = Counter()

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            label = _label(name, args)
            if label is None:
                return fn(*args, **kwargs)
            counts[label] += 1
            calls.append((label, counts[label]))
            if kill == (label, counts[label], "before"):
                os.kill(os.getpid(), signal.SIGKILL)
            result = fn(*args, **kwargs)
            if kill == (label, counts[label], "after"):
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return wrapper

    for name in WRITES:
        if hasattr(store_ex, name):
            setattr(store_ex, name, wrap(name, getattr(store_ex, name)))
    for name in VENUE_CALLS:
        setattr(KrakenOrderVenue, name, wrap(name, getattr(KrakenOrderVenue, name)))


def trading_process(job: Job, conn: Any) -> None:
    """The bot: phase 1, ask the parent to move the simulator, phase 2; reports its calls."""
    logging.basicConfig(
        filename=job.log_path,
        level=logging.INFO,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
        force=True,
    )
    calls: list[tuple[str, int]] = []
    _install_kill_points(job.kill, calls)
    from core.cycle import CycleContext
    from core.errors import VenueRetryableError
    from schemas.execution import ExecutionConfig
    from tasks.execution import execute, reconcile_stage
    from venues.kraken import make_client
    from venues.kraken_orders import KrakenOrderVenue

    exchange = make_client(api_url=job.url, api_key=KEY, api_secret=SECRET, timeout_ms=5_000)
    exchange.enableRateLimit = False  # the simulator enforces Kraken's budget (off here)
    venue = KrakenOrderVenue(exchange, clock=SimulatedClock(START + HISTORY * H, H))
    markets = _markets_frame()
    cfg = ExecutionConfig(break_even_after_tp1=True)
    db = Path(job.db_path)

    def cycle(cycle_id: int, now: datetime, intents: pl.DataFrame, startup: bool) -> None:
        venue.clock = SimulatedClock(now, H)
        ctx = CycleContext(cycle_id, "kraken", now, db, datetime.now(UTC))
        for attempt in range(1, EXECUTE_ATTEMPTS + 1):
            try:
                execute(ctx, venue, intents, markets, cfg)
                break
            except VenueRetryableError as exc:  # what the Prefect task's retries do
                logging.getLogger("crash").warning("execute attempt %d: %s", attempt, exc)
        reconcile_stage(ctx, venue, markets, cfg, startup=startup)

    cycle(1, START + HISTORY * H, pl.DataFrame(INTENTS), startup=True)
    conn.send(("advance", None))
    now = datetime.fromisoformat(conn.recv())
    cycle(2, now, pl.DataFrame(INTENTS).clear(), startup=False)
    conn.send(("done", calls))
    conn.close()


# -- the parent side -----------------------------------------------------------------------------


@dataclass
class RunResult:
    exitcode: int | None
    calls: list[tuple[str, int]] = field(default_factory=list)


def run_trading_process(mp: Any, sim: RunningSim, job: Job, moved: list[bool]) -> RunResult:
    """Start one trading process, serve its 'advance' request, wait (bounded) for its end."""
    parent, child = mp.Pipe()
    proc = mp.Process(target=trading_process, args=(job, child), daemon=True)
    proc.start()
    child.close()
    result = RunResult(None)
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if parent.poll(0.05):
                try:
                    kind, payload = parent.recv()
                except EOFError:  # the process died
                    break
                if kind == "advance":
                    if not moved[0]:  # the market moves once per scenario, restart or not
                        sim.advance(1)
                        moved[0] = True
                    parent.send(sim.now().isoformat())
                elif kind == "done":
                    result.calls = [tuple(c) for c in payload]
            elif not proc.is_alive():
                break
        else:
            raise AssertionError(f"trading process {proc.pid} ran past {CHILD_TIMEOUT_S} s")
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()  # by its pid
            proc.join(timeout=10)
        parent.close()
    result.exitcode = proc.exitcode
    return result


@dataclass
class Outcome:
    point: Point | None
    killed: bool
    restart_exit: int | None
    duplicates: list[str]
    unprotected: list[str]
    lost_fills: list[str]
    unresolved: list[str]
    stuck: list[str]
    stray_orders: list[str]
    calls: list[tuple[str, int]]
    seconds: float
    log_path: str

    @property
    def ok_but_for_the_kill(self) -> bool:
        """Every check held and the restart exited 0 (whether or not the kill happened)."""
        return (
            not (
                self.duplicates
                or self.unprotected
                or self.lost_fills
                or self.unresolved
                or self.stuck
            )
            and self.restart_exit == 0
        )

    @property
    def ok(self) -> bool:
        return self.ok_but_for_the_kill and (self.point is None or self.killed)


ENTRY_ID = re.compile(r"^(?P<pid>.+)-en-\d+$")
TP_ID = re.compile(r"^(?P<pid>.+)-tp(?P<level>[123])-\d+$")


def _duplicates(orders: list[Order], reports: list[PositionReport]) -> list[str]:
    by_client = Counter(o.client_id for o in orders if o.client_id)
    found = [f"{cid} x{n}" for cid, n in by_client.items() if n > 1]
    entries = Counter(m["pid"] for cid in by_client if (m := ENTRY_ID.match(cid)))
    found += [f"{pid}: {n} entries" for pid, n in entries.items() if n > 1]
    found += [
        f"{r.symbol}: venue holds {r.size} > intent {REQUESTED[r.symbol]}"
        for r in reports
        if r.size > REQUESTED[r.symbol] + LOTS[r.symbol] / 2
    ]
    return found


def _unprotected(
    reports: list[PositionReport], open_orders: list[Order], records: dict[str, Position]
) -> list[str]:
    found = []
    for r in reports:
        stops = {
            o.venue_order_id
            for o in open_orders
            if o.symbol == r.symbol
            and o.type is OrderType.STOP
            and o.reduce_only
            and o.side is r.side.exit_order_side
            and o.size >= r.size - LOTS[r.symbol] / 2
        }
        record = records.get(r.symbol)
        if not stops:
            found.append(f"{r.symbol} {r.side} {r.size}: no working stop at the venue")
        elif record is None or record.stop_order_id not in stops:
            found.append(f"{r.symbol}: the record does not name its working stop")
    return found


def _lost_fills(
    venue_fills: list[Fill],
    ours: set[str],
    table: dict[str, str | None],
    reports: list[PositionReport],
    records: dict[str, Position],
) -> list[str]:
    """Fills of ours missing from the table or unattributed, and records that disagree with
    the venue's position, entry fills or TP fills (a fill recorded but never applied)."""
    lost = [
        f"fill {f.fill_id} ({f.client_id}) "
        + ("not in the fills table" if f.fill_id not in table else "not attributed")
        for f in venue_fills
        if f.client_id in ours and table.get(f.fill_id) is None
    ]
    held = {r.symbol: r.size for r in reports}
    for symbol in set(held) | set(records):
        p = records.get(symbol)
        if p is None:
            lost.append(f"{symbol}: venue holds {held[symbol]} without a record")
            continue
        if abs(p.size - held.get(symbol, 0.0)) >= LOTS[symbol] / 2:
            lost.append(f"{symbol}: record size {p.size} vs venue {held.get(symbol, 0.0)}")
        mine = [
            (m, f)
            for f in venue_fills
            for m in [ENTRY_ID.match(f.client_id or "") or TP_ID.match(f.client_id or "")]
            if m and m["pid"] == p.position_id
        ]
        entry = sum(f.size for m, f in mine if "level" not in m.groupdict())
        if entry and abs(p.entry_filled - entry) >= LOTS[symbol] / 2:
            lost.append(f"{symbol}: entry filled {p.entry_filled} on record vs {entry} at venue")
        lost += [
            f"{symbol}: TP{m['level']} filled at the venue, not on record"
            for m, _ in mine
            if "level" in m.groupdict() and not p.tps[int(m["level"]) - 1].filled
        ]
    return lost


def check(sim: RunningSim, db_path: Path) -> dict[str, list[str]]:
    """The four invariants (and stuck records, stray orders) against the venue and the DB."""
    with sim.exchange.session():
        orders = sim.engine.orders()
        open_orders = sim.engine.open_orders()
        reports = sim.engine.positions()
        venue_fills = sim.engine.fills()
    with open_store(db_path, read_only=True) as con:
        wal = con.execute("SELECT intent_id, client_id, state FROM wal").fetchall()
        table = dict(con.execute("SELECT fill_id, position_id FROM fills").fetchall())
        records = {p.symbol: p for p in ex.live_positions(con)}
    ours = {cid for _, cid, _ in wal if cid}
    referenced = set()
    for p in records.values():
        referenced |= {p.stop_order_id, *p.tp_order_ids.values()}
    return {
        "duplicates": _duplicates(orders, reports),
        "unprotected": _unprotected(reports, open_orders, records),
        "lost_fills": _lost_fills(venue_fills, ours, table, reports, records),
        "unresolved": [f"{i} {st}" for i, _, st in wal if st in ("pending", "sent", "unknown")],
        "stuck": [p.position_id for p in records.values() if p.state.value == "pending_entry"],
        "stray_orders": [
            f"{o.client_id} ({o.type})" for o in open_orders if o.venue_order_id not in referenced
        ],
    }


def run_scenario(mp: Any, workdir: Path, point: Point | None) -> Outcome:
    """Fresh DB + fresh simulator; a kill run at `point` (if any) and the restart; checks."""
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    db = workdir / "trading.duckdb"
    log_path = workdir / "trading.log"
    faults = Faults(rate_budget=None)
    with start_in_thread(
        scripted_feed(), KEY, SECRET, faults=faults, paper=PaperConfig(initial_cash=CASH)
    ) as sim:
        moved = [False]
        killed = False
        if point is not None:
            job = Job(sim.url, str(db), str(log_path), point)
            killed = run_trading_process(mp, sim, job, moved).exitcode == -signal.SIGKILL
        job = Job(sim.url, str(db), str(log_path), None)
        final = run_trading_process(mp, sim, job, moved)
        found = check(sim, db)
    return Outcome(
        point=point,
        killed=killed,
        restart_exit=final.exitcode,
        calls=final.calls,
        seconds=time.perf_counter() - started,
        log_path=str(log_path),
        **found,
    )


# few calls each, all of them kill points: fill processing, event records, cancels
RARE = ("save_fills", "save_progress+fills", "record_events", "cancel")


def choose(points: list[Point], target: int) -> list[Point]:
    """Every point at a rare call (fill processing, event records, cancels), the others
    spread evenly over the program, `target` in all (every point when there are fewer)."""
    if len(points) <= target:
        return points
    rare = [p for p in points if p[0] in RARE]
    common = [p for p in points if p[0] not in RARE]
    room = max(target - len(rare), 2)
    picks = {round(i * (len(common) - 1) / (room - 1)) for i in range(room)}
    chosen = set(rare) | {common[i] for i in picks}
    return [p for p in points if p in chosen]  # program order


# The trading process runs this module's functions, unpickled in the child by module name.
# pytest imports this file as plain `test_crash_consistency` (its folder put on sys.path),
# which the forkserver cannot import (Python 3.11 ignores the parent's sys.path there), so
# the children would import it afresh (~1 s each). Under its package name it is importable
# everywhere (the project is installed editable) and preloaded once.
CANONICAL = "tests.faults.test_crash_consistency"


@pytest.fixture(scope="module")
def forkserver() -> Iterator[tuple[Any, Any]]:
    """A forkserver that imported the heavy modules once, and this module as the children
    know it; the server is stopped (its pipe closed, its pid waited for) afterwards."""
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload([*PRELOAD, CANONICAL])
    yield mp, importlib.import_module(CANONICAL)
    multiprocessing.forkserver._forkserver._stop()


@pytest.fixture(scope="module")
def kill_points(forkserver, tmp_path_factory) -> list[Point]:
    """The counting run (kill-free): it must pass every check itself, and lists the kill
    points in program order."""
    mp, impl = forkserver
    workdir = tmp_path_factory.mktemp("baseline")
    baseline = impl.run_scenario(mp, workdir, None)
    assert baseline.ok, f"the kill-free run already fails: {baseline}"
    assert not baseline.stray_orders, baseline.stray_orders
    names = {name for name, _ in baseline.calls}
    assert {"save_intent", "submit", "cancel"} <= names, names
    assert names & {"save_fills", "save_progress+fills"}, f"no fill processing in {names}"
    return [(name, n, when) for name, n in baseline.calls for when in ("before", "after")]


def kill_everywhere(
    mp: Any, workdir: Path, chosen: list[Point]
) -> tuple[list[Outcome], dict[str, Any]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = list(
            pool.map(
                lambda ip: run_scenario(mp, workdir / f"kill-{ip[0]:03d}", ip[1]),
                enumerate(chosen),
            )
        )
    # The program's path depends a little on the simulator thread's timing (under load a
    # fill can land one read later), so a run may end before its Nth call of a function.
    # Such a run still passed its checks; its point is run once more to be exercised.
    unreached = [i for i, o in enumerate(outcomes) if o.point is not None and not o.killed
                 and o.ok_but_for_the_kill]
    for i in unreached:
        outcomes[i] = run_scenario(mp, workdir / f"kill-{i:03d}-again", chosen[i])
    figures = {
        "kill_points_exercised": sum(o.killed for o in outcomes),
        "points_run_again_unreached": len(unreached),
        "by_function": dict(Counter(o.point[0] for o in outcomes if o.point)),
        "duplicates": sum(len(o.duplicates) for o in outcomes),
        "unprotected": sum(len(o.unprotected) for o in outcomes),
        "lost_fills": sum(len(o.lost_fills) for o in outcomes),
        "unresolved": sum(len(o.unresolved) for o in outcomes),
        "stuck_pending_entries": sum(len(o.stuck) for o in outcomes),
        "stray_orders": sum(len(o.stray_orders) for o in outcomes),
        "scenario_seconds_mean": round(sum(o.seconds for o in outcomes) / len(outcomes), 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return outcomes, figures


def assert_all_held(outcomes: list[Outcome], figures: dict[str, Any]) -> None:
    log.warning("CRASH_TEST %s", json.dumps(figures))
    print("CRASH_TEST", json.dumps(figures))
    for o in outcomes:
        if o.stray_orders:
            print("STRAY", o.point, o.stray_orders)
    failures = [o for o in outcomes if not o.ok]
    detail = "\n".join(
        f"{o.point}: killed={o.killed} restart_exit={o.restart_exit} dup={o.duplicates} "
        f"unprotected={o.unprotected} lost={o.lost_fills} unresolved={o.unresolved} "
        f"stuck={o.stuck} log={o.log_path}"
        for o in failures
    )
    assert not failures, f"{len(failures)} of {len(outcomes)} kill points failed:\n{detail}"
    assert figures["kill_points_exercised"] == len(outcomes)


def test_sigkill_at_56_points_leaves_no_duplicate_no_naked_position_no_lost_fill(
    forkserver, kill_points, tmp_path
):
    mp, impl = forkserver
    chosen = choose(kill_points, TARGET_POINTS)
    assert len(set(chosen)) >= 50
    outcomes, figures = impl.kill_everywhere(mp, tmp_path, chosen)
    figures["kill_points_available"] = len(kill_points)
    assert_all_held(outcomes, figures)
