"""The plotly figures of the backtest HTML: the equity and drawdown curves, and per market
its candles with swings, BOS/CHoCH, the OTE zone and the entries and exits of its trades."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from plotly import graph_objects as go
from plotly.subplots import make_subplots

from core.backtest_result import BacktestResult
from core.metrics import TradeRecord
from core.orders import PositionSide
from core.smc.timeframes import duration
from reports.cells import pct, usd
from reports.curves import drawdown_curve
from reports.plotly_page import TEMPLATE, epoch_ms
from reports.smc_overlays import MarketOverlays
from reports.trade_marks import Mark, TradeMarks

UP, DOWN, NEUTRAL = "#26a69a", "#ef5350", "#7f7f7f"
# Trace names, in the order every market figure holds them (tests and readers rely on it).
CANDLES = "candles"
SWING_HIGHS = "swing highs"
SWING_LOWS = "swing lows"
BOS = "BOS"
CHOCH = "CHoCH"
OTE_ZONE = "OTE zone"
ENTRIES = "entries"
EXITS = "exits"
TRADES = "trades"
STRUCTURE_TRACES = (CANDLES, SWING_HIGHS, SWING_LOWS, BOS, CHOCH, OTE_ZONE)
TRADE_TRACES = (ENTRIES, EXITS, TRADES)
EQUITY, DRAWDOWN = "equity", "drawdown %"


def _ms(moment: datetime) -> float:
    return moment.timestamp() * 1000.0


def equity_figure(result: BacktestResult) -> go.Figure:
    """Equity (top) and drawdown in % of the running peak (bottom) on one UTC time axis."""
    curve = drawdown_curve(result.equity)
    m = result.metrics
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=(0.7, 0.3))
    x = epoch_ms(curve["ts"])
    figure.add_trace(
        go.Scatter(x=x, y=curve["equity"].to_numpy(), name=EQUITY, line={"width": 1.4}),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=x,
            y=curve["drawdown_pct"].to_numpy() * 100,
            name=DRAWDOWN,
            fill="tozeroy",
            line={"width": 1, "color": DOWN},
        ),
        row=2,
        col=1,
    )
    figure.update_layout(
        template=TEMPLATE,
        height=520,
        title=(
            f"Equity: net {usd(m.net_profit_usd, signed=True)} USD "
            f"({pct(m.net_profit_pct, signed=True)}), max drawdown "
            f"{usd(m.max_drawdown_usd)} USD ({pct(m.max_drawdown_pct)})"
        ),
        margin={"t": 60, "b": 40},
    )
    figure.update_xaxes(type="date")
    figure.update_yaxes(title_text="USD", row=1, col=1)
    figure.update_yaxes(title_text="%", row=2, col=1)
    return figure


def _candles(o: MarketOverlays) -> go.Candlestick:
    c = o.candles
    return go.Candlestick(
        x=epoch_ms(c["ts"]),
        open=c["open"].to_numpy(),
        high=c["high"].to_numpy(),
        low=c["low"].to_numpy(),
        close=c["close"].to_numpy(),
        name=CANDLES,
        increasing={"line": {"color": UP, "width": 1}},
        decreasing={"line": {"color": DOWN, "width": 1}},
    )


def _swings(o: MarketOverlays, side: str) -> go.Scatter:
    s = o.swings.filter(pl.col("side") == side)
    text = [
        f"swing {side} {p:.6g}<br>known at {k:%Y-%m-%d %H:%M}"
        for p, k in zip(s["price"], s["confirmed_at"], strict=True)
    ]
    return go.Scatter(
        x=epoch_ms(s["ts"]),
        y=s["price"].to_numpy(),
        mode="markers",
        name=SWING_HIGHS if side == "high" else SWING_LOWS,
        marker={
            "symbol": "triangle-down" if side == "high" else "triangle-up",
            "size": 7,
            "color": "#555",
        },
        hovertext=text,
        hoverinfo="text",
    )


def _breaks(o: MarketOverlays, kind: str, name: str, dash: str) -> go.Scatter:
    """Each break a segment at the broken level, from the swing's pivot to the breaking bar."""
    x: list[float | None] = []
    y: list[float | None] = []
    text: list[str] = []
    for ts, from_ts, level, direction in (
        o.breaks.filter(pl.col("kind") == kind)
        .select("ts", "from_ts", "level", "direction")
        .iter_rows()
    ):
        start = _ms(from_ts) if from_ts is not None else _ms(ts)
        label = f"{name} {'up' if direction > 0 else 'down'} through {level:.6g}"
        x += [start, _ms(ts), None]
        y += [level, level, None]
        text += [label, label, ""]
    return go.Scatter(
        x=x,
        y=y,
        mode="lines",
        name=name,
        line={"color": "#1565c0" if kind == "BOS" else "#8e24aa", "dash": dash, "width": 1.5},
        hovertext=text,
        hoverinfo="text",
    )


def _ote_zone(o: MarketOverlays) -> go.Scatter:
    """One rectangle per run of bars with the same OTE bounds (a leg), all in one filled
    trace: a few hundred vertices instead of three values per bar. A bar's zone is drawn
    from its close (known_at) to the next close, when the engine could act on it."""
    bar = duration(o.timeframe)
    changed = (pl.col("top") != pl.col("top").shift()) | (
        pl.col("bottom") != pl.col("bottom").shift()
    )
    runs = (
        o.ote.with_columns(_run=changed.fill_null(True).cum_sum())
        .group_by("_run", maintain_order=True)
        .agg(
            pl.col("ts").first().alias("first"),
            pl.col("ts").last().alias("last"),
            pl.col("top").first(),
            pl.col("bottom").first(),
        )
        .filter(pl.col("top").is_not_null() & pl.col("bottom").is_not_null())
    )
    x: list[float | None] = []
    y: list[float | None] = []
    for first, last, top, bottom in runs.select("first", "last", "top", "bottom").iter_rows():
        x0, x1 = _ms(first + bar), _ms(last + 2 * bar)
        x += [x0, x1, x1, x0, x0, None]
        y += [bottom, bottom, top, top, bottom, None]
    return go.Scatter(
        x=x,
        y=y,
        mode="lines",
        fill="toself",
        name=OTE_ZONE,
        line={"width": 0},
        fillcolor="rgba(255, 193, 7, 0.25)",
        hoverinfo="skip",
    )


def _marks(marks: tuple[Mark, ...], name: str, what: str) -> go.Scatter:
    if what == "entry":
        symbols = [
            "triangle-up" if m.trade.side is PositionSide.LONG else "triangle-down" for m in marks
        ]
        colors = [UP if m.trade.side is PositionSide.LONG else DOWN for m in marks]
    else:
        symbols = ["x"] * len(marks)
        colors = [UP if m.trade.pnl > 0 else DOWN if m.trade.pnl < 0 else NEUTRAL for m in marks]
    return go.Scatter(
        x=[_ms(m.ts) for m in marks],
        y=[m.price for m in marks],
        mode="markers",
        name=name,
        marker={
            "symbol": symbols,
            "color": colors,
            "size": 11,
            "line": {"width": 1, "color": "#222"},
        },
        hovertext=[m.label(what) for m in marks],
        hoverinfo="text",
    )


def _trade_lines(trades: tuple[TradeRecord, ...]) -> go.Scatter:
    x: list[float | None] = []
    y: list[float | None] = []
    for t in trades:
        x += [_ms(t.entry_ts), _ms(t.exit_ts), None]
        y += [t.entry_price, t.exit_price, None]
    return go.Scatter(
        x=x,
        y=y,
        mode="lines",
        name=TRADES,
        line={"color": "#333", "dash": "dot", "width": 1},
        hoverinfo="skip",
    )


def market_figure(
    symbol: str, overlays: MarketOverlays | None, marks: TradeMarks, note: str | None = None
) -> go.Figure:
    """The market's chart: STRUCTURE_TRACES when candles were given, then TRADE_TRACES.

    Without overlays (no or refused candles) only the trades are drawn and `note` says why.
    """
    figure = go.Figure()
    if overlays is not None:
        figure.add_traces(
            [
                _candles(overlays),
                _swings(overlays, "high"),
                _swings(overlays, "low"),
                _breaks(overlays, "BOS", BOS, "solid"),
                _breaks(overlays, "CHOCH", CHOCH, "dash"),
                _ote_zone(overlays),
            ]
        )
    figure.add_traces(
        [
            _marks(marks.entries, ENTRIES, "entry"),
            _marks(marks.exits, EXITS, "exit"),
            _trade_lines(marks.trades),
        ]
    )
    timeframe = overlays.timeframe if overlays is not None else "no candles"
    title = f"{symbol} ({timeframe}): {len(marks.trades)} trades"
    if note:
        title += f"<br><sup>{note}</sup>"
    figure.update_layout(
        template=TEMPLATE,
        height=560,
        title=title,
        xaxis={"type": "date", "rangeslider": {"visible": False}},
        yaxis={"title": "price"},
        legend={"orientation": "h", "y": -0.08},
        margin={"t": 70, "b": 40},
        hovermode="closest",
    )
    return figure
