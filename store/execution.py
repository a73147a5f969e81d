"""Persistence of the execution side: the write-ahead log, positions, fills, venue state.

Every function writes in its own short transaction, so a process killed at any
point leaves each table either before or after a change, never half of one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

import duckdb

from core.actions import ActionType
from core.engine.state import check_move
from core.orders import Fill, OrderSide, PositionSide
from core.position_events import PositionEvent
from core.positions import TERMINAL_STATES, Position, PositionState, TpSlot
from core.reconcile import OrderOwner
from core.wal import (
    FINAL_STATES,
    IntentEntry,
    IntentState,
)
from store.db import one, transaction

# -- write-ahead log ----------------------------------------------------------------------


def save_intent(con: duckdb.DuckDBPyConnection, entry: IntentEntry, cycle_id: int | None) -> None:
    """Insert a new intent, or move a stored one along the log's transition table.

    Refuses (InvalidIntentTransition, nothing written) a move the table forbids from the
    stored state, which includes re-inserting an id already in the log: an intent is
    never overwritten, so an acknowledged order's venue id can never be lost.
    """
    with transaction(con):
        check_move(entry, intent(con, entry.intent_id))
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


def orders_placed(con: duckdb.DuckDBPyConnection, cycle_id: int) -> int:
    """Orders the venue accepted from intents logged in this cycle (across task retries)."""
    row = one(con.execute(
        "SELECT count(*) FROM wal WHERE cycle_id = ? AND state = 'acknowledged' "
        "AND client_id IS NOT NULL",
        [cycle_id],
    ))
    return int(row[0]) if row else 0


def stop_sends(con: duckdb.DuckDBPyConnection, cycle_id: int) -> dict[str, int]:
    """Stop orders (placements and moves) the log recorded per position in one cycle."""
    rows = con.execute(
        "SELECT json_extract_string(payload, '$.position_id'), count(*) FROM wal "
        "WHERE cycle_id = ? AND action_type IN ('place_stop', 'move_stop') GROUP BY 1",
        [cycle_id],
    ).fetchall()
    return {str(pid): int(n) for pid, n in rows if pid is not None}


def intents_by_client_id(con: duckdb.DuckDBPyConnection) -> dict[str, IntentEntry]:
    rows = con.execute(f"SELECT {_INTENT_COLUMNS} FROM wal WHERE client_id IS NOT NULL").fetchall()
    return {r[4]: _intent(r) for r in rows}


# -- positions ----------------------------------------------------------------------------


def _encode(position: Position) -> str:
    data = asdict(position)
    data["side"] = str(position.side)
    data["state"] = str(position.state)
    data["opened_at"] = position.opened_at.isoformat()
    if position.size_basis_ts is not None:
        data["size_basis_ts"] = position.size_basis_ts.isoformat()
    return json.dumps(data, sort_keys=True)


def decode_position(text: str) -> Position:
    data = json.loads(text)
    known = {f.name for f in fields(Position)}
    data = {k: v for k, v in data.items() if k in known}
    data["side"] = PositionSide(data["side"])
    data["state"] = PositionState(data["state"])
    data["opened_at"] = datetime.fromisoformat(data["opened_at"])
    data["tps"] = tuple(TpSlot(**slot) for slot in data["tps"])
    data["exit_fills"] = tuple((str(k), float(v)) for k, v in data.get("exit_fills", ()))
    if data.get("size_basis_ts"):
        data["size_basis_ts"] = datetime.fromisoformat(data["size_basis_ts"])
    return Position(**data)


def save_positions(
    con: duckdb.DuckDBPyConnection, positions: list[Position], at: datetime
) -> None:
    """Insert or replace position records, stamped `at` (the cycle's decision time)."""
    if not positions:
        return
    with transaction(con):
        _put_positions(con, positions, at)


def _put_positions(
    con: duckdb.DuckDBPyConnection, positions: list[Position], now: datetime
) -> None:
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
                p.unprotected_cycles,
                p.realised_pnl,
            ]
        )
    con.executemany(
        f"INSERT OR REPLACE INTO positions ({_POSITION_COLUMNS}) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


_POSITION_COLUMNS = (
    "position_id, symbol, side, state, size, entry_price, stop_price, stop_order_id, "
    "tp1_order_id, tp2_order_id, tp3_order_id, tp1_price, tp2_price, tp3_price, imported, "
    "opened_at, updated_at, close_reason, record, unprotected_cycles, realised_pnl"
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
    con: duckdb.DuckDBPyConnection,
    events: list[PositionEvent],
    cycle_id: int | None,
    at: datetime,
) -> None:
    if not events:
        return
    with transaction(con):
        _put_events(con, events, cycle_id, at)


def _put_events(
    con: duckdb.DuckDBPyConnection,
    events: list[PositionEvent],
    cycle_id: int | None,
    now: datetime,
) -> None:
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
    at: datetime,
) -> None:
    """Positions, the events applied to them and the fills those events came from, in one
    transaction: a crash leaves all of them or none, so a fill is never marked seen without
    having been applied to its position (nor applied twice)."""
    if not (positions or events or fills):
        return
    with transaction(con):
        if positions:
            _put_positions(con, positions, at)
        if events:
            _put_events(con, events, cycle_id, at)
        if fills:
            _put_fills(con, fills, cycle_id)


def fills_of_order(con: duckdb.DuckDBPyConnection, venue_order_id: str) -> list[Fill]:
    """Every stored fill of one venue order, in time order."""
    rows = con.execute(
        "SELECT fill_id, venue_order_id, client_id, symbol, side, size, price, fee, ts "
        "FROM fills WHERE venue_order_id = ? ORDER BY ts, fill_id",
        [venue_order_id],
    ).fetchall()
    return [
        Fill(fid, vid, cid, sym, OrderSide(side), size, price, fee, ts)
        for fid, vid, cid, sym, side, size, price, fee, ts in rows
    ]


def order_owners(con: duckdb.DuckDBPyConnection) -> dict[str, OrderOwner]:
    """Every client id the log ever sent an order under, with the record that owns it and
    whether that record is closed (terminal) or absent (an order of no record, e.g. a kill
    switch stop for a position not yet imported)."""
    rows = con.execute(
        "SELECT w.client_id, json_extract_string(w.payload, '$.position_id'), p.state "
        "FROM wal w LEFT JOIN positions p "
        "ON p.position_id = json_extract_string(w.payload, '$.position_id') "
        "WHERE w.client_id IS NOT NULL"
    ).fetchall()
    terminal = {str(s) for s in TERMINAL_STATES}
    return {
        cid: OrderOwner(pid, recorded=state is not None, closed=state in terminal)
        for cid, pid, state in rows
    }


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


def save_venue_state(
    con: duckdb.DuckDBPyConnection, venue: str, blob: bytes, at: datetime
) -> None:
    with transaction(con):
        con.execute("INSERT OR REPLACE INTO venue_state VALUES (?, ?, ?)", [venue, at, blob])
