"""Typed actions: each type has its own fields, describe() handles them all, client ids."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.actions import (
    ACTION_CLASSES,
    MAX_CLIENT_ID,
    ActionType,
    Cancel,
    CloseRecord,
    Flatten,
    ImportPosition,
    MoveStop,
    NoAction,
    PlaceEntry,
    PlaceStop,
    PlaceTp,
    client_id_for,
    describe,
)
from core.orders import OrderSide, OrderType, PositionSide

ONE_OF_EACH = [
    PlaceEntry("p1", "PF_XBTUSD", OrderSide.BUY, OrderType.MARKET, 1.0, "p1-en-0"),
    PlaceStop("p1", "PF_XBTUSD", OrderSide.SELL, 1.0, 90.0, "p1-sl-0"),
    PlaceTp("p1", "PF_XBTUSD", OrderSide.SELL, 2, 1.0, 120.0, "p1-tp2-0"),
    MoveStop("p1", "PF_XBTUSD", OrderSide.SELL, 1.0, 100.0, "s1", "p1-mv-1"),
    Cancel("p1", "PF_XBTUSD", "closed", venue_order_id="t1"),
    Flatten("PF_XBTUSD", "kill switch"),
    CloseRecord("p1", "PF_XBTUSD", "ORPHAN"),
    ImportPosition("imp-1", "PF_XBTUSD", PositionSide.LONG, 1.0, 100.0),
    NoAction("nothing to do"),
]


def test_there_is_one_action_class_per_action_type() -> None:
    assert set(ACTION_CLASSES) == set(ActionType)
    assert {type(a) for a in ONE_OF_EACH} == set(ACTION_CLASSES.values())


def test_flatten_declares_no_side_and_no_size() -> None:
    # its client id comes from the one scheme; the venue's position decides side and size
    names = {f.name for f in fields(Flatten)}
    assert names == {"symbol", "reason", "client_id", "position_id"}


@pytest.mark.parametrize("action", ONE_OF_EACH, ids=lambda a: a.action_type.value)
def test_describe_handles_every_action_type_and_is_json_ready(action: object) -> None:
    out = describe(action)  # type: ignore[arg-type]
    assert out["action"] == action.action_type.value  # type: ignore[attr-defined]
    assert {"symbol", "side", "position_id", "client_id"} <= out.keys()
    assert out["side"] is not None
    json.dumps(out)


def test_describe_shows_a_missing_side_as_unknown() -> None:
    assert describe(Flatten("PF_XBTUSD", "x"))["side"] == "unknown"
    assert describe(NoAction("x"))["side"] == "unknown"
    assert describe(PlaceStop("p", "S", OrderSide.SELL, 1.0, 9.0, "c"))["side"] == "sell"


def test_describe_refuses_what_is_not_an_action() -> None:
    with pytest.raises(TypeError):
        describe({"action": "flatten"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Cancel("p1", "S", "x"),
        lambda: PlaceEntry("p1", "S", OrderSide.BUY, OrderType.LIMIT, 1.0, "c"),
        lambda: PlaceEntry("p1", "S", OrderSide.BUY, OrderType.STOP, 1.0, "c"),
        lambda: PlaceTp("p1", "S", OrderSide.SELL, 4, 1.0, 1.0, "c"),
        lambda: PlaceStop("p1", "S", OrderSide.SELL, 0.0, 1.0, "c"),
    ],
)
def test_actions_refuse_fields_that_make_no_sense(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_client_ids_are_readable_and_deterministic() -> None:
    assert client_id_for("p1", ActionType.PLACE_STOP) == "p1-sl-0"
    assert client_id_for("p1", ActionType.PLACE_TP, level=3, attempt=2) == "p1-tp3-2"
    assert client_id_for("p1", ActionType.MOVE_STOP, attempt=1) == "p1-mv-1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action_type": ActionType.CANCEL}, "no client id"),
        ({"action_type": ActionType.PLACE_TP}, "level is required"),
        ({"action_type": ActionType.PLACE_STOP, "level": 1}, "level is required"),
        ({"action_type": ActionType.PLACE_STOP, "attempt": -1}, "attempt"),
    ],
)
def test_client_id_for_refuses_inputs_without_an_order(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        client_id_for("p1", **kwargs)


ORDER_TYPES = [ActionType.PLACE_ENTRY, ActionType.PLACE_STOP, ActionType.MOVE_STOP]
# A tiny alphabet of the id's own separators and codes makes near-collisions likely.
position_ids = st.one_of(
    st.text(alphabet="a-_sl0tp1mv~/", min_size=1, max_size=12),
    st.text(min_size=1, max_size=150),
)
keys = st.one_of(
    st.tuples(
        position_ids,
        st.sampled_from(ORDER_TYPES),
        st.none(),
        st.integers(0, 10**6),
    ),
    st.tuples(
        position_ids,
        st.just(ActionType.PLACE_TP),
        st.sampled_from([1, 2, 3]),
        st.integers(0, 10**6),
    ),
)


@given(a=keys, b=keys)
def test_client_ids_fit_100_chars_and_distinct_inputs_get_distinct_ids(a: tuple, b: tuple) -> None:
    ida = client_id_for(a[0], a[1], level=a[2], attempt=a[3])
    idb = client_id_for(b[0], b[1], level=b[2], attempt=b[3])
    assert 1 <= len(ida) <= MAX_CLIENT_ID
    assert ida == client_id_for(a[0], a[1], level=a[2], attempt=a[3])
    assert (ida == idb) == (a == b)
