"""Which conditions of a finished cycle page a human, and with what text.

Pure: the cycle's summary and the recent cycles in, alerts out. A condition alerts
when it starts (DEGRADED: once it has lasted more than `degraded_cycles`), then again
every `repeat_every_cycles` while it holds, so a halt that lasts a night is a few
messages, not one a minute. Runs that fail never reach this code: the "failed runs"
alert is a Prefect automation on the server (see trader/alerts_setup.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.summary import CycleSummary
from schemas.operations import AlertsConfig

HALTED = "HALTED"
DEGRADED = "DEGRADED"


class AlertKind(StrEnum):
    HALTED = "halted"  # the cycle ended HALTED (kill switch)
    DEGRADED = "degraded"  # DEGRADED for more than N cycles
    UNPROTECTED = "unprotected"  # an open position without a working stop


@dataclass(frozen=True, slots=True)
class PastCycle:
    """What a finished cycle left behind that alerts look at (newest first in a history)."""

    cycle_id: int
    system_state: str | None
    unprotected_positions: int


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    cycle_id: int
    streak: int  # consecutive cycles the condition has held, this one included
    subject: str
    body: str

    @property
    def event_name(self) -> str:
        """The Prefect event of this alert (the automation matches smc-trader.alert.*)."""
        return f"smc-trader.alert.{self.kind}"


def streak(history: Sequence[PastCycle], holds: Callable[[PastCycle], bool]) -> int:
    """Consecutive cycles, newest first, for which `holds(cycle)` is true."""
    count = 0
    for cycle in history:
        if not holds(cycle):
            break
        count += 1
    return count


def is_due(length: int, first_at: int, repeat_every: int) -> bool:
    """True on the cycle a condition reaches `first_at` cycles, then every `repeat_every`."""
    return length >= first_at and (length - first_at) % repeat_every == 0


def _body(summary: CycleSummary, headline: str, detail: str) -> str:
    margin = (
        "n/a" if summary.margin_utilization is None else f"{summary.margin_utilization:.1%}"
    )
    equity = "n/a" if summary.equity is None else f"{summary.equity:.2f}"
    return (
        f"{headline}\n{detail}\n"
        f"cycle {summary.cycle_id} ({summary.venue}) at {summary.clock}: state "
        f"{summary.system_state}, equity {equity}, margin {margin}, "
        f"open positions {summary.open_positions}, unprotected {summary.unprotected_positions}, "
        f"orders placed {summary.orders_placed}, cancelled {summary.orders_cancelled}\n"
        f"{summary.line()}"
    )


def cycle_alerts(
    summary: CycleSummary,
    history: Sequence[PastCycle],
    config: AlertsConfig,
    state_cause: str,
) -> list[Alert]:
    """The alerts this cycle raises. `history` is the finished cycles, newest first, this
    one included; `state_cause` is why the system is in its state (for the text)."""
    rules = (
        (
            AlertKind.HALTED,
            lambda c: c.system_state == HALTED,
            1,
            "ended HALTED: kill switch active, entries cancelled, every stop kept",
            f"cause: {state_cause}. Leave HALTED only with `trader resume --why ...`.",
        ),
        (
            AlertKind.DEGRADED,
            lambda c: c.system_state == DEGRADED,
            config.degraded_cycles + 1,
            "DEGRADED for {n} cycles: no new entries",
            f"cause: {state_cause}",
        ),
        (
            AlertKind.UNPROTECTED,
            lambda c: c.unprotected_positions > 0,
            1,
            f"{summary.unprotected_positions} open position(s) without a working stop",
            "see `trader status` (positions marked UNPROTECTED); the next cycle places "
            "missing stops, check the venue if it persists",
        ),
    )
    alerts = []
    for kind, holds, first_at, headline, detail in rules:
        length = streak(history, holds)
        if not is_due(length, first_at, config.repeat_every_cycles):
            continue
        text = headline.format(n=length)
        subject = f"smc-trader {summary.venue}: cycle {summary.cycle_id} {text}"
        alerts.append(Alert(kind, summary.cycle_id, length, subject, _body(summary, text, detail)))
    return alerts
