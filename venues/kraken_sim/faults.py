"""Fault switches of the simulator and Kraken's request-cost budget.

Every switch can be set at construction, changed at runtime from a test
(`Faults.inject`, `.latency_ms`, `.clear`), or given on the command line
(`--fault SPEC`, see `parse_fault_spec`). Random draws come from one seeded
generator, so the same request sequence meets the same faults.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum


class FaultKind(StrEnum):
    SERVER_ERROR = "server_error"  # HTTP 5xx before anything is done
    RATE_LIMIT = "rate_limit"  # HTTP 429 apiLimitExceeded before anything is done
    TIMEOUT = "timeout"  # no answer until the client gave up; nothing is done
    ACK_LOST = "ack_lost"  # the request is carried out, then answered 5xx or dropped
    SLOW_ACK = "slow_ack"  # the request is carried out, answered after the client gave up
    REJECT = "reject"  # sendorder answered with a rejection status; nothing is placed


# Kraken's cost per /derivatives endpoint (docs: "Derivatives Rate Limits"); public ones are free.
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


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Hit the next `count` requests to `endpoints` (all when empty) with `kind`.

    count=None keeps the rule forever; probability < 1 hits each matching request
    with that chance (seeded). status is the HTTP code of SERVER_ERROR and
    ACK_LOST (0 drops the connection without an answer); reason is the
    sendStatus of REJECT.
    """

    kind: FaultKind
    count: int | None = 1
    probability: float = 1.0
    endpoints: frozenset[str] = field(default_factory=frozenset)
    status: int = 503
    reason: str = "insufficientAvailableFunds"

    def __post_init__(self) -> None:
        if self.count is not None and self.count < 1:
            raise ValueError(f"fault {self.kind}: count must be >= 1 or None, got {self.count}")
        if not 0 < self.probability <= 1:
            raise ValueError(f"fault {self.kind}: probability must be in (0, 1]")
        if self.status and not 500 <= self.status <= 599:
            raise ValueError(
                f"fault {self.kind}: status must be 5xx or 0 (drop), got {self.status}"
            )

    def matches(self, endpoint: str) -> bool:
        return not self.endpoints or endpoint in self.endpoints


class CostBudget:
    """Kraken's limiter: at most `limit` cost units spent in any `window_s` seconds."""

    def __init__(
        self, limit: int = 500, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._spent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def try_spend(self, cost: int) -> bool:
        """Spend cost if the window has room; False (nothing spent) when it would exceed."""
        with self._lock:
            now = self._clock()
            while self._spent and self._spent[0][0] <= now - self.window_s:
                self._spent.popleft()
            if sum(c for _, c in self._spent) + cost > self.limit:
                return False
            self._spent.append((now, cost))
            return True

    def reset(self) -> None:
        with self._lock:
            self._spent.clear()


class Faults:
    """The simulator's fault switches. Thread-safe."""

    def __init__(
        self,
        rules: Iterable[FaultRule] = (),
        *,
        latency_ms: float = 0.0,
        timeout_s: float = 2.0,
        seed: int = 0,
        rate_budget: int | None = 500,
        rate_window_s: float = 10.0,
    ) -> None:
        """timeout_s: how long TIMEOUT and SLOW_ACK hold a request (beyond the client's
        timeout). rate_budget=None switches Kraken's cost limiter off."""
        self.latency_ms = latency_ms
        self.timeout_s = timeout_s
        self.budget = CostBudget(rate_budget, rate_window_s) if rate_budget else None
        self._rules = list(rules)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def inject(
        self,
        kind: FaultKind | str,
        count: int | None = 1,
        *,
        endpoints: Iterable[str] = (),
        probability: float = 1.0,
        status: int = 503,
        reason: str = "insufficientAvailableFunds",
    ) -> FaultRule:
        """Add a rule (see FaultRule); REJECT hits sendorder unless endpoints say otherwise."""
        kind = FaultKind(kind)
        names = frozenset(endpoints)
        if kind is FaultKind.REJECT and not names:
            names = frozenset({"sendorder"})
        rule = FaultRule(kind, count, probability, names, status, reason)
        self.add(rule)
        return rule

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """Remove every rule (latency and the cost budget stay as they are)."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def draw(self, endpoint: str) -> FaultRule | None:
        """The fault this request meets, if any; consumes one count of that rule."""
        with self._lock:
            for i, rule in enumerate(self._rules):
                if not rule.matches(endpoint):
                    continue
                if rule.probability < 1 and self._rng.random() >= rule.probability:
                    continue
                if rule.count is not None:
                    if rule.count == 1:
                        del self._rules[i]
                    else:
                        self._rules[i] = replace(rule, count=rule.count - 1)
                return rule
            return None


def parse_fault_spec(spec: str) -> FaultRule:
    """A rule from `KIND[=ARG][:N|:pP|:always][@ENDPOINT,...]`.

    Examples: `server_error` (next request), `server_error=502:3` (next three,
    HTTP 502), `rate_limit:p0.1` (10 % of requests, forever), `ack_lost=drop@sendorder`
    (next sendorder carried out, connection dropped), `reject=wouldNotReducePosition`.
    Refuses unknown kinds and malformed counts with the accepted forms.
    """
    head, _, where = spec.partition("@")
    head, _, amount = head.partition(":")
    name, _, arg = head.partition("=")
    try:
        kind = FaultKind(name.strip())
    except ValueError:
        raise ValueError(
            f"--fault {spec!r}: unknown kind {name!r}; use one of {[k.value for k in FaultKind]}"
        ) from None
    count: int | None = 1
    probability = 1.0
    amount = amount.strip()
    try:
        if amount == "always":
            count = None
        elif amount.startswith("p"):
            count, probability = None, float(amount[1:])
        elif amount:
            count = int(amount)
    except ValueError:
        raise ValueError(
            f"--fault {spec!r}: count must be N, pP (probability) or 'always'"
        ) from None
    endpoints = frozenset(e.strip() for e in where.split(",") if e.strip())
    if kind is FaultKind.REJECT and not endpoints:
        endpoints = frozenset({"sendorder"})
    status, reason = 503, "insufficientAvailableFunds"
    if arg and kind is FaultKind.REJECT:
        reason = arg
    elif arg:
        status = 0 if arg == "drop" else int(arg)
    return FaultRule(kind, count, probability, endpoints, status, reason)
