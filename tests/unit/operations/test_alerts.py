"""Which cycles page a human (core/alerts.py): a condition alerts when it starts, DEGRADED
only after N cycles, then again every `repeat_every_cycles` while it holds."""

from __future__ import annotations

import pytest

from core.alerts import AlertKind, PastCycle, cycle_alerts, is_due
from core.summary import CycleSummary
from schemas.operations import AlertsConfig

CONFIG = AlertsConfig(degraded_cycles=3, repeat_every_cycles=10)


def summary(cycle_id: int, state: str, unprotected: int = 0) -> CycleSummary:
    return CycleSummary(
        cycle_id=cycle_id, venue="sim", clock="2025-02-24T04:00Z", equity=345.5,
        margin_utilization=0.31, open_positions=2, orders_placed=0, orders_cancelled=3,
        system_state=state, unprotected_positions=unprotected,
    )


def history(states: list[str], unprotected: list[int] | None = None) -> list[PastCycle]:
    """Cycles 1..n with these states (oldest first), returned newest first like the store."""
    unprotected = unprotected or [0] * len(states)
    cycles = [PastCycle(i + 1, s, u) for i, (s, u) in enumerate(zip(states, unprotected,
                                                                     strict=True))]
    return cycles[::-1]


def alerts_for(states: list[str], unprotected: list[int] | None = None):
    past = history(states, unprotected)
    now = past[0]
    return cycle_alerts(summary(now.cycle_id, now.system_state, now.unprotected_positions),
                        past, CONFIG, "operator halt: test")


def test_the_first_halted_cycle_alerts_with_a_useful_body():
    (alert,) = alerts_for(["NORMAL", "HALTED"])
    assert alert.kind is AlertKind.HALTED
    assert alert.event_name == "smc-trader.alert.halted"
    assert "cycle 2" in alert.subject and "HALTED" in alert.subject
    assert "cause: operator halt: test" in alert.body
    assert "equity 345.50" in alert.body and "margin 31.0%" in alert.body
    assert "CYCLE_END cycle_id=2" in alert.body


def test_a_halt_that_holds_is_alerted_again_only_every_repeat_cycles():
    fired = [bool(alerts_for(["NORMAL"] + ["HALTED"] * n)) for n in range(1, 25)]
    assert [n for n, f in enumerate(fired, start=1) if f] == [1, 11, 21]


def test_degraded_alerts_only_once_it_lasted_more_than_n_cycles():
    for n in range(1, CONFIG.degraded_cycles + 1):
        assert alerts_for(["NORMAL"] + ["DEGRADED"] * n) == []
    (alert,) = alerts_for(["NORMAL"] + ["DEGRADED"] * (CONFIG.degraded_cycles + 1))
    assert alert.kind is AlertKind.DEGRADED
    assert f"DEGRADED for {CONFIG.degraded_cycles + 1} cycles" in alert.subject
    # a degraded stretch broken by a NORMAL cycle starts counting again
    assert alerts_for(["DEGRADED"] * 3 + ["NORMAL"] + ["DEGRADED"] * 2) == []


def test_an_unprotected_position_alerts_in_any_state():
    (alert,) = alerts_for(["NORMAL", "NORMAL"], unprotected=[0, 1])
    assert alert.kind is AlertKind.UNPROTECTED
    assert "1 open position(s) without a working stop" in alert.subject
    kinds = {a.kind for a in alerts_for(["NORMAL", "HALTED"], unprotected=[0, 2])}
    assert kinds == {AlertKind.HALTED, AlertKind.UNPROTECTED}


def test_a_normal_protected_cycle_raises_nothing():
    assert alerts_for(["NORMAL"] * 5) == []


@pytest.mark.parametrize(("length", "due"), [(0, False), (1, True), (2, False), (11, True)])
def test_is_due_fires_at_the_start_then_every_repeat(length, due):
    assert is_due(length, first_at=1, repeat_every=10) is due
