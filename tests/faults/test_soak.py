"""Seeded soak: hundreds of cycles against the Kraken simulator through real ccxt with mixed
faults, and the control invariants checked after every cycle (tests/support/control.py).

Faults, drawn per cycle from one seeded generator: 429 storms (30 % of requests), 5xx
answers, lost acknowledgements, timeouts, refused orders, partial stop fills (the rest kept
working or cancelled, as Kraken's IOC does), stops refused on the wrong side of the mark,
fill reports a bar late, and changes behind the bot's back (orders cancelled, positions
closed, opened or reduced by hand). Prices are a seeded random walk with gaps.

SOAK_CYCLES (default 120, a minute or two) and SOAK_SEED choose the run; SOAK_REPORT=path
writes the figures (cycles, faults by kind, violations) as JSON.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter
from pathlib import Path

import polars as pl

from schemas.config import AppConfig
from tests.faults.conftest import BTC, ETH, HISTORY, KEY, MARKETS, SECRET, START, H
from tests.support.control import Account, ControlWatch, control_violations
from tests.support.feeds import CandleFeed, hourly_candles
from venues.kraken import make_client
from venues.kraken_orders import KrakenOrderVenue
from venues.kraken_sim import FaultKind, Faults, RunningSim, start_in_thread
from venues.paper import PaperConfig

CYCLES = int(os.environ.get("SOAK_CYCLES", "100"))
SEED = int(os.environ.get("SOAK_SEED", "9"))
SIZES = {BTC.symbol: (0.01, 0.05, 4), ETH.symbol: (0.2, 1.0, 3)}  # low, high, decimals
ENDPOINTS = ["sendorder", "cancelorder", "openpositions", "openorders", "fills", "accounts"]


def walk(rng: random.Random, start: float, bars: int) -> list[float]:
    """A random walk: 1.2 % a bar, and now and then a 4 % gap."""
    prices = [start]
    for _ in range(bars - 1):
        step = rng.gauss(0, 0.012) + (rng.choice([-0.04, 0.04]) if rng.random() < 0.03 else 0)
        prices.append(round(prices[-1] * math.exp(step), 2))
    return prices


def soak_feed(seed: int) -> CandleFeed:
    """Prices of their own seed and length, so a shorter run replays a longer one's start."""
    rng = random.Random(seed * 7919 + 1)
    bars = HISTORY + max(CYCLES, 2000) + 20
    frames = {
        BTC.symbol: hourly_candles(walk(rng, 60_000.0, bars), 150.0, START),
        ETH.symbol: hourly_candles(walk(rng, 3_000.0, bars), 8.0, START),
    }
    return CandleFeed(MARKETS, frames, START + HISTORY * H, name="soak")


class Chaos:
    """Draws and applies one cycle's faults; counts them by kind."""

    def __init__(self, rng: random.Random, sim: RunningSim) -> None:
        self.rng, self.sim = rng, sim
        self.counts: Counter[str] = Counter()
        self.late_until = 0  # cycle until which fill reports may still lag

    def _maybe(self, p: float) -> bool:
        return self.rng.random() < p

    def cycle(self, n: int) -> None:
        faults, rng = self.sim.faults, self.rng
        faults.clear()  # request rules last one cycle; switches are re-drawn below
        if self._maybe(0.15):
            faults.inject(FaultKind.RATE_LIMIT, count=None, probability=0.3)
            self.counts["429 storm (30% of requests, one cycle)"] += 1
        if self._maybe(0.15):
            where = [rng.choice(ENDPOINTS)]
            faults.inject(FaultKind.SERVER_ERROR, rng.randint(1, 2), endpoints=where)
            self.counts["5xx"] += 1
        if self._maybe(0.1):
            faults.inject(FaultKind.ACK_LOST, 1, endpoints=["sendorder"])
            self.counts["lost acknowledgement"] += 1
        if self._maybe(0.04):
            faults.inject(FaultKind.TIMEOUT, 1, endpoints=[rng.choice(["sendorder", "openorders"])])
            self.counts["timeout"] += 1
        if self._maybe(0.1):
            faults.inject(FaultKind.REJECT, 1, reason="insufficientAvailableFunds")
            self.counts["refused order"] += 1
        if self._maybe(0.25):
            remainder = rng.choice(["keep", "cancel"])
            faults.partial_stop_fills(0.5, remainder=remainder)
            self.counts[f"partial stop fills ({remainder})"] += 1
        if self._maybe(0.2):
            faults.refuse_wrong_side_stops("invalidPrice")
            self.counts["wrong-side stops refused"] += 1
        if self._maybe(0.08):
            faults.delay_fill_reports(bars=1)
            self.late_until = n + 2
            self.counts["fill reports a bar late"] += 1
        self._by_hand()

    def _by_hand(self) -> None:
        ex, rng = self.sim.exchange, self.rng
        held = self.sim.engine.positions()
        working = self.sim.engine.open_orders()
        if working and self._maybe(0.06):
            ex.cancel_by_hand(rng.choice(working).venue_order_id)
            self.counts["order cancelled by hand"] += 1
        if held and self._maybe(0.04):
            ex.close_position_by_hand(rng.choice(held).symbol)
            self.counts["position closed by hand"] += 1
        elif held and self._maybe(0.04):
            p = rng.choice(held)
            low = {BTC.symbol: 0.001, ETH.symbol: 0.01}[p.symbol]
            if p.size > 2 * low:
                ex.place_by_hand(p.symbol, p.side.exit_order_side.value, low)
                self.counts["position reduced by hand"] += 1
        flat = [m.symbol for m in MARKETS if m.symbol not in {p.symbol for p in held}]
        if flat and self._maybe(0.03):
            symbol = rng.choice(flat)
            ex.open_position_by_hand(symbol, rng.choice(["buy", "sell"]), SIZES[symbol][0])
            self.counts["position opened by hand"] += 1


def new_intents(rng: random.Random, n: int, account: Account) -> pl.DataFrame:
    held = {p.symbol for p in account.sim.engine.positions()}
    rows = []
    for m in MARKETS:
        mark = account.sim.engine.mark(m.symbol)
        if m.symbol in held or mark is None or rng.random() > 0.4:
            continue
        side = rng.choice(["long", "short"])
        sign = 1 if side == "long" else -1
        low, high, decimals = SIZES[m.symbol]
        risk = rng.uniform(0.015, 0.04)
        rows.append(
            {
                "client_intent_id": f"soak-{n}-{m.base}",
                "symbol": m.symbol,
                "side": side,
                "size": round(rng.uniform(low, high), decimals),
                "stop": round(mark * (1 - sign * risk), 1),
                "tp1": round(mark * (1 + sign * risk), 1),
                "tp2": round(mark * (1 + sign * 2 * risk), 1),
                "tp3": round(mark * (1 + sign * 3 * risk), 1),
                "status": "approved",
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def test_soak_keeps_control_of_every_position_under_mixed_faults(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    sim = start_in_thread(
        soak_feed(SEED),
        KEY,
        SECRET,
        faults=Faults(timeout_s=0.5, rate_budget=None, seed=SEED),
        paper=PaperConfig(initial_cash=1_000_000.0),
    )
    client = make_client(api_url=sim.url, api_key=KEY, api_secret=SECRET, timeout_ms=1_500)
    client.enableRateLimit = False
    venue = KrakenOrderVenue(client, clock=sim.exchange.feed.clock)
    # a wide drawdown band: the soak is about control, not about the strategy's losses
    config = AppConfig.model_validate(
        {"safety": {"degraded_equity_drawdown_pct": 0.5, "max_equity_drawdown_pct": 0.6}}
    )
    account = Account(tmp_path / "trading.duckdb", sim, venue, MARKETS, config)
    chaos, watch = Chaos(rng, sim), ControlWatch()
    violations: list[str] = []
    states: Counter[str] = Counter()
    try:
        for n in range(1, CYCLES + 1):
            chaos.cycle(n)
            sim.advance(1)
            outcome = account.cycle(new_intents(rng, n, account), startup=n == 1)
            states[str(outcome.state)] += 1
            late = n <= chaos.late_until
            violations += control_violations(account, watch, outcome, late_fills=late)
        sim.faults.clear()
        for _ in range(3):  # calm: every late report has arrived
            sim.advance(1)
            outcome = account.cycle()
            violations += control_violations(account, watch, outcome)
    finally:
        venue.exchange.session.close()
        sim.stop()
    figures = {
        "cycles": CYCLES + 3,
        "seed": SEED,
        "faults": dict(sorted(chaos.counts.items())),
        "orders_at_the_venue": len(sim.engine.orders()),
        "fills_at_the_venue": len(sim.engine.fills()),
        "system_states": dict(states),
        "violations": len(violations),
        "violation_lines": violations[:50],
    }
    print(json.dumps(figures, indent=2))
    if os.environ.get("SOAK_REPORT"):
        Path(os.environ["SOAK_REPORT"]).write_text(json.dumps(figures, indent=2))
    assert violations == [], violations[:10]
    assert sum(chaos.counts.values()) > CYCLES / 2  # the soak really injected faults
    assert len(sim.engine.fills()) > CYCLES / 5  # and really traded
