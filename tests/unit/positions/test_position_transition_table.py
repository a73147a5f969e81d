"""The position machine follows its table exactly: every (state, event) pair is tried."""

from __future__ import annotations

import pytest
from position_builders import in_state, sample_events

from core.positions import (
    _HANDLERS,
    EVENT_TYPES,
    TERMINAL_STATES,
    TRANSITIONS,
    EntryFilled,
    EventForOtherPosition,
    InvalidTransition,
    PositionState,
    TpFilled,
    apply,
)

PAIRS = [(s, e) for s in PositionState for e in EVENT_TYPES]


@pytest.mark.parametrize(("state", "event_type"), PAIRS, ids=lambda x: getattr(x, "__name__", x))
def test_every_state_event_pair_follows_the_table_or_raises(
    state: PositionState, event_type: type
) -> None:
    position = in_state(state)
    allowed = TRANSITIONS.get((state, event_type))
    for event in sample_events(event_type, position):
        if allowed is None:
            with pytest.raises(InvalidTransition):
                apply(position, event)  # type: ignore[arg-type]
        else:
            new, _actions = apply(position, event)  # type: ignore[arg-type]
            assert new.state in allowed, f"{state} + {event} -> {new.state}"


def test_table_rows_name_known_states_and_events_and_every_event_has_a_handler() -> None:
    for (state, event_type), targets in TRANSITIONS.items():
        assert state in PositionState
        assert event_type in EVENT_TYPES
        assert targets and all(t in PositionState for t in targets)
    assert set(_HANDLERS) == set(EVENT_TYPES)


def test_terminal_states_never_lead_back_to_an_open_state() -> None:
    for (state, _event), targets in TRANSITIONS.items():
        if state in TERMINAL_STATES:
            assert targets == {state}
    assert not any(s is PositionState.ENTRY_REJECTED for s, _ in TRANSITIONS)
    assert not any(s is PositionState.ENTRY_CANCELLED for s, _ in TRANSITIONS)


def test_every_non_terminal_state_can_be_left() -> None:
    for state in set(PositionState) - TERMINAL_STATES:
        assert any(s is state and targets != {state} for (s, _), targets in TRANSITIONS.items())


def test_an_event_for_another_position_is_refused_before_any_change() -> None:
    p = in_state(PositionState.PENDING_ENTRY)
    with pytest.raises(EventForOtherPosition):
        apply(p, EntryFilled("someone-else", 10.0, 100.0))


def test_a_tp_level_outside_1_to_3_is_an_invalid_transition() -> None:
    p = in_state(PositionState.PROTECTED)
    with pytest.raises(InvalidTransition, match="TP level 4"):
        apply(p, TpFilled(p.position_id, 4, 1.0, 110.0))
