"""The cycle dashboard (core/dashboard.py) as a trader reads it: account, equity chart,
positions with signed stop/TP distances from the mark, gate funnel, orders, errors; and
the unprotected count the alert uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.dashboard import (
    CycleView,
    EquityMark,
    GateFunnel,
    MarketError,
    OrderLine,
    distance,
    markdown,
    sparkline,
    text,
)
from core.orders import PositionSide
from core.summary import count_unprotected
from core.system_state import initial_record
from tests.unit.positions.position_builders import filled, protected

T0 = datetime(2025, 2, 24, tzinfo=UTC)


def view(**over) -> CycleView:
    fields = dict(
        cycle_id=7, venue="sim", clock=T0, duration_s=2.5, summary_line="CYCLE_END cycle_id=7",
        equity=345.0, margin_used=100.0, margin_utilization=0.29, high_water=350.0,
        drawdown=0.0143, state=initial_record(T0),
        equity_24h=tuple(EquityMark(T0 - timedelta(hours=3 - i), 340.0 + i, 350.0)
                         for i in range(4)),
        positions=(protected("p1", symbol="BTC/USD:USD"),
                   filled("p2", symbol="ETH/USD:USD", side=PositionSide.SHORT)),
        marks={"BTC/USD:USD": 100.0, "ETH/USD:USD": 100.0},
        funnel=GateFunnel(43, (("data", 43), ("daily bias", 43), ("structure", 25),
                               ("regime", 22), ("OTE", 3), ("risk", 3)), 3,
                          (("4H_STRUCTURE_REQUIRED", 18), ("entry not in OTE/Key Fib", 19))),
        intents_approved=1, intents_refused=2, orders_placed=5, orders_cancelled=1,
        orders=(OrderLine("place_stop", "BTC/USD:USD", "sell", 10.0, 90.0, "acknowledged",
                          None),),
        errors=(MarketError("XRP/USD:USD", "ohlcv", "timeout"),),
    )
    return CycleView(**(fields | over))


def test_distance_is_signed_from_the_mark():
    assert distance(100.0, 90.0) == -0.1
    assert distance(100.0, 110.0) == 0.1
    assert distance(None, 90.0) is None and distance(100.0, None) is None


def test_the_text_shows_account_equity_positions_funnel_orders_and_errors():
    lines = text(view())
    joined = "\n".join(lines)
    assert "account: equity 345.00, margin used 100.00 (29.0%)" in joined
    assert "drawdown 1.4%" in joined
    assert lines[2].startswith("equity 24 h: ▁▃▆█ 340.00 -> 343.00")
    assert "positions: 2 (as last recorded by a cycle)" in lines
    btc = next(line for line in lines if line.startswith("position BTC/USD:USD long 10.0"))
    assert "(order s-p1) -10.00% from mark 100.0" in btc  # the stop 10 % below the mark
    assert "tp1 110.0 (t1-p1) +10.00%" in btc
    eth = next(line for line in lines if line.startswith("position ETH/USD:USD short"))
    assert "NOT WORKING (no stop order): UNPROTECTED +10.00% from mark" in eth
    assert ("gate funnel: 43 markets -> data 43 -> daily bias 43 -> structure 25 -> regime 22"
            " -> OTE 3 -> risk 3 -> signals 3") in lines
    assert "intents: 1 approved, 2 refused; orders: placed 5, cancelled 1" in lines
    assert "  place_stop BTC/USD:USD sell 10 @ 90: acknowledged" in lines
    assert "  XRP/USD:USD [ohlcv]: timeout" in lines


def test_the_markdown_embeds_the_chart_and_marks_an_unprotected_position():
    md = markdown(view(), "data:image/png;base64,AAAA")
    assert md.startswith("## Cycle 7 · sim · 2025-02-24 00:00 UTC")
    assert "![equity, last 24 h](data:image/png;base64,AAAA)" in md
    assert "| BTC/USD:USD | long | 10 | 100 | 100 | 90 (-10.00%) working |" in md
    assert "| ETH/USD:USD | short |" in md and "**UNPROTECTED**" in md
    assert "110 (+10.00%)" in md  # TP1 of the long, 10 % above the mark
    assert "| 43 | 43 | 43 | 25 | 22 | 3 | 3 | 3 |" in md
    assert "`4H_STRUCTURE_REQUIRED` 18" in md
    assert "| XRP/USD:USD | ohlcv | timeout |" in md
    # without a chart (fewer than two marks) the sparkline stands in
    assert "![" not in markdown(view(equity_24h=()), None)


def test_sparkline_scales_between_low_and_high():
    assert sparkline([1.0, 2.0, 3.0]) == "▁▅█"
    assert sparkline([5.0, 5.0]) == "▅▅"
    assert sparkline([]) == ""


def test_count_unprotected_counts_open_positions_without_a_working_stop():
    positions = [protected("a"), filled("b"), filled("c")]
    assert count_unprotected(positions) == 2
    assert count_unprotected([protected("a")]) == 0
