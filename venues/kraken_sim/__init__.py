"""A Kraken-Futures-compatible exchange on loopback, backed by the paper engine.

with start_in_thread(feed, key, secret) as sim:
    client = point_ccxt_at(ccxt.krakenfutures({"apiKey": key, "secret": secret}), sim.url)
    client.create_order("BTC/USD:USD", "market", "buy", 0.01)
    sim.advance()  # one bar later: stops and take-profits that it reached have filled
"""

from venues.kraken_sim.auth import Credentials, sign
from venues.kraken_sim.exchange import SimExchange
from venues.kraken_sim.faults import CostBudget, FaultKind, FaultRule, Faults, parse_fault_spec
from venues.kraken_sim.server import KrakenSimServer, RunningSim, point_ccxt_at, start_in_thread

__all__ = [
    "CostBudget",
    "Credentials",
    "FaultKind",
    "FaultRule",
    "Faults",
    "KrakenSimServer",
    "RunningSim",
    "SimExchange",
    "parse_fault_spec",
    "point_ccxt_at",
    "sign",
    "start_in_thread",
]
