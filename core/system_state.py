"""System state machine (SPEC §8): NORMAL -> DEGRADED -> HALTED, as a table.

Pure apart from the log line of a transition. The caller persists each returned
record (with its history) and feeds the last one back after a restart, so a HALT
survives restarts; only `operator_resume` leaves HALTED.

A record changes only on a transition (or an operator action); between
transitions `next_state` returns the same record and the report carries the live
values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from core.errors import TraderError
from core.invariants import InvariantReport, Verdict, format_value

log = logging.getLogger(__name__)


class SystemState(StrEnum):
    NORMAL = "NORMAL"  # trading
    DEGRADED = "DEGRADED"  # no new entries; open positions managed
    HALTED = "HALTED"  # kill switch: no trading; stops kept


class StateEvent(StrEnum):
    CLEAR = "clear"  # the report has no DEGRADED or HALT verdict
    DEGRADE = "degrade"  # worst verdict DEGRADED
    HALT = "halt"  # some verdict HALT
    OPERATOR_HALT = "operator_halt"
    RESUME_CLEAR = "resume_clear"  # operator resume, report clear
    RESUME_DEGRADED = "resume_degraded"  # operator resume, report DEGRADED
    RESUME_FORCED = "resume_forced"  # operator resume over a holding halt condition


S, E = SystemState, StateEvent

# (state, event) -> next state. A pair not listed is refused (InvalidTransitionError).
TRANSITIONS: dict[tuple[SystemState, StateEvent], SystemState] = {
    (S.NORMAL, E.CLEAR): S.NORMAL,
    (S.NORMAL, E.DEGRADE): S.DEGRADED,
    (S.NORMAL, E.HALT): S.HALTED,
    (S.NORMAL, E.OPERATOR_HALT): S.HALTED,
    (S.DEGRADED, E.CLEAR): S.NORMAL,
    (S.DEGRADED, E.DEGRADE): S.DEGRADED,
    (S.DEGRADED, E.HALT): S.HALTED,
    (S.DEGRADED, E.OPERATOR_HALT): S.HALTED,
    # HALTED ignores every report: only the operator leaves it.
    (S.HALTED, E.CLEAR): S.HALTED,
    (S.HALTED, E.DEGRADE): S.HALTED,
    (S.HALTED, E.HALT): S.HALTED,
    (S.HALTED, E.OPERATOR_HALT): S.HALTED,
    (S.HALTED, E.RESUME_CLEAR): S.NORMAL,
    (S.HALTED, E.RESUME_DEGRADED): S.DEGRADED,
    # A forced resume lands in DEGRADED (no new entries); the next HALT verdict re-halts.
    (S.HALTED, E.RESUME_FORCED): S.DEGRADED,
}

del S, E


class SafetyStateError(TraderError):
    """A state-machine request was refused; the state is unchanged."""


class InvalidTransitionError(SafetyStateError):
    """The event is not allowed in the current state (e.g. resume while not halted)."""


class ResumeRefusedError(SafetyStateError):
    """Resume refused: a halt condition still holds and force was not given."""


@dataclass(frozen=True, slots=True)
class SystemStateRecord:
    """The state since `since`, why it was entered, and who acted if an operator did."""

    state: SystemState
    since: datetime
    cause: str
    event: StateEvent | None = None  # None for the initial record
    values: Mapping[str, float] = field(default_factory=dict)
    who: str | None = None  # operator actions only
    why: str | None = None  # operator actions only
    forced: bool = False

    def __post_init__(self) -> None:
        # Read-only copy: a persisted record must not change under its owner.
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))


def initial_record(ts: datetime) -> SystemStateRecord:
    """The record of a system that has never run: NORMAL since `ts`."""
    return SystemStateRecord(state=SystemState.NORMAL, since=ts, cause="initial state")


def event_for(report: InvariantReport) -> StateEvent:
    """The monitor event a report raises: HALT, DEGRADE or CLEAR (WARN is CLEAR)."""
    verdict = report.verdict
    if verdict is Verdict.HALT:
        return StateEvent.HALT
    if verdict is Verdict.DEGRADED:
        return StateEvent.DEGRADE
    return StateEvent.CLEAR


def transition(state: SystemState, event: StateEvent) -> SystemState:
    """The next state from the table; refuses a pair the table does not list."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError(
            f"{event} is not allowed in state {state}; allowed there: "
            f"{sorted(e for (s, e) in TRANSITIONS if s is state)}"
        ) from None


def next_state(
    current: SystemStateRecord, report: InvariantReport, ts: datetime
) -> SystemStateRecord:
    """The record after this cycle's report: `current` itself when the state holds."""
    event = event_for(report)
    state = transition(current.state, event)
    if state is current.state:
        return current
    record = SystemStateRecord(
        state=state,
        since=ts,
        cause=_cause(report, event),
        event=event,
        values=report.values,
    )
    _log_entry(record)
    return record


def operator_halt(
    current: SystemStateRecord, reason: str, who: str, ts: datetime
) -> SystemStateRecord:
    """HALTED by an operator. Halting a halted system keeps its `since` and its cause.

    Refuses (ValueError) an empty reason or operator name.
    """
    _require_text(who=who, reason=reason)
    state = transition(current.state, StateEvent.OPERATOR_HALT)
    already = current.state is SystemState.HALTED
    cause = f"operator halt: {reason}"
    record = SystemStateRecord(
        state=state,
        since=current.since if already else ts,
        # Keep the original cause of an existing halt: the operator adds, never hides.
        cause=f"{current.cause}; {cause}" if already else cause,
        event=StateEvent.OPERATOR_HALT,
        values=current.values,
        who=who,
        why=reason,
    )
    _log_entry(record)
    return record


def operator_resume(
    current: SystemStateRecord,
    report: InvariantReport,
    *,
    who: str,
    why: str,
    force: bool,
    ts: datetime,
) -> SystemStateRecord:
    """Leave HALTED: NORMAL on a clear report, DEGRADED on a degraded or forced one.

    Refuses: InvalidTransitionError when not HALTED; ResumeRefusedError while
    `report` still holds a HALT verdict and `force` is false; ValueError for an
    empty who/why. A forced resume over a holding condition re-halts on the next
    cycle unless the condition was removed (e.g. the high-water mark re-based).
    """
    _require_text(who=who, why=why)
    halt_cause = report.cause(Verdict.HALT)
    event = _resume_event(report, forced=bool(halt_cause))
    state = transition(current.state, event)  # refuses first when not HALTED
    if halt_cause and not force:
        raise ResumeRefusedError(
            f"resume refused: halt condition still holds ({halt_cause}); "
            "fix it, or resume with force if you accept an immediate re-halt risk"
        )
    record = SystemStateRecord(
        state=state,
        since=ts,
        cause=f"operator resume: {why}",
        event=event,
        values=report.values,
        who=who,
        why=why,
        forced=bool(halt_cause),
    )
    forced_note = f" (forced over: {halt_cause})" if halt_cause else ""
    log.warning("RESUMED to %s by %s: %s%s", state, who, why, forced_note)
    return record


def status_lines(report: InvariantReport, record: SystemStateRecord) -> list[str]:
    """Lines for `trader status`: state, cause, operator, then each invariant vs its levels."""
    lines = [
        f"state: {record.state} since {record.since.isoformat()}",
        f"cause: {record.cause}",
    ]
    if record.who is not None:
        forced = " (forced)" if record.forced else ""
        lines.append(f"operator: {record.who}: {record.why}{forced}")
    lines.append(f"equity high-water: {report.equity_high_water:.2f}")
    for check in report.checks:
        levels = ", ".join(
            f"{t.verdict} {t.bound} {format_value(check.name, t.level)}"
            + (f" ({t.parameter})" if t.parameter else "")
            for t in check.thresholds
        )
        lines.append(
            f"invariant {check.name}: {format_value(check.name, check.value)} "
            f"[{levels}] -> {check.verdict}"
        )
    return lines


def _resume_event(report: InvariantReport, *, forced: bool) -> StateEvent:
    if forced:
        return StateEvent.RESUME_FORCED
    if report.verdict is Verdict.DEGRADED:
        return StateEvent.RESUME_DEGRADED
    return StateEvent.RESUME_CLEAR


def _cause(report: InvariantReport, event: StateEvent) -> str:
    if event is StateEvent.HALT:
        return report.cause(Verdict.HALT)
    if event is StateEvent.DEGRADE:
        return report.cause(Verdict.DEGRADED)
    return "every degraded condition cleared"


def _log_entry(record: SystemStateRecord) -> None:
    # The leading words are the stable strings operators grep for (SPEC §10).
    if record.state is SystemState.HALTED:
        log.error("Kill switch active: %s", record.cause)
    elif record.state is SystemState.DEGRADED:
        log.warning("DEGRADED: no new entries: %s", record.cause)
    else:
        log.info("NORMAL: %s", record.cause)


def _require_text(**fields: str) -> None:
    empty = [name for name, text in fields.items() if not text or not text.strip()]
    if empty:
        raise ValueError(f"operator action needs a non-empty {' and '.join(empty)}")
