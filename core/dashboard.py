"""The cycle at a glance, for a trader: account, equity, positions, gate funnel, orders,
errors. One model, two renderings: markdown (the Prefect artifact) and text (`trader
status`). Pure: the store builds the model (store/dashboard.py), the chart image is made
elsewhere (tasks/charts.py) and passed in as a URI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.positions import Position
from core.system_state import SystemStateRecord

SPARK = "▁▂▃▄▅▆▇█"
MAX_ORDER_LINES = 25


@dataclass(frozen=True, slots=True)
class EquityMark:
    ts: datetime  # the cycle's clock time
    equity: float
    high_water: float


@dataclass(frozen=True, slots=True)
class GateFunnel:
    """Markets through each gate of this cycle, in gate order, and why the others stopped."""

    evaluated: int
    through: tuple[tuple[str, int], ...]
    signals: int
    rejections: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One intent of this cycle in the write-ahead log."""

    action: str
    symbol: str | None
    side: str
    size: float | None
    price: float | None
    state: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class MarketError:
    symbol: str
    stage: str
    error: str


@dataclass(frozen=True, slots=True)
class CycleView:
    cycle_id: int
    venue: str
    clock: datetime
    duration_s: float | None
    summary_line: str | None
    equity: float | None
    margin_used: float | None
    margin_utilization: float | None
    high_water: float | None
    drawdown: float | None
    state: SystemStateRecord
    equity_24h: tuple[EquityMark, ...]
    positions: tuple[Position, ...]  # records not yet terminal, as the cycle left them
    marks: Mapping[str, float]  # symbol -> last price seen by this cycle
    funnel: GateFunnel
    intents_approved: int
    intents_refused: int
    orders_placed: int | None
    orders_cancelled: int | None
    orders: tuple[OrderLine, ...]
    errors: tuple[MarketError, ...]


def distance(mark: float | None, level: float | None) -> float | None:
    """Signed move from the mark to `level`, as a fraction of the mark (None if unknown)."""
    if mark is None or level is None or mark <= 0:
        return None
    return (level - mark) / mark


def _pct(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2%}" if signed else f"{value:.1%}"


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def position_line(p: Position, mark: float | None = None) -> str:
    """`position SYMBOL side size @ entry [state]: stop ...; tp1 ..., tp2 ..., tp3 ...`,
    each level with its signed distance from the mark when the mark is known."""
    entry = f"{p.entry_price}" if p.entry_price is not None else "pending"
    away = "" if mark is None else f" {_pct(distance(mark, p.stop_price))} from mark {mark}"
    if p.stop_order_id is not None:
        stop = f"stop {p.stop_price} for {p.stop_size} (order {p.stop_order_id}){away}"
    else:
        stop = f"stop {p.stop_price} NOT WORKING (no stop order): UNPROTECTED{away}"
    tps = ", ".join(
        f"tp{t.level} {t.price} ({'filled' if t.filled else t.order_id or 'no order'})"
        + ("" if mark is None or t.filled else f" {_pct(distance(mark, t.price))}")
        for t in p.tps
        if t.price is not None
    )
    return f"position {p.symbol} {p.side} {p.size} @ {entry} [{p.state}]: {stop}; {tps or 'no TPs'}"


def sparkline(values: Sequence[float]) -> str:
    """One character per value, scaled between the series' low and high."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    if span <= 0:
        return SPARK[len(SPARK) // 2] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int((v - low) / span * len(SPARK)))] for v in values)


def _equity_change(view: CycleView) -> str:
    marks = view.equity_24h
    if len(marks) < 2:
        return f"{len(marks)} mark(s)"
    first, last = marks[0].equity, marks[-1].equity
    change = (last - first) / first if first else 0.0
    return f"{first:.2f} -> {last:.2f} ({change:+.2%}) over {len(marks)} cycles"


def _funnel_text(f: GateFunnel) -> str:
    steps = " -> ".join(f"{name} {n}" for name, n in f.through)
    return f"{f.evaluated} markets -> {steps} -> signals {f.signals}"


def _order_text(o: OrderLine) -> str:
    size = "" if o.size is None else f" {o.size:g}"
    price = "" if o.price is None else f" @ {o.price:g}"
    reason = f" ({o.reason})" if o.reason else ""
    return f"{o.action} {o.symbol or '-'} {o.side}{size}{price}: {o.state}{reason}"


def _open(view: CycleView) -> list[Position]:
    return [p for p in view.positions if p.is_open]


def text(view: CycleView) -> list[str]:
    """The dashboard as terminal lines (what `trader status` prints after the state)."""
    lines = [
        f"cycle {view.cycle_id} ({view.venue}) at {view.clock:%Y-%m-%d %H:%M} UTC, "
        f"took {_num(view.duration_s, '{:.1f}')} s",
        f"account: equity {_num(view.equity)}, margin used {_num(view.margin_used)} "
        f"({_pct(view.margin_utilization, signed=False)}), high-water {_num(view.high_water)}, "
        f"drawdown {_pct(view.drawdown, signed=False)}, state {view.state.state}",
        f"equity 24 h: {sparkline([m.equity for m in view.equity_24h])} {_equity_change(view)}",
        f"positions: {len(view.positions)} (as last recorded by a cycle)",
    ]
    lines += [position_line(p, view.marks.get(p.symbol)) for p in view.positions]
    f = view.funnel
    lines.append(f"gate funnel: {_funnel_text(f)}")
    if f.rejections:
        lines.append("  stopped by: " + ", ".join(f"{r} {n}" for r, n in f.rejections))
    lines.append(
        f"intents: {view.intents_approved} approved, {view.intents_refused} refused; "
        f"orders: placed {_num(view.orders_placed, '{}')}, "
        f"cancelled {_num(view.orders_cancelled, '{}')}"
    )
    lines += [f"  {_order_text(o)}" for o in view.orders[:MAX_ORDER_LINES]]
    if len(view.orders) > MAX_ORDER_LINES:
        lines.append(f"  ... {len(view.orders) - MAX_ORDER_LINES} more (SQL: wal)")
    lines.append(f"markets errored: {len(view.errors) or 'none'}")
    lines += [f"  {e.symbol} [{e.stage}]: {e.error}" for e in view.errors]
    return lines


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _tp_cell(p: Position, level: int, mark: float | None) -> str:
    tp = p.tps[level - 1]
    if tp.price is None:
        return "-"
    if tp.filled:
        return f"{tp.price:g} filled"
    return f"{tp.price:g} ({_pct(distance(mark, tp.price), signed=True)})" + (
        "" if tp.order_id else " no order"
    )


def _position_rows(view: CycleView) -> list[list[object]]:
    rows = []
    for p in view.positions:
        mark = view.marks.get(p.symbol)
        stop = "working" if p.stop_order_id else "**UNPROTECTED**"
        rows.append([
            p.symbol, p.side, f"{p.size:g}", _num(p.entry_price, "{:g}"), _num(mark, "{:g}"),
            f"{p.stop_price:g} ({_pct(distance(mark, p.stop_price))}) {stop}",
            *[_tp_cell(p, level, mark) for level in (1, 2, 3)],
        ])
    return rows


def markdown(view: CycleView, equity_chart_uri: str | None) -> str:
    """The dashboard as one markdown artifact; the chart is an image when given."""
    s = view.state
    parts = [
        f"## Cycle {view.cycle_id} · {view.venue} · {view.clock:%Y-%m-%d %H:%M} UTC",
        f"**{s.state}** since {s.since:%Y-%m-%d %H:%M} UTC: {s.cause}",
        _table(
            ["equity", "margin used", "margin util.", "high-water", "drawdown", "took"],
            [[
                _num(view.equity), _num(view.margin_used),
                _pct(view.margin_utilization, signed=False), _num(view.high_water),
                _pct(view.drawdown, signed=False), f"{_num(view.duration_s, '{:.1f}')} s",
            ]],
        ),
        f"### Equity, last 24 h ({_equity_change(view)})",
        f"![equity, last 24 h]({equity_chart_uri})"
        if equity_chart_uri
        else sparkline([m.equity for m in view.equity_24h]) or "no marks yet",
        f"### Positions ({len(_open(view))} open)",
        _table(
            ["symbol", "side", "size", "entry", "mark", "stop (from mark)", "TP1", "TP2", "TP3"],
            _position_rows(view),
        )
        if view.positions
        else "none",
        "### Gate funnel",
        _table(
            ["markets", *[name for name, _ in view.funnel.through], "signals"],
            [[view.funnel.evaluated, *[n for _, n in view.funnel.through], view.funnel.signals]],
        ),
    ]
    if view.funnel.rejections:
        parts.append(
            "Stopped by: " + ", ".join(f"`{r}` {n}" for r, n in view.funnel.rejections)
        )
    parts += [
        f"### Orders: placed {_num(view.orders_placed, '{}')}, cancelled "
        f"{_num(view.orders_cancelled, '{}')} · intents {view.intents_approved} approved, "
        f"{view.intents_refused} refused",
        _table(
            ["action", "symbol", "side", "size", "price", "state", "reason"],
            [
                [o.action, o.symbol or "-", o.side, _num(o.size, "{:g}"), _num(o.price, "{:g}"),
                 o.state, o.reason or ""]
                for o in view.orders[:MAX_ORDER_LINES]
            ],
        )
        if view.orders
        else "none",
        f"### Markets errored ({len(view.errors)})",
        _table(["symbol", "stage", "error"], [[e.symbol, e.stage, e.error] for e in view.errors])
        if view.errors
        else "none",
    ]
    if view.summary_line:
        parts.append(f"`{view.summary_line}`")
    return "\n\n".join(parts) + "\n"
