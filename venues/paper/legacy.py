"""One-time conversion of a pickled paper account (saved before the JSON format).

Until format 1 the cycle saved `pickle.dumps((engine, done_until))`. Unpickling
runs whatever the blob names, so call this only on a blob this project wrote
into its own store, once, and save the JSON it returns in its place.
"""

from __future__ import annotations

import pickle
from datetime import datetime

from venues.paper.account import PaperAccountState
from venues.paper.engine import PaperEngine
from venues.paper.errors import PaperStateError

PICKLE_MAGIC = b"\x80"  # the protocol opcode every pickle since protocol 2 starts with


def is_pickled(blob: bytes | str) -> bool:
    """True for a blob in the pickled layout (from before the JSON format)."""
    return isinstance(blob, bytes) and blob[:1] == PICKLE_MAGIC


def from_pickle(blob: bytes, *, timeframe: str) -> PaperAccountState:
    """The account a pickled `(PaperEngine, done_until)` blob holds, followed on `timeframe`
    bars with every engine market under its own symbol (how the cycle built its driver).

    Refuses a blob that does not unpickle to that pair (PaperStateError).
    """
    try:
        saved = pickle.loads(blob)  # our own store's blob, read once to convert it
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError, ValueError) as exc:
        raise PaperStateError("venue_state", f"pickled account unreadable: {exc}") from None
    if not (isinstance(saved, tuple) and len(saved) == 2 and isinstance(saved[0], PaperEngine)):
        raise PaperStateError("venue_state", "the pickle does not hold (PaperEngine, done_until)")
    engine, done_until = saved
    if done_until is not None and not isinstance(done_until, datetime):
        raise PaperStateError("venue_state", f"done_until is {type(done_until).__name__}")
    return PaperAccountState(
        engine=engine.snapshot(),
        timeframe=timeframe,
        done_until=done_until,
        symbols={m.symbol: m.symbol for m in engine.markets()},
    )
