"""Fault switches: parsed from the command line, consumed in order, deterministic with a seed."""

from __future__ import annotations

import pytest

from venues.kraken_limits import CostLimiter, ReadRetry, request_cost
from venues.kraken_sim import CostBudget, FaultKind, Faults, parse_fault_spec
from venues.kraken_sim.faults import StopRemainder, WrongSideStops


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


@pytest.mark.parametrize(
    ("spec", "changed"),
    [
        ("partial_stop=0.4,cancel", {"stop_fill_fraction": 0.4, "stop_remainder": "cancel"}),
        ("partial_stop=0.5", {"stop_fill_fraction": 0.5, "stop_remainder": "keep"}),
        (
            "wrong_side_stop=reject",
            {"wrong_side_stops": "reject", "wrong_side_reason": "invalidPrice"},
        ),
        (
            "wrong_side_stop=reject,wouldCauseLiquidation",
            {"wrong_side_reason": "wouldCauseLiquidation"},
        ),
        ("late_fills=3", {"fill_delay_requests": 3, "fill_delay_bars": 0}),
        ("late_fills=2bars", {"fill_delay_requests": 0, "fill_delay_bars": 2}),
    ],
)
def test_exchange_switches_are_set_from_fault_specs(spec, changed):
    faults = Faults()
    faults.apply(spec)
    switches = faults.switches
    assert {k: getattr(switches, k) for k in changed} == changed
    assert faults.rules() == []  # a switch is not a request fault


def test_request_fault_specs_still_add_rules_and_clear_resets_switches():
    faults = Faults()
    faults.apply("rate_limit:p0.3")
    faults.apply("wrong_side_stop=reject")
    assert [r.kind for r in faults.rules()] == [FaultKind.RATE_LIMIT]
    faults.clear()
    assert faults.rules() == []
    assert faults.switches.wrong_side_stops is WrongSideStops.TRIGGER
    assert faults.switches.stop_remainder is StopRemainder.KEEP


@pytest.mark.parametrize("spec", ["partial_stop=1.5", "partial_stop=0.5,later", "late_fills=x"])
def test_bad_switch_specs_are_refused_with_the_accepted_forms(spec):
    with pytest.raises(ValueError, match=r"partial_stop=0\.5"):
        Faults().apply(spec)


def test_the_client_side_limiter_waits_for_room_in_krakens_window():
    now, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = CostLimiter(100, 10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        assert limiter.acquire(10) == 0.0  # 100 units pass at once
    now[0] = 4.0
    waited = limiter.acquire(10)  # the 101st unit waits until the first spend leaves
    assert waited == pytest.approx(6.0) and slept == [pytest.approx(6.0)]
    assert (limiter.stats.requests, limiter.stats.cost, limiter.stats.waits) == (11, 110, 1)
    assert limiter.acquire(0) == 0.0  # public endpoints are free


def test_request_costs_follow_krakens_table():
    assert request_cost("private", "sendorder", {}) == 10
    assert request_cost("private", "openpositions", {}) == 2
    assert request_cost("private", "fills", {"lastFillTime": "2025-01-01T00:00:00Z"}) == 25
    assert request_cost("private", "batchorder", {"batchOrder": [{}, {}, {}]}) == 12
    assert request_cost("public", "tickers", {}) == 0
    assert request_cost("charts", "{price_type}/{symbol}/{interval}", {}) == 0
    assert request_cost("history", "account-log", {}) == 0  # its own pool, not modelled


def test_read_backoff_doubles_to_its_cap_with_jitter():
    import random

    policy = ReadRetry(attempts=5, backoff_s=0.2, backoff_max_s=0.8)
    rng = random.Random(1)
    waits = [policy.delay(k, rng) for k in (1, 2, 3, 4)]
    for wait, full in zip(waits, (0.2, 0.4, 0.8, 0.8), strict=True):
        assert full / 2 <= wait <= full
    with pytest.raises(ValueError):
        ReadRetry(attempts=0)
