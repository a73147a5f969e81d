"""Strict reading of JSON-shaped data: every key expected, each value of its type.

A saved paper account is read field by field through `JsonObject`; the first
thing wrong raises PaperStateError naming where it is (`engine.orders[3].status`)
and what is wrong with it, so a damaged or foreign snapshot never half-restores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import TypeVar

from venues.paper.errors import PaperStateError

E = TypeVar("E", bound=StrEnum)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def as_list(value: object, where: str) -> list[object]:
    """value as a list; refuses anything else."""
    if not isinstance(value, list):
        raise PaperStateError(where, f"expected a list, got {_kind(value)}")
    return value


def as_mapping(value: object, where: str) -> dict[str, object]:
    """value as an object with string keys (any keys); refuses anything else."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise PaperStateError(where, f"expected an object, got {_kind(value)}")
    return value


class JsonObject:
    """One object of the snapshot with exactly the keys expected."""

    def __init__(self, value: object, where: str, keys: Iterable[str]) -> None:
        """Refuses a non-object, a missing key and a key nobody reads (PaperStateError)."""
        if not isinstance(value, dict):
            raise PaperStateError(where, f"expected an object, got {_kind(value)}")
        expected = keys if isinstance(keys, frozenset) else frozenset(keys)
        if value.keys() != expected:  # one comparison in the common case; details when not
            missing = sorted(expected - value.keys())
            if missing:
                raise PaperStateError(where, f"missing {missing}")
            unknown = sorted(map(str, value.keys() - expected))
            raise PaperStateError(where, f"unknown keys {unknown} (written by a newer version?)")
        self.data: dict[str, object] = value
        self.where = where

    def at(self, key: str) -> str:
        return f"{self.where}.{key}"

    def raw(self, key: str) -> object:
        return self.data[key]

    def integer(self, key: str, minimum: int | None = None) -> int:
        value = self.data[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise PaperStateError(self.at(key), f"expected an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise PaperStateError(self.at(key), f"{value} is below {minimum}")
        return value

    def number(self, key: str, *, positive: bool = False) -> float:
        """A finite float (an integer is accepted); positive=True also refuses <= 0."""
        value = self.data[key]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise PaperStateError(self.at(key), f"expected a number, got {_kind(value)}")
        if not math.isfinite(value):
            raise PaperStateError(self.at(key), f"{value} is not finite")
        if positive and value <= 0:
            raise PaperStateError(self.at(key), f"{value} must be positive")
        return float(value)

    def optional_number(self, key: str, *, positive: bool = False) -> float | None:
        return None if self.data[key] is None else self.number(key, positive=positive)

    def text(self, key: str) -> str:
        value = self.data[key]
        if not isinstance(value, str) or not value:
            raise PaperStateError(self.at(key), f"expected a non-empty string, got {_kind(value)}")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self.data[key] is None else self.text(key)

    def flag(self, key: str) -> bool:
        value = self.data[key]
        if not isinstance(value, bool):
            raise PaperStateError(self.at(key), f"expected true or false, got {_kind(value)}")
        return value

    def time(self, key: str) -> datetime:
        """An ISO-8601 time with its UTC offset; refuses a naive time."""
        value = self.text(key)
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise PaperStateError(self.at(key), f"{value!r} is not an ISO-8601 time") from None
        if ts.tzinfo is None:
            raise PaperStateError(self.at(key), f"{value!r} has no UTC offset")
        return ts

    def optional_time(self, key: str) -> datetime | None:
        return None if self.data[key] is None else self.time(key)

    def choice(self, key: str, kind: type[E]) -> E:
        value = self.data[key]
        member = _members(kind).get(value) if isinstance(value, str) else None
        if member is None:
            allowed = [m.value for m in kind]
            raise PaperStateError(self.at(key), f"{value!r} is not one of {allowed}")
        return member

    def items(self, key: str) -> list[object]:
        return as_list(self.data[key], self.at(key))

    def mapping(self, key: str) -> dict[str, object]:
        return as_mapping(self.data[key], self.at(key))

    def child(self, key: str, keys: Iterable[str]) -> JsonObject:
        return JsonObject(self.data[key], self.at(key), keys)


@cache
def _members(kind: type[E]) -> dict[str, E]:
    return {m.value: m for m in kind}


def write_time(ts: datetime | None) -> str | None:
    """ISO-8601 with the offset; what JsonObject.time reads back to an equal datetime."""
    return None if ts is None else ts.isoformat()
