"""The SMC engine (SPEC §3): causal features, gates, signals. Pure: polars, numpy, numba.

Public API:
- compute_features(ohlcv, timeframe, config): every feature of one market;
- features_by_market(candles, timeframe, config): the same for many markets;
- evaluate_markets(candles, decision_time, config, markets=None): one cycle's
  (signals, gate_trace);
- scan_signals(candles, decision_times, config, markets=None): the same for
  many decision times at once (historical scan);
- resample(hourly, timeframe, closed_by): 4h/1d candles from hourly ones, the one
  rule venues and strategy share (every closed bucket with at least one hour);
- Reason, GateOutcome, Regime: the closed vocabularies.

Time: a candle's ts is its open; a fact is usable from its `known_at`. Every
definition that differs from the PyPI package smartmoneyconcepts is stated in
the docstring of the module that implements it (swings, structure, zones,
fib); regimes are defined in core/smc/regime.py.
"""

from core.smc.engine import evaluate_markets, scan_signals
from core.smc.features import compute_features, features_by_market
from core.smc.reasons import GateOutcome, Reason, Regime
from core.smc.timeframes import resample

__all__ = [
    "GateOutcome",
    "Reason",
    "Regime",
    "compute_features",
    "evaluate_markets",
    "features_by_market",
    "resample",
    "scan_signals",
]
