"""Positions in every state, and representative events, for the position tests."""

from __future__ import annotations

from datetime import UTC, datetime

from core.orders import Order, OrderSide, OrderStatus, OrderType, PositionSide
from core.positions import (
    CloseRequested,
    EntryCancelled,
    EntryFilled,
    EntryPartiallyFilled,
    EntryRejected,
    FlattenFilled,
    Position,
    PositionGone,
    PositionState,
    SizeCorrected,
    StopCancelled,
    StopFilled,
    StopMissing,
    StopMoved,
    StopPlaced,
    StopRejected,
    TpCancelled,
    TpFilled,
    TpPlaced,
    TpRejected,
    apply,
    open_position,
)
from core.reconcile import ImportProtection, MarketGrid

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SYMBOL = "PF_XBTUSD"
GRID = MarketGrid(tick_size=0.5, lot_size=1.0)


def pending(
    pid: str = "p1",
    *,
    symbol: str = SYMBOL,
    side: PositionSide = PositionSide.LONG,
    size: float = 10.0,
) -> Position:
    long = side is PositionSide.LONG
    position, _ = open_position(
        position_id=pid,
        symbol=symbol,
        side=side,
        size=size,
        stop_price=90.0 if long else 110.0,
        tp_prices=(110.0, 120.0, 130.0) if long else (90.0, 80.0, 70.0),
        tp_fractions=(0.5, 0.3, 0.2),
        tick_size=GRID.tick_size,
        lot_size=GRID.lot_size,
        opened_at=T0,
    )
    return position


def filled(
    pid: str = "p1",
    *,
    symbol: str = SYMBOL,
    side: PositionSide = PositionSide.LONG,
    size: float = 10.0,
) -> Position:
    p = pending(pid, symbol=symbol, side=side, size=size)
    return apply(p, EntryFilled(pid, p.requested_size, 100.0))[0]


def protected(
    pid: str = "p1",
    *,
    symbol: str = SYMBOL,
    side: PositionSide = PositionSide.LONG,
    size: float = 10.0,
) -> Position:
    """PROTECTED with stop s-<pid> and TPs t1/t2/t3-<pid> working."""
    p = filled(pid, symbol=symbol, side=side, size=size)
    p = apply(p, StopPlaced(pid, f"s-{pid}", p.stop_price, p.size))[0]
    for t in p.tps:
        assert t.price is not None
        p = apply(p, TpPlaced(pid, t.level, f"t{t.level}-{pid}", t.price, t.size))[0]
    return p


def in_state(
    state: PositionState,
    pid: str = "p1",
    *,
    symbol: str = SYMBOL,
    side: PositionSide = PositionSide.LONG,
) -> Position:
    kw = {"symbol": symbol, "side": side}

    def after(p: Position, event: object) -> Position:
        return apply(p, event)[0]  # type: ignore[arg-type]

    builders = {
        PositionState.PENDING_ENTRY: lambda: pending(pid, **kw),
        PositionState.OPEN_UNPROTECTED: lambda: filled(pid, **kw),
        PositionState.PROTECTED: lambda: protected(pid, **kw),
        PositionState.CLOSING: lambda: after(protected(pid, **kw), CloseRequested(pid, "t")),
        PositionState.CLOSED: lambda: after(protected(pid, **kw), StopFilled(pid, 10.0, 90.0)),
        PositionState.ENTRY_REJECTED: lambda: after(pending(pid, **kw), EntryRejected(pid, "x")),
        PositionState.ENTRY_CANCELLED: lambda: after(pending(pid, **kw), EntryCancelled(pid, "x")),
    }
    p = builders[state]()
    assert p.state is state
    return p


def sample_events(event_type: type, p: Position) -> list[object]:
    """Representative events of one type for `p`, covering both sides of each guard."""
    pid = p.position_id
    stop_id = p.stop_order_id or "s-other"
    tp1 = p.tps[0].order_id or "t-other"
    samples: dict[type, list[object]] = {
        EntryPartiallyFilled: [EntryPartiallyFilled(pid, 4.0, 100.0)],
        EntryFilled: [EntryFilled(pid, 10.0, 100.0), EntryFilled(pid, 12.0, 101.0)],
        EntryRejected: [EntryRejected(pid, "refused")],
        EntryCancelled: [EntryCancelled(pid, "expired")],
        StopPlaced: [StopPlaced(pid, "s-new", 90.0, 10.0), StopPlaced(pid, "s-new", 90.0, 4.0)],
        StopMoved: [StopMoved(pid, "s-moved", 95.0, 10.0)],
        StopRejected: [StopRejected(pid, p.stop_client_id, "x"), StopRejected(pid, "c-old", "x")],
        StopCancelled: [StopCancelled(pid, stop_id, "x"), StopCancelled(pid, "s-stale", "x")],
        StopMissing: [StopMissing(pid, "x")],
        StopFilled: [StopFilled(pid, 10.0, 90.0), StopFilled(pid, 4.0, 90.0)],
        TpPlaced: [TpPlaced(pid, 1, "t-new", 110.0, 5.0)],
        TpRejected: [TpRejected(pid, 1, p.tp_client_id(1), "x")],
        TpCancelled: [TpCancelled(pid, 1, tp1, "x"), TpCancelled(pid, 2, "t-stale", "x")],
        TpFilled: [TpFilled(pid, 1, 5.0, 110.0), TpFilled(pid, 3, 10.0, 130.0)],
        CloseRequested: [CloseRequested(pid, "operator")],
        FlattenFilled: [FlattenFilled(pid, 10.0, 100.0), FlattenFilled(pid, 3.0, 100.0)],
        PositionGone: [PositionGone(pid, "gone")],
        SizeCorrected: [SizeCorrected(pid, 6.0, T0, "venue"), SizeCorrected(pid, 14.0, T0, "v")],
    }
    return samples[event_type]


def protection(**grids: MarketGrid) -> ImportProtection:
    return ImportProtection(
        stop_distance_pct=0.02,
        atr_multiple=2.0,
        grids={SYMBOL: GRID, "PF_ETHUSD": MarketGrid(0.05, 0.01), **grids},
    )


def stop_order(
    venue_id: str,
    *,
    symbol: str = SYMBOL,
    side: OrderSide = OrderSide.SELL,
    size: float = 10.0,
    trigger: float = 90.0,
    client_id: str | None = None,
    reduce_only: bool = True,
    order_type: OrderType = OrderType.STOP,
) -> Order:
    return Order(
        venue_order_id=venue_id,
        client_id=client_id,
        symbol=symbol,
        side=side,
        type=order_type,
        size=size,
        filled=0.0,
        status=OrderStatus.OPEN,
        trigger_price=trigger,
        reduce_only=reduce_only,
    )
