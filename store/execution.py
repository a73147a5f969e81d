"""Persistence of the execution side: the write-ahead log, positions, fills, venue state.

Every function writes in its own short transaction, so a process killed at any
point leaves each table either before or after a change, never half of one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

import duckdb

from core.actions import ActionType
from core.orders import Fill, PositionSide
from core.positions import Position, PositionEvent, PositionState, TpSlot
from core.wal import FINAL_STATES, IntentEntry, IntentState
from store.db import one, transaction

# -- write-ahead log ----------------------------------------------------------------------


def save_intent(con: duckdb.DuckDBPyConnection, entry: IntentEntry, cycle_id: int | None) -> None:
    """Insert or update one intent (its state moves only through core.wal.advance)."""
    with transaction(con):
        con.execute(
            """
            INSERT INTO wal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (intent_id) DO UPDATE SET
                state = excluded.state, updated_at = excluded.updated_at,
                venue_order_id = excluded.venue_order_id, reason = excluded.reason
            """,
            [
                entry.intent_id,
                str(entry.action_type),
                entry.symbol,
                entry.side,
                entry.client_id,
                entry.payload,
                str(entry.state),
                entry.created_at,
                entry.updated_at,
                entry.venue_order_id,
                entry.reason,
                cycle_id,
            ],
        )


def _intent(row: tuple[Any, ...]) -> IntentEntry:
    (iid, action, symbol, side, cid, payload, state, created, updated, vid, reason) = row
    return IntentEntry(
        intent_id=iid,
        action_type=ActionType(action),
        symbol=symbol,
        side=side,
        client_id=cid,
        payload=payload,
        state=IntentState(state),
        created_at=created,
        updated_at=updated,
        venue_order_id=vid,
        reason=reason,
    )


_INTENT_COLUMNS = (
    "intent_id, action_type, symbol, side, client_id, payload, state, created_at, "
    "updated_at, venue_order_id, reason"
)


def unresolved_intents(con: duckdb.DuckDBPyConnection) -> list[IntentEntry]:
    """Every intent not yet acknowledged or rejected, oldest first."""
    finals = [str(s) for s in FINAL_STATES]
    rows = con.execute(
        f"SELECT {_INTENT_COLUMNS} FROM wal WHERE NOT list_contains(?, state) "
        "ORDER BY created_at, intent_id",
        [finals],
    ).fetchall()
    return [_intent(r) for r in rows]


def intent(con: duckdb.DuckDBPyConnection, intent_id: str) -> IntentEntry | None:
    row = one(con.execute(
        f"SELECT {_INTENT_COLUMNS} FROM wal WHERE intent_id = ?",
        [intent_id],
    ))
    return _intent(row) if row else None


def intents_by_client_id(con: duckdb.DuckDBPyConnection) -> dict[str, IntentEntry]:
    rows = con.execute(f"SELECT {_INTENT_COLUMNS} FROM wal WHERE client_id IS NOT NULL").fetchall()
    return {r[4]: _intent(r) for r in rows}


# -- positions ----------------------------------------------------------------------------


def _encode(position: Position) -> str:
    data = asdict(position)
    data["side"] = str(position.side)
    data["state"] = str(position.state)
    data["opened_at"] = position.opened_at.isoformat()
    return json.dumps(data, sort_keys=True)


def decode_position(text: str) -> Position:
    data = json.loads(text)
    known = {f.name for f in fields(Position)}
    data = {k: v for k, v in data.items() if k in known}
    data["side"] = PositionSide(data["side"])
    data["state"] = PositionState(data["state"])
    data["opened_at"] = datetime.fromisoformat(data["opened_at"])
    data["tps"] = tuple(TpSlot(**slot) for slot in data["tps"])
    return Position(**data)


def save_positions(con: duckdb.DuckDBPyConnection, positions: list[Position]) -> None:
    if not positions:
        return
    with transaction(con):
        _put_positions(con, positions)


def _put_positions(con: duckdb.DuckDBPyConnection, positions: list[Position]) -> None:
    now = datetime.now(UTC)
    rows = []
    for p in positions:
        ids, prices = p.tp_order_ids, p.tp_prices
        rows.append(
            [
                p.position_id,
                p.symbol,
                str(p.side),
                str(p.state),
                p.size,
                p.entry_price,
                p.stop_price,
                p.stop_order_id,
                ids[1],
                ids[2],
                ids[3],
                prices[1],
                prices[2],
                prices[3],
                p.imported,
                p.opened_at,
                now,
                p.close_reason,
                _encode(p),
            ]
        )
    con.executemany(
        "INSERT OR REPLACE INTO positions VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def live_positions(con: duckdb.DuckDBPyConnection) -> list[Position]:
    """Every position record not in a terminal state."""
    rows = con.execute(
        "SELECT record FROM positions "
        "WHERE state NOT IN ('closed', 'entry_rejected', 'entry_cancelled') ORDER BY position_id"
    ).fetchall()
    return [decode_position(r[0]) for r in rows]


def position(con: duckdb.DuckDBPyConnection, position_id: str) -> Position | None:
    row = one(con.execute(
        "SELECT record FROM positions WHERE position_id = ?", [position_id]
    ))
    return decode_position(row[0]) if row else None


def record_events(
    con: duckdb.DuckDBPyConnection, events: list[PositionEvent], cycle_id: int | None
) -> None:
    if not events:
        return
    with transaction(con):
        _put_events(con, events, cycle_id)


def _put_events(
    con: duckdb.DuckDBPyConnection, events: list[PositionEvent], cycle_id: int | None
) -> None:
    now = datetime.now(UTC)
    row = one(con.execute("SELECT coalesce(max(seq), 0) FROM position_events"))
    start = int(row[0]) if row else 0
    con.executemany(
        "INSERT INTO position_events VALUES (?, ?, ?, ?, ?, ?)",
        [
            [
                start + i + 1,
                now,
                cycle_id,
                e.position_id,
                type(e).__name__,
                json.dumps(asdict(e), default=str),
            ]
            for i, e in enumerate(events)
        ],
    )


# -- fills --------------------------------------------------------------------------------


def new_fills(con: duckdb.DuckDBPyConnection, fills: list[Fill]) -> list[Fill]:
    """The fills not seen before (a fill is applied to a position exactly once)."""
    if not fills:
        return []
    ids = [f.fill_id for f in fills]
    seen = {
        r[0]
        for r in con.execute(
            "SELECT fill_id FROM fills WHERE list_contains(?, fill_id)", [ids]
        ).fetchall()
    }
    return [f for f in fills if f.fill_id not in seen]


def save_fills(
    con: duckdb.DuckDBPyConnection,
    fills: list[tuple[Fill, str | None]],
    cycle_id: int | None,
) -> None:
    """Record fills with the position each was applied to (None: not ours)."""
    if not fills:
        return
    with transaction(con):
        _put_fills(con, fills, cycle_id)


def _put_fills(
    con: duckdb.DuckDBPyConnection, fills: list[tuple[Fill, str | None]], cycle_id: int | None
) -> None:
    con.executemany(
        "INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                f.fill_id,
                f.venue_order_id,
                f.client_id,
                f.symbol,
                str(f.side),
                f.size,
                f.price,
                f.fee,
                f.ts,
                pid,
                cycle_id,
            ]
            for f, pid in fills
        ],
    )


def save_progress(
    con: duckdb.DuckDBPyConnection,
    positions: list[Position],
    events: list[PositionEvent],
    fills: list[tuple[Fill, str | None]],
    cycle_id: int | None,
) -> None:
    """Positions, the events applied to them and the fills those events came from, in one
    transaction: a crash leaves all of them or none, so a fill is never marked seen without
    having been applied to its position (nor applied twice)."""
    if not (positions or events or fills):
        return
    with transaction(con):
        if positions:
            _put_positions(con, positions)
        if events:
            _put_events(con, events, cycle_id)
        if fills:
            _put_fills(con, fills, cycle_id)


def last_fill_time(con: duckdb.DuckDBPyConnection) -> datetime | None:
    row = one(con.execute("SELECT max(ts) FROM fills"))
    return row[0] if row else None


# -- small state --------------------------------------------------------------------------


def get_value(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = one(con.execute("SELECT value FROM kv WHERE key = ?", [key]))
    return row[0] if row else None


def set_value(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    with transaction(con):
        con.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", [key, value])


def load_venue_state(con: duckdb.DuckDBPyConnection, venue: str) -> bytes | None:
    row = one(con.execute("SELECT blob FROM venue_state WHERE venue = ?", [venue]))
    return bytes(row[0]) if row else None


def save_venue_state(con: duckdb.DuckDBPyConnection, venue: str, blob: bytes) -> None:
    with transaction(con):
        con.execute(
            "INSERT OR REPLACE INTO venue_state VALUES (?, ?, ?)", [venue, datetime.now(UTC), blob]
        )
