"""Fault switches of the simulator and Kraken's request-cost budget.

Two kinds of switch. Request faults strike single HTTP requests (5xx, 429,
timeouts, lost acknowledgements, rejections): `Faults.inject`, `parse_fault_spec`.
Exchange switches change how the exchange behaves until switched back
(`ExchangeSwitches`): triggered stops that fill only partly, stops refused when
their trigger is already on the wrong side of the mark, fills reported late.

Every switch can be set at construction, changed at runtime from a test
(`Faults.inject`, `.partial_stop_fills`, `.refuse_wrong_side_stops`,
`.delay_fill_reports`, `.latency_ms`, `.clear`), or given on the command line
(`--fault SPEC`, see `Faults.apply`). Random draws come from one seeded
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

from venues.kraken_limits import BATCH_BASE_COST, ENDPOINT_COST, FILLS_WITH_LAST_FILL_TIME_COST

__all__ = [
    "BATCH_BASE_COST",
    "ENDPOINT_COST",
    "FILLS_WITH_LAST_FILL_TIME_COST",
    "CostBudget",
    "ExchangeSwitches",
    "FaultKind",
    "FaultRule",
    "Faults",
    "parse_fault_spec",
]


class FaultKind(StrEnum):
    SERVER_ERROR = "server_error"  # HTTP 5xx before anything is done
    RATE_LIMIT = "rate_limit"  # HTTP 429 apiLimitExceeded before anything is done
    TIMEOUT = "timeout"  # no answer until the client gave up; nothing is done
    ACK_LOST = "ack_lost"  # the request is carried out, then answered 5xx or dropped
    SLOW_ACK = "slow_ack"  # the request is carried out, answered after the client gave up
    REJECT = "reject"  # sendorder answered with a rejection status; nothing is placed


class StopRemainder(StrEnum):
    """What becomes of the unfilled rest of a triggered stop-market."""

    KEEP = "keep"  # works on in the following bars until filled or cancelled
    CANCEL = "cancel"  # cancelled at once: Kraken's immediate-or-cancel order after a trigger


class WrongSideStops(StrEnum):
    """A stop or take-profit whose trigger the mark has already passed when it arrives."""

    TRIGGER = "trigger"  # placed; it triggers at the next price and fills at market
    REJECT = "reject"  # refused with sendStatus `reason`; nothing is placed


@dataclass(slots=True)
class ExchangeSwitches:
    """Exchange behaviour switched until switched back (read by SimExchange on every request).

    stop_fill_fraction: a triggered stop fills at most this share of its size per fill
    event (at least one lot); stop_remainder: what then becomes of the rest.
    wrong_side_stops / wrong_side_reason: how a trigger already passed is answered.
    fill_delay_requests / fill_delay_bars: /fills leaves a fill out of the next N /fills
    requests (pages included) or the next N bars after it happened, while /openpositions,
    /openorders and /orders/status already show its effect.
    """

    stop_fill_fraction: float = 1.0
    stop_remainder: StopRemainder = StopRemainder.KEEP
    wrong_side_stops: WrongSideStops = WrongSideStops.TRIGGER
    wrong_side_reason: str = "invalidPrice"
    fill_delay_requests: int = 0
    fill_delay_bars: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.stop_fill_fraction <= 1:
            raise ValueError(f"stop_fill_fraction must be in (0, 1], got {self.stop_fill_fraction}")
        self.stop_remainder = StopRemainder(self.stop_remainder)
        self.wrong_side_stops = WrongSideStops(self.wrong_side_stops)
        if self.fill_delay_requests < 0 or self.fill_delay_bars < 0:
            raise ValueError("fill delays must be >= 0 requests / bars")


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
        self._switches = ExchangeSwitches()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    # -- exchange switches --------------------------------------------------------------

    @property
    def switches(self) -> ExchangeSwitches:
        """A copy of the exchange switches now in force."""
        with self._lock:
            return replace(self._switches)

    def partial_stop_fills(
        self, fraction: float, remainder: StopRemainder | str = StopRemainder.KEEP
    ) -> None:
        """Triggered stops fill at most `fraction` of their size per fill event; the rest
        keeps working ("keep") or is cancelled at once ("cancel", Kraken's IOC after a
        trigger). fraction=1 switches it off."""
        self._switch(stop_fill_fraction=fraction, stop_remainder=StopRemainder(remainder))

    def refuse_wrong_side_stops(self, reason: str = "invalidPrice") -> None:
        """Refuse a stop / take-profit whose trigger the mark has already passed, answering
        sendStatus `reason`; `accept_wrong_side_stops` switches it off."""
        self._switch(wrong_side_stops=WrongSideStops.REJECT, wrong_side_reason=reason)

    def accept_wrong_side_stops(self) -> None:
        self._switch(wrong_side_stops=WrongSideStops.TRIGGER)

    def delay_fill_reports(self, requests: int = 0, bars: int = 0) -> None:
        """/fills reports a fill only after `requests` more /fills requests, or `bars` bars,
        have passed since it happened (both 0: at once)."""
        self._switch(fill_delay_requests=requests, fill_delay_bars=bars)

    def _switch(self, **changes: object) -> None:
        with self._lock:
            self._switches = replace(self._switches, **changes)  # type: ignore[arg-type]

    def apply(self, spec: str) -> None:
        """Apply one `--fault SPEC`: a request fault (see parse_fault_spec) or a switch:
        `partial_stop=FRACTION[,keep|,cancel]`, `wrong_side_stop=reject[,WORD]` (or
        `=trigger`), `late_fills=N` (N /fills requests) or `late_fills=Nbars`.
        Refuses a malformed spec with the accepted forms (ValueError)."""
        name, _, arg = spec.partition("=")
        name = name.strip()
        if name not in SWITCH_SPECS:
            self.add(parse_fault_spec(spec))
            return
        try:
            SWITCH_SPECS[name](self, arg.strip())
        except (ValueError, KeyError) as exc:
            raise ValueError(
                f"--fault {spec!r}: {exc}; use partial_stop=0.5[,keep|,cancel], "
                "wrong_side_stop=reject[,WORD] or =trigger, late_fills=N or late_fills=Nbars"
            ) from None

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
        """Remove every rule and switch the exchange back to normal (latency and the cost
        budget stay as they are)."""
        with self._lock:
            self._rules.clear()
            self._switches = ExchangeSwitches()

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


def _partial_stop(faults: Faults, arg: str) -> None:
    fraction, _, remainder = arg.partition(",")
    faults.partial_stop_fills(float(fraction), StopRemainder(remainder.strip() or "keep"))


def _wrong_side_stop(faults: Faults, arg: str) -> None:
    mode, _, reason = arg.partition(",")
    if WrongSideStops(mode.strip() or "reject") is WrongSideStops.TRIGGER:
        faults.accept_wrong_side_stops()
    else:
        faults.refuse_wrong_side_stops(reason.strip() or "invalidPrice")


def _late_fills(faults: Faults, arg: str) -> None:
    if arg.endswith("bars"):
        faults.delay_fill_reports(bars=int(arg.removesuffix("bars")))
    else:
        faults.delay_fill_reports(requests=int(arg))


SWITCH_SPECS = {
    "partial_stop": _partial_stop,
    "wrong_side_stop": _wrong_side_stop,
    "late_fills": _late_fills,
}
