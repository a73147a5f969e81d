"""Kraken Futures' request-cost budget, kept on the client, and the retry policy of reads.

Kraken charges every private `/derivatives` request a cost and lets one key
spend 500 every 10 s; public endpoints cost nothing (Kraken's "Derivatives Rate
Limits" guide). The simulator enforces the same table (venues/kraken_sim), so a
client that waits in `CostLimiter.acquire` before each request is never refused
for its own traffic. `/history` endpoints (the account log) draw on a separate
pool that is not modelled here: they cost nothing in this table.

Reads are retried (`ReadRetry`), writes never: an order or a cancel whose answer
was lost is resolved by the write-ahead log, not resent by the adapter.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Kraken's cost per /derivatives endpoint; an endpoint missing here costs 1.
ENDPOINT_COST = {
    "sendorder": 10,
    "editorder": 10,
    "cancelorder": 10,
    "accounts": 2,
    "openpositions": 2,
    "openorders": 2,
    "fills": 2,
    "cancelallorders": 25,
    "cancelallordersafter": 25,
    "orders/status": 1,
}
FILLS_WITH_LAST_FILL_TIME_COST = 25
BATCH_BASE_COST = 9  # plus one per instruction in the batch
KRAKEN_BUDGET = 500
KRAKEN_WINDOW_S = 10.0


def request_cost(api: str, path: str, params: Mapping[str, object]) -> int:
    """Kraken's cost of one request: `api` is ccxt's API family (public, private, charts,
    history, ...), `path` the endpoint without the version (`openpositions`)."""
    if api != "private":
        return 0
    if path == "fills" and params.get("lastFillTime"):
        return FILLS_WITH_LAST_FILL_TIME_COST
    if path == "batchorder":
        batch = params.get("batchOrder")
        return BATCH_BASE_COST + (len(batch) if isinstance(batch, list) else 0)
    return ENDPOINT_COST.get(path, 1)


@dataclass(slots=True)
class LimiterStats:
    """What the limiter did since it was made (or reset)."""

    requests: int = 0
    cost: int = 0
    waits: int = 0
    waited_s: float = 0.0


class CostLimiter:
    """At most `budget` cost units in any `window_s` seconds; `acquire` waits for room.

    Thread-safe. The default budget stays below Kraken's 500 so that clock skew
    between client and exchange and other users of the same key never push a
    request over Kraken's own limit.
    """

    def __init__(
        self,
        budget: int = 450,
        window_s: float = KRAKEN_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Refuses a budget below the costliest single request (ValueError)."""
        if budget < max(ENDPOINT_COST.values()):
            raise ValueError(
                f"cost budget {budget} is below the costliest Kraken request "
                f"({max(ENDPOINT_COST.values())}); use at least that (Kraken allows 500)"
            )
        if window_s <= 0:
            raise ValueError(f"cost window must be positive, got {window_s} s")
        self.budget = budget
        self.window_s = window_s
        self.stats = LimiterStats()
        self._clock = clock
        self._sleep = sleep
        self._spent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def acquire(self, cost: int) -> float:
        """Spend `cost`, first waiting until the window has room; returns the seconds waited.
        A request costing nothing passes at once."""
        if cost <= 0:
            return 0.0
        cost = min(cost, self.budget)  # a batch larger than the budget still goes, alone
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._spent and self._spent[0][0] <= now - self.window_s:
                    self._spent.popleft()
                spent = sum(c for _, c in self._spent)
                if spent + cost <= self.budget:
                    self._spent.append((now, cost))
                    self.stats.requests += 1
                    self.stats.cost += cost
                    if waited:
                        self.stats.waits += 1
                        self.stats.waited_s += waited
                    return waited
                wait = self._wait_for(spent + cost - self.budget, now)
            self._sleep(wait)
            waited += wait

    def _wait_for(self, excess: int, now: float) -> float:
        """Seconds until entries worth `excess` leave the window."""
        freed = 0
        for ts, c in self._spent:
            freed += c
            if freed >= excess:
                return max(ts + self.window_s - now, 0.001)
        return self.window_s


@dataclass(frozen=True, slots=True)
class ReadRetry:
    """How reads are retried after a transient failure (429, 5xx, timeout, network).

    attempts counts the first try; the wait before retry k (k = 1, 2, ...) is
    backoff_s * 2**(k-1), capped at backoff_max_s, half of it random (jitter).
    """

    attempts: int = 8
    backoff_s: float = 0.2
    backoff_max_s: float = 3.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"read attempts must be >= 1, got {self.attempts}")
        if self.backoff_s < 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError(
                f"read backoff must satisfy 0 <= backoff_s ({self.backoff_s}) <= "
                f"backoff_max_s ({self.backoff_max_s})"
            )

    def delay(self, retry: int, rng: random.Random) -> float:
        """The wait before the `retry`-th retry (1-based)."""
        full = min(self.backoff_s * 2 ** (retry - 1), self.backoff_max_s)
        return full / 2 + rng.uniform(0, full / 2)


@dataclass(slots=True)
class ReadStats:
    """Reads made through one client: calls, HTTP attempts, retries and time spent waiting."""

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    failures: int = 0  # calls that gave up after every attempt
    backoff_s: float = 0.0
