"""SPEC §8 end to end (issue 6, Tests): the seed's outage 1, the kill switch on the
Kraken-Futures simulator, HALTED across restarts until `trader resume`, and the drawdown
high-water mark across restarts.

The cycles here are the stage functions of `flows/cycle.py` called in its order
(read account -> auction + risk -> execute -> reconcile -> read account -> invariants ->
kill switch when HALTED), without Prefect: the flow only wires them. A "restart" is a
fresh DuckDB connection (every stage opens the store per unit of work and keeps nothing
in memory) and, where it matters, a new Python process reading the same file.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from core.cycle import CycleContext
from core.invariants import AccountSnapshot, InvariantName, PositionExposure
from core.market import MarketInfo
from core.orders import Order, OrderRequest, OrderSide, OrderStatus, OrderType, PositionReport
from core.risk import AccountState
from core.system_state import SystemState
from schemas.allocation import Adjustment, IntentStatus, Reason
from schemas.config import AppConfig, Secrets
from tasks.account import read_account
from tasks.allocation import allocate, open_positions
from tasks.execution import execute, make_order_venue, reconcile_stage, run_kill_switch
from tasks.markets import discover
from tasks.safety import evaluate, halt
from tasks.settings import load_config
from tests.support.feeds import CandleFeed, hourly_candles
from trader.cli import main
from venues.base import SimulatedClock
from venues.kraken import make_client
from venues.kraken_orders import KrakenOrderVenue
from venues.kraken_sim import start_in_thread
from venues.paper import PaperConfig

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"  # the shipped configuration
H = timedelta(hours=1)
START = datetime(2025, 3, 1, tzinfo=UTC)
HISTORY = 30


def flat_feed(name: str, markets: list[MarketInfo], prices: dict[str, float]) -> CandleFeed:
    """A MarketDataVenue over flat prices; the clock starts after HISTORY closed bars."""
    bars = HISTORY + 12
    frames = {
        # high/low as close * 1.0001 / 0.9999 exactly (close ± close * 1e-4 can differ by an ulp)
        s: hourly_candles([p] * bars, 0.0, START, 1e6).with_columns(
            high=pl.col("close") * 1.0001, low=pl.col("close") * 0.9999
        )
        for s, p in prices.items()
    }
    return CandleFeed(markets, frames, START + HISTORY * H, name=name, half_spread="tick")


def _signal(symbol: str, ts: datetime, entry: float, score: float) -> dict[str, Any]:
    """A strong long: stop 2 % below (the 1 % risk sizes it above the 25 % cap), TPs above."""
    return {
        "symbol": symbol,
        "ts": ts,
        "strategy": "smc",
        "side": "long",
        "entry": entry,
        "stop": round(entry * 0.98, 2),
        "tp1": round(entry * 1.02, 2),
        "tp2": round(entry * 1.04, 2),
        "tp3": round(entry * 1.06, 2),
        "regime": "tight_smc",
        "score": score,
    }


def _signals(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC")})


def _ctx(cycle_id: int, venue: str, now: datetime, db: Path) -> CycleContext:
    return CycleContext(cycle_id, venue, now, db, datetime.now(UTC))


@dataclass
class StageCycle:
    """What one cycle of the flow's stages did."""

    intents: pl.DataFrame
    reconcile_lines: list[str]
    account: AccountSnapshot
    positions: list[PositionReport]
    state: SystemState
    kill_switch: list[str]
    allocation: Any = None


def stage_cycle(
    ctx: CycleContext,
    orders: Any,
    markets: pl.DataFrame,
    signals: pl.DataFrame,
    config: AppConfig,
    *,
    startup: bool,
) -> StageCycle:
    """flows/cycle.py from the account read to the kill switch, as plain stage functions."""
    before = read_account(ctx, orders, markets)
    held = open_positions(before.positions, markets, config.risk.default_leverage)
    account = AccountState(
        before.snapshot.equity,
        before.snapshot.margin_used,
        before.high_water,
        SystemState(before.state.state),
    )
    allocation = allocate(ctx, signals, markets, held, account, config)
    execute(ctx, orders, allocation.intents, markets, config.execution)
    reconciled = reconcile_stage(ctx, orders, markets, config.execution, startup=startup)
    after = read_account(ctx, orders, markets)
    safety = evaluate(ctx, after.snapshot, config.safety)
    kill = run_kill_switch(ctx, orders, config) if safety.halted else []
    return StageCycle(
        allocation.intents,
        reconciled.log_lines,
        after.snapshot,
        after.positions,
        safety.record.state,
        kill,
        allocation,
    )


READER = """
import json, sys
from datetime import UTC, datetime
from pathlib import Path
from store.db import open_store
from store.safety import current_record, high_water
with open_store(Path(sys.argv[1]), read_only=True) as con:
    record = current_record(con, datetime.now(UTC))
    print(json.dumps({"state": str(record.state), "cause": record.cause,
                      "high_water": high_water(con)}))
"""


def read_in_new_process(db: Path) -> dict[str, Any]:
    """The persisted state and high-water mark as a brand-new process reads them."""
    done = subprocess.run(
        [sys.executable, "-c", READER, str(db)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def wal_rows(db: Path) -> list[tuple[str, str, str, str | None]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT action_type, state, client_id, venue_order_id FROM wal ORDER BY created_at"
        ).fetchall()
    finally:
        con.close()


def recorded_stops(db: Path) -> dict[str, str | None]:
    """symbol -> the stop order id the position record names (the open_exposure view)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT symbol, stop_order_id FROM open_exposure").fetchall()
    finally:
        con.close()
    return dict(rows)


def stops_of(orders: list[Order], position: PositionReport) -> list[Order]:
    """Working stops on the exit side of `position`."""
    exit_side = position.side.exit_order_side
    return [
        o
        for o in orders
        if o.symbol == position.symbol and o.type is OrderType.STOP and o.side is exit_side
    ]


# -- 1. the seed's outage 1: a full auction must not trip the kill switch -------------------------

# max_leverage 2: a position at the 25 % cap needs 12.5 % of equity as margin, so the 0.90
# auction budget (not the 10-position limit) is what ends the auction.
BUDGET_MARKETS = [
    MarketInfo(f"{b}/USD:USD", f"PF_{b}USD", b, "USD", 1.0, 0.01, 0.001, 0.001, 2.0)
    for b in ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH", "III", "JJJ")
]


@dataclass
class FullAuction:
    config: AppConfig
    cycle: StageCycle
    open_orders: list[Order]
    db: Path


@pytest.fixture(scope="module")
def full_auction(tmp_path_factory: pytest.TempPathFactory) -> FullAuction:
    """One paper cycle with the shipped configuration whose auction spends its whole budget."""
    config = load_config(CONFIGS)
    db = tmp_path_factory.mktemp("full-auction") / "trading.duckdb"
    prices = {m.symbol: 100.0 + i for i, m in enumerate(BUDGET_MARKETS)}
    feed = flat_feed("full-auction", BUDGET_MARKETS, prices)
    now = feed.clock.now()
    ctx = _ctx(1, feed.name, now, db)
    orders = make_order_venue(config, feed, db, Secrets(), live=False)  # the paper account
    markets = discover(feed, ctx, config.markets)
    signals = _signals(
        [_signal(s, now, p, 0.95 - i / 100) for i, (s, p) in enumerate(prices.items())]
    )
    cycle = stage_cycle(ctx, orders, markets, signals, config, startup=True)
    return FullAuction(config, cycle, orders.open_orders(), db)


def test_a_full_auction_does_not_trip_the_kill_switch_and_keeps_every_exit(full_auction):
    config, cycle = full_auction.config, full_auction.cycle
    safety = config.safety
    auction = cycle.allocation.auction
    # the auction spent its whole budget: margin planned = auction_max_margin_util x equity
    assert auction.margin_planned == pytest.approx(auction.budget)
    equity = config.execution.paper_initial_cash  # the paper account before the cycle
    assert auction.budget == pytest.approx(safety.auction_max_margin_util * equity)
    reasons = cycle.intents["reason"].to_list()
    assert Reason.BUDGET in reasons
    approved = cycle.intents.filter(pl.col("status") == IntentStatus.APPROVED)
    assert approved.height == 7  # 6 at the 25 % cap, the 7th shrunk under the DEGRADED level
    assert Adjustment.SHRUNK_TO_MARGIN in ",".join(approved["adjustments"])

    # what the venue reports afterwards: far from HALT, no kill switch ran
    utilisation = cycle.account.margin_used / cycle.account.equity
    assert utilisation < safety.auction_max_margin_util < safety.max_margin_utilization_pct
    assert cycle.state is not SystemState.HALTED
    assert cycle.kill_switch == []
    # every position holds its stop and its TP ladder: nothing the cycle placed was cancelled
    assert len(cycle.positions) == 7
    placed = {
        cid for kind, state, cid, _ in wal_rows(full_auction.db)
        if kind in ("place_stop", "place_tp") and state == "acknowledged"
    }  # fmt: skip
    assert {o.client_id for o in full_auction.open_orders} == placed
    for position in cycle.positions:
        (stop,) = stops_of(full_auction.open_orders, position)
        assert stop.reduce_only and stop.size == position.size
        tps = [
            o
            for o in full_auction.open_orders
            if o.symbol == position.symbol and o.type is OrderType.TAKE_PROFIT
        ]
        assert len(tps) == 3


def test_a_full_auction_stays_normal(full_auction):
    cycle, safety = full_auction.cycle, full_auction.config.safety
    utilisation = cycle.account.margin_used / cycle.account.equity
    assert utilisation < safety.degraded_margin_utilization_pct, utilisation
    assert cycle.state is SystemState.NORMAL


def test_the_seeds_thresholds_are_refused_before_any_cycle_runs(tmp_path, monkeypatch, capsys):
    import flows.cycle

    cycles: list[dict[str, Any]] = []
    from prefect.states import Completed

    def fake_cycle(**kw: Any) -> Any:  # what trading_cycle(return_state=True) returns
        cycles.append(kw)
        return Completed()

    monkeypatch.setattr(flows.cycle, "trading_cycle", fake_cycle)
    old = tmp_path / "old-configs"
    old.mkdir()
    shutil.copy(CONFIGS / "config.yaml", old / "config.yaml")
    # the seed: HALT at 0.85, below the auction's 0.90 budget
    (old / "safety.yaml").write_text(
        "max_margin_utilization_pct: 0.85\nauction_max_margin_util: 0.90\n"
    )
    db = tmp_path / "trading.duckdb"

    assert main(["cycle", "--config", str(old), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err
    assert "auction_max_margin_util (0.9) must be < max_margin_utilization_pct (0.85)" in err
    assert "safety.yaml" in err
    assert cycles == [] and not db.exists()  # refused before any cycle, nothing written
    assert main(["check-config", "--config", str(old)]) == 2

    # the control: the shipped configuration reaches the cycle
    assert main(["cycle", "--config", str(CONFIGS), "--db", str(db), "--cycles", "1"]) == 0
    assert len(cycles) == 1 and cycles[0].pop("return_state") is True


# -- 2. the kill switch on the Kraken-Futures simulator ----------------------------------------

KEY = "safety-e2e-key"
SECRET = base64.b64encode(b"kill switch end to end: a secret shared with the simulator").decode()
BTC = MarketInfo("BTC/USD:USD", "PF_XBTUSD", "BTC", "USD", 1.0, 0.5, 0.0001, 0.0001, 50.0)
ETH = MarketInfo("ETH/USD:USD", "PF_ETHUSD", "ETH", "USD", 1.0, 0.05, 0.001, 0.001, 20.0)
SOL = MarketInfo("SOL/USD:USD", "PF_SOLUSD", "SOL", "USD", 1.0, 0.01, 0.01, 0.01, 20.0)
SIM_PRICES = {BTC.symbol: 60_000.0, ETH.symbol: 3_000.0, SOL.symbol: 150.0}
INTENTS = [
    {
        "client_intent_id": "e2e-btc",
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
        "client_intent_id": "e2e-eth",
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


class CallLog:
    """The order venue, with the order of its submit and cancel calls recorded."""

    def __init__(self, venue: KrakenOrderVenue) -> None:
        self._venue = venue
        self.calls: list[tuple[str, str]] = []

    def submit(self, request: OrderRequest) -> Order:
        self.calls.append(("submit", f"{request.symbol} {request.type} {request.side}"))
        return self._venue.submit(request)

    def cancel(self, venue_order_id: str) -> Order | None:
        self.calls.append(("cancel", venue_order_id))
        return self._venue.cancel(venue_order_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)


@dataclass
class Exchange:
    """The simulator's own view (its matching engine), not the bot's."""

    positions: list[PositionReport]
    open_orders: list[Order]
    fills: int


@dataclass
class KillSwitchRun:
    config: AppConfig
    db: Path
    before_halt: Exchange
    removed_stop: Order
    entry_order: Order
    kill_lines: list[str]
    kill_calls: list[tuple[str, str]]
    after_kill: Exchange
    entry_after: Order
    restart_read: dict[str, Any]
    records_after_kill: dict[str, str | None]
    later: list[StageCycle] = field(default_factory=list)
    after_later: Exchange | None = None
    records: dict[str, Any] = field(default_factory=dict)


def _exchange(sim: Any) -> Exchange:
    engine = sim.engine
    return Exchange(engine.positions(), engine.open_orders(), len(engine.fills()))


def _kraken(sim: Any, clock: SimulatedClock) -> KrakenOrderVenue:
    exchange = make_client(api_url=sim.url, api_key=KEY, api_secret=SECRET, timeout_ms=5_000)
    exchange.enableRateLimit = False  # the simulator enforces Kraken's budget itself
    return KrakenOrderVenue(exchange, clock=clock)


@pytest.fixture(scope="module")
def kill_switch_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillSwitchRun]:
    config = load_config(CONFIGS)
    db = tmp_path_factory.mktemp("kill-switch") / "trading.duckdb"
    feed = flat_feed("kill-switch", [BTC, ETH, SOL], SIM_PRICES)
    paper = PaperConfig(initial_cash=100_000.0)
    with start_in_thread(feed, KEY, SECRET, paper=paper) as sim:
        venue = _kraken(sim, feed.clock)
        markets = discover(feed, _ctx(1, "kraken", feed.clock.now(), db), config.markets)

        # cycle 1: two positions opened through the gateway, each with a stop and 3 TPs
        ctx = _ctx(1, "kraken", feed.clock.now(), db)
        execute(ctx, venue, pl.DataFrame(INTENTS), markets, config.execution)
        reconcile_stage(ctx, venue, markets, config.execution, startup=True)
        assert evaluate(
            ctx, read_account(ctx, venue, markets).snapshot, config.safety
        ).record.state is (SystemState.NORMAL)
        # ETH's stop disappears behind the bot's back; an entry limit rests on BTC
        eth_report = next(p for p in venue.positions() if p.symbol == ETH.symbol)
        (removed,) = stops_of(venue.open_orders(), eth_report)
        venue.cancel(removed.venue_order_id)
        entry = venue.submit(
            OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.LIMIT, 0.05, "e2e-entry", 55_000.0)
        )
        before = _exchange(sim)

        # HALT (the operator), then the kill switch
        halt(db, "e2e: operator halt", "e2e-operator")
        recorder = CallLog(venue)
        kill_lines = run_kill_switch(_ctx(2, "kraken", feed.clock.now(), db), recorder, config)
        after_kill = _exchange(sim)
        records_after_kill = recorded_stops(db)
        entry_after = next(o for o in sim.engine.orders() if o.client_id == "e2e-entry")

        # restart: a new process reads the file; a new client; two more cycles, clean account
        restart_read = read_in_new_process(db)
        venue = _kraken(sim, feed.clock)
        run = KillSwitchRun(
            config,
            db,
            before,
            removed,
            entry,
            kill_lines,
            recorder.calls,
            after_kill,
            entry_after,
            restart_read,
            records_after_kill,
        )
        for cycle_id in (3, 4):
            sim.advance(1)
            now = feed.clock.now()
            ctx = _ctx(cycle_id, "kraken", now, db)
            sol = _signals([_signal(SOL.symbol, now, SIM_PRICES[SOL.symbol], 0.95)])
            run.later.append(stage_cycle(ctx, venue, markets, sol, config, startup=False))
        run.after_later = _exchange(sim)
        run.records = recorded_stops(db)
        venue.exchange.session.close()
        yield run


def _assert_protected_and_unflattened(before: Exchange, now: Exchange) -> None:
    # no flatten: the same positions, same sizes, and no fill since the halt
    assert [(p.symbol, p.side, p.size) for p in now.positions] == [
        (p.symbol, p.side, p.size) for p in before.positions
    ]
    assert now.fills == before.fills
    for position in now.positions:
        stops = stops_of(now.open_orders, position)
        assert stops, f"{position.symbol} has no working stop at the exchange"
        assert all(s.reduce_only for s in stops)
        assert sum(s.size - s.filled for s in stops) >= position.size
    # entry orders gone: nothing left that could add exposure
    assert [o for o in now.open_orders if not o.reduce_only] == []


def test_kill_switch_keeps_every_position_protected_and_cancels_entries(kill_switch_run):
    run = kill_switch_run
    before, after = run.before_halt, run.after_kill
    assert len(before.positions) == 2
    assert any(not o.reduce_only for o in before.open_orders)  # the resting entry
    _assert_protected_and_unflattened(before, after)

    # the position whose stop was missing got one, placed before anything was cancelled
    eth = next(p for p in after.positions if p.symbol == ETH.symbol)
    (new_stop,) = stops_of(after.open_orders, eth)
    assert (new_stop.trigger_price, new_stop.size, new_stop.side) == (3_150.0, 3.0, OrderSide.BUY)
    assert new_stop.venue_order_id != run.removed_stop.venue_order_id
    assert run.kill_calls[0] == ("submit", f"{ETH.symbol} stop buy")
    assert run.kill_calls[1:] == [("cancel", run.entry_order.venue_order_id)]
    assert run.kill_lines[0] == f"PLACE_STOP {ETH.symbol} buy 3.0 @ 3150.0"
    assert f"CANCEL_ORDER {BTC.symbol} limit {run.entry_order.venue_order_id} (entry)" in (
        run.kill_lines
    )
    assert run.entry_after.status is OrderStatus.CANCELLED

    # the TPs are kept (kill_switch_cancel_take_profits defaults to false), and BTC's stop
    def tps(exchange: Exchange) -> set[str]:
        return {o.venue_order_id for o in exchange.open_orders if o.type is OrderType.TAKE_PROFIT}

    assert len(tps(before)) == 6 and tps(after) == tps(before)
    btc = next(p for p in before.positions if p.symbol == BTC.symbol)
    assert stops_of(after.open_orders, btc) == stops_of(before.open_orders, btc)
    assert not any(kind == "flatten" for kind, *_ in wal_rows(run.db))


def test_halted_survives_a_restart_and_clean_cycles(kill_switch_run):
    run = kill_switch_run
    assert run.restart_read["state"] == "HALTED"
    assert run.restart_read["cause"] == "operator halt: e2e: operator halt"
    assert [c.state for c in run.later] == [SystemState.HALTED, SystemState.HALTED]
    for cycle in run.later:
        # the account is clean: every invariant OK, yet only the operator leaves HALTED
        assert cycle.account.margin_used / cycle.account.equity < 0.1
        assert len(cycle.positions) == 2
        (sol,) = cycle.intents.rows(named=True)
        assert (sol["status"], sol["reason"]) == ("refused", Reason.SYSTEM_HALTED)
        assert not any(
            line.startswith(("PLACE_STOP", "CANCEL_ORDER", "FLATTEN")) for line in cycle.kill_switch
        )
    assert run.after_later is not None
    _assert_protected_and_unflattened(run.before_halt, run.after_later)
    assert read_in_new_process(run.db)["state"] == "HALTED"


def test_the_kill_switch_stop_becomes_the_positions_stop(kill_switch_run):
    run = kill_switch_run
    eth_stop_after_kill = next(
        o.venue_order_id
        for o in run.after_kill.open_orders
        if o.symbol == ETH.symbol and o.type is OrderType.STOP
    )
    # what `trader status` shows during the halt: the record names the stop that works
    assert run.records_after_kill[ETH.symbol] == eth_stop_after_kill
    unknown = [line for c in run.later for line in c.reconcile_lines if "UNKNOWN" in line]
    assert unknown == []
    assert run.after_later is not None
    for position in run.after_later.positions:
        (stop,) = stops_of(run.after_later.open_orders, position)  # exactly one stop each
        assert run.records[position.symbol] == stop.venue_order_id
    assert run.records[ETH.symbol] == eth_stop_after_kill


def test_status_prints_state_cause_invariants_and_positions_with_stops(kill_switch_run, capsys):
    run = kill_switch_run
    assert main(["status", "--config", str(CONFIGS), "--db", str(run.db)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("state: HALTED since ")
    assert "cause: operator halt: e2e: operator halt" in lines
    assert "operator: e2e-operator: e2e: operator halt" in lines
    safety = run.config.safety
    expected = {
        InvariantName.EQUITY: "[HALT <= 0.00] -> OK",
        InvariantName.MARGIN_UTILIZATION: (
            f"[HALT >= {safety.max_margin_utilization_pct:.4f} (max_margin_utilization_pct), "
            f"DEGRADED >= {safety.degraded_margin_utilization_pct:.4f} "
            "(degraded_margin_utilization_pct)] -> OK"
        ),
        InvariantName.DRAWDOWN: (
            f"[HALT >= {safety.max_equity_drawdown_pct:.4f} (max_equity_drawdown_pct), "
            f"DEGRADED >= {safety.degraded_equity_drawdown_pct:.4f} "
            "(degraded_equity_drawdown_pct)] -> OK"
        ),
        InvariantName.LARGEST_POSITION: (
            f"[WARN > {safety.max_single_position_pct_equity:.4f} "
            "(max_single_position_pct_equity)] -> OK"
        ),
        InvariantName.CONCURRENT_POSITIONS: (
            f"2 [HALT > {safety.max_concurrent_positions} (max_concurrent_positions)] -> OK"
        ),
    }
    for name, tail in expected.items():
        (line,) = [x for x in lines if x.startswith(f"invariant {name}: ")]
        assert line.endswith(tail), line
    # positions with their stops, as recorded; each named stop works at the exchange
    assert "positions: 2 (as last recorded by a cycle)" in lines
    assert run.after_later is not None
    working = {o.venue_order_id for o in run.after_later.open_orders if o.type is OrderType.STOP}
    for symbol, side, size, entry, stop in (
        (BTC.symbol, "long", 0.3, 60000.0, 57000.0),
        (ETH.symbol, "short", 3.0, 3000.0, 3150.0),
    ):
        (line,) = [x for x in lines if x.startswith(f"position {symbol} ")]
        assert line.startswith(f"position {symbol} {side} {size} @ {entry} [protected]: ")
        stop_id = run.records[symbol]
        assert f"stop {stop} for {size} (order {stop_id})" in line
        assert stop_id in working
        assert line.count(" tp") == 3


def test_resume_needs_confirmation_then_records_who_and_why(kill_switch_run, tmp_path, capsys):
    db = tmp_path / "copy.duckdb"
    shutil.copy(kill_switch_run.db, db)  # the module's file stays HALTED for the other tests
    base = ["resume", "--config", str(CONFIGS), "--db", str(db), "--who", "e2e-operator"]
    # no --yes and no terminal to ask on: refused, still HALTED
    assert main([*base, "--why", "stops verified"]) == 2
    assert "refusing without confirmation" in capsys.readouterr().err
    assert read_in_new_process(db)["state"] == "HALTED"

    assert main([*base, "--yes", "--why", "stops verified"]) == 0
    assert capsys.readouterr().out.startswith("NORMAL since ")
    con = duckdb.connect(str(db), read_only=True)
    try:
        last = con.execute(
            "SELECT state, event, who, why, forced FROM system_state_history "
            "ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    assert last == ("NORMAL", "resume_clear", "e2e-operator", "stops verified", False)
    assert read_in_new_process(db)["state"] == "NORMAL"
    # resuming what is not halted is refused with a message
    assert main([*base, "--yes", "--why", "again"]) == 1
    assert "not allowed in state NORMAL" in capsys.readouterr().err


# -- 3. the drawdown high-water mark and resume while a halt condition holds ---------------------


def _account(equity: float, ts: datetime) -> AccountSnapshot:
    return AccountSnapshot(equity, equity * 0.1, 0.0, (PositionExposure("BTC/USD:USD", 100.0),), ts)


def test_the_drawdown_high_water_mark_survives_a_restart(tmp_path):
    db = tmp_path / "trading.duckdb"
    safety = load_config(CONFIGS).safety
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    for cycle_id, equity in ((1, 1_000.0), (2, 1_100.0)):
        ctx = _ctx(cycle_id, "sim", t0 + cycle_id * H, db)
        assert evaluate(ctx, _account(equity, ctx.decision_time), safety).record.state is (
            SystemState.NORMAL
        )
    assert read_in_new_process(db) == {
        "state": "NORMAL",
        "cause": "initial state",
        "high_water": 1_100.0,
    }
    # the restart: nothing in memory, the snapshot arrives without a mark (0.0)
    ctx = _ctx(3, "sim", t0 + 3 * H, db)
    outcome = evaluate(ctx, _account(950.0, ctx.decision_time), safety)
    drawdown = next(c for c in outcome.report.checks if c.name is InvariantName.DRAWDOWN)
    assert drawdown.value == pytest.approx((1_100 - 950) / 1_100)  # 0.1364, not 0.05 from 1000
    assert outcome.report.equity_high_water == 1_100.0
    assert outcome.record.state is SystemState.DEGRADED
    assert "equity_drawdown 0.1364 >= 0.1000 (degraded_equity_drawdown_pct)" in outcome.record.cause
    assert read_in_new_process(db)["state"] == "DEGRADED"


def test_resume_is_refused_while_a_halt_condition_holds_unless_forced(tmp_path, capsys):
    db = tmp_path / "trading.duckdb"
    safety = load_config(CONFIGS).safety
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    for cycle_id, equity in ((1, 1_100.0), (2, 900.0)):  # 900 is 18.2 % below 1100: HALT
        ctx = _ctx(cycle_id, "sim", t0 + cycle_id * H, db)
        outcome = evaluate(ctx, _account(equity, ctx.decision_time), safety)
    assert outcome.record.state is SystemState.HALTED
    base = ["resume", "--config", str(CONFIGS), "--db", str(db), "--yes", "--who", "e2e"]

    assert main([*base, "--why", "looks fine"]) == 1
    err = capsys.readouterr().err
    assert "resume refused: halt condition still holds" in err
    assert "equity_drawdown 0.1818 >= 0.1500 (max_equity_drawdown_pct)" in err
    assert read_in_new_process(db)["state"] == "HALTED"
    # `trader halt` on a halted system keeps the first cause and adds the operator's
    assert main(["halt", "--config", str(CONFIGS), "--db", str(db), "--reason", "look"]) == 0
    assert read_in_new_process(db)["cause"].endswith("; operator halt: look")
    capsys.readouterr()

    assert main([*base, "--why", "accepting the drawdown", "--force"]) == 0
    assert capsys.readouterr().out.startswith("DEGRADED since ")  # no new entries yet
    # the condition still holds: the next cycle halts again
    ctx = _ctx(3, "sim", t0 + 3 * H, db)
    assert evaluate(ctx, _account(900.0, ctx.decision_time), safety).halted
