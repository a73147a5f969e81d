"""Fault switches: parsed from the command line, consumed in order, deterministic with a seed."""

from __future__ import annotations

import pytest

from venues.kraken_sim import CostBudget, FaultKind, Faults, parse_fault_spec


@pytest.mark.parametrize(
    ("spec", "kind", "count", "probability", "endpoints", "status"),
    [
        ("server_error", FaultKind.SERVER_ERROR, 1, 1.0, set(), 503),
        ("server_error=502:3", FaultKind.SERVER_ERROR, 3, 1.0, set(), 502),
        ("rate_limit:p0.25", FaultKind.RATE_LIMIT, None, 0.25, set(), 503),
        (
            "ack_lost=drop@sendorder,cancelorder",
            FaultKind.ACK_LOST,
            1,
            1.0,
            {"sendorder", "cancelorder"},
            0,
        ),
        ("timeout:always@fills", FaultKind.TIMEOUT, None, 1.0, {"fills"}, 503),
    ],
)
def test_fault_specs_parse(spec, kind, count, probability, endpoints, status):
    rule = parse_fault_spec(spec)
    assert (rule.kind, rule.count, rule.probability) == (kind, count, probability)
    assert (set(rule.endpoints), rule.status) == (endpoints, status)


def test_reject_spec_names_the_status_and_defaults_to_sendorder():
    rule = parse_fault_spec("reject=wouldNotReducePosition")
    assert (rule.reason, set(rule.endpoints)) == ("wouldNotReducePosition", {"sendorder"})


@pytest.mark.parametrize("spec", ["explode", "server_error:many", "server_error=200"])
def test_bad_fault_specs_are_refused_with_the_accepted_forms(spec):
    with pytest.raises(ValueError, match="fault"):
        parse_fault_spec(spec)


def test_counted_faults_hit_the_next_matching_requests_then_stop():
    faults = Faults()
    faults.inject(FaultKind.SERVER_ERROR, 2, endpoints=["sendorder"])
    assert faults.draw("openorders") is None
    assert [faults.draw("sendorder") is not None for _ in range(3)] == [True, True, False]


def test_probabilistic_faults_repeat_with_the_same_seed():
    def pattern(seed: int) -> list[bool]:
        faults = Faults(seed=seed)
        faults.inject(FaultKind.SERVER_ERROR, None, probability=0.3)
        return [faults.draw("tickers") is not None for _ in range(200)]

    assert pattern(4) == pattern(4)
    assert pattern(4) != pattern(5)
    assert 30 < sum(pattern(4)) < 90


def test_cost_budget_allows_500_per_10_seconds():
    now = [0.0]
    budget = CostBudget(500, 10.0, clock=lambda: now[0])
    assert all(budget.try_spend(10) for _ in range(50))  # 50 sendorders
    assert not budget.try_spend(10)  # the 51st within 10 s
    now[0] = 10.01
    assert budget.try_spend(10)
