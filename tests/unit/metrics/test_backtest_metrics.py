"""Report metrics against hand-computed values on a four-trade, four-day run."""

from __future__ import annotations

import dataclasses
import math
import statistics
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from core.metrics import (
    BacktestMetrics,
    BreakdownRow,
    EquityCurve,
    ExitReason,
    TradeRecord,
    compute_metrics,
    daily_returns,
    longest_flat_spell,
    max_drawdown,
)
from core.orders import PositionSide


def at(day: int, hour: int = 0, month: int = 1) -> datetime:
    return datetime(2025, month, day, hour, tzinfo=UTC)


def trade(pid, symbol, entry, exit_, pnl, *, risk, reason, fees=0.0, funding=0.0, side="long"):
    return TradeRecord(
        position_id=pid,
        symbol=symbol,
        side=PositionSide(side),
        entry_ts=entry,
        exit_ts=exit_,
        entry_price=100.0,
        exit_price=101.0,
        size=1.0,
        pnl=pnl,
        fees=fees,
        funding=funding,
        risk=risk,
        exit_reason=ExitReason(reason),
    )


# The equity marks of the run: a 10 500 peak, a dip to 9 975 on the 2nd, no mark on the 4th.
CURVE = EquityCurve(
    ts=(at(1, 0), at(1, 12), at(1, 23), at(2, 6), at(2, 23), at(3, 23), at(5, 0)),
    equity=(10_000.0, 10_500.0, 10_400.0, 9_975.0, 10_200.0, 10_200.0, 10_608.0),
)
# pnl sums to 608 = the curve's final - initial equity.
TRADES = (
    trade("p1", "BTC", at(1, 2), at(1, 10), 300.0, risk=150.0, reason="tp2", fees=6, funding=1),
    trade(
        "p2",
        "ETH",
        at(1, 8),
        at(2, 6),
        -150.0,
        risk=150.0,
        reason="stop",
        fees=4,
        funding=-0.5,
        side="short",
    ),
    trade("p3", "BTC", at(2, 20), at(3, 2), 0.0, risk=100.0, reason="tp1", fees=3),
    trade("p4", "SOL", at(4, 12), at(4, 20), 458.0, risk=0.0, reason="tp1", fees=5, funding=2),
)


@pytest.fixture(scope="module")
def report() -> BacktestMetrics:
    return compute_metrics(TRADES, CURVE)


def test_daily_returns_take_each_utc_days_last_mark_and_carry_a_day_without_marks():
    # daily equity: first mark 10000, closes 10400 (1st), 10200 (2nd), 10200 (3rd),
    # 10200 (4th: no mark, carried), 10608 (5th)
    expected = [400 / 10_000, -200 / 10_400, 0.0, 0.0, 408 / 10_200]
    assert daily_returns(CURVE).tolist() == pytest.approx(expected)


def test_profit_and_growth(report):
    assert report.initial_equity == 10_000.0 and report.final_equity == 10_608.0
    assert report.net_profit_usd == pytest.approx(608.0)
    assert report.net_profit_pct == pytest.approx(0.0608)
    # 1.0608 ** (365 / 4 days) - 1 = 1.0608 ** 91.25 - 1
    assert report.cagr == pytest.approx(217.3020853114138, rel=1e-9)


def test_drawdown_is_measured_on_the_marks_not_the_daily_closes(report):
    # peak 10500 (1st 12:00) to 9975 (2nd 06:00): 525 USD, 525 / 10500 = 5 %
    assert report.max_drawdown_usd == pytest.approx(525.0)
    assert report.max_drawdown_pct == pytest.approx(0.05)
    # Calmar = 217.302085 / 0.05
    assert report.calmar == pytest.approx(4346.041706228276, rel=1e-9)


def test_usd_and_percent_drawdowns_are_separate_maxima():
    # 10000 -> 9000: 1000 USD, 10 %; later 20000 -> 18500: 1500 USD, 7.5 %
    usd, pct = max_drawdown([10_000, 9_000, 20_000, 18_500, 19_000])
    assert usd == pytest.approx(1_500.0)
    assert pct == pytest.approx(0.10)


def test_sharpe_and_sortino_follow_the_daily_convention(report):
    r = [0.04, -1 / 52, 0.0, 0.0, 0.04]
    # mean = (0.08 - 1/52) / 5 = 0.0121538; sample std = 0.0266047; x sqrt(365) = 19.10497
    assert statistics.mean(r) / statistics.stdev(r) * math.sqrt(365) == pytest.approx(8.7277364)
    assert report.sharpe == pytest.approx(8.727736383365889, rel=1e-9)
    # downside deviation = sqrt((1/52)^2 / 5) = 0.00860026; 0.0121538 / 0.00860026 x 19.10497
    assert report.sortino == pytest.approx(26.999051835203336, rel=1e-9)


def test_trade_statistics(report):
    assert (report.trades, report.r_trades) == (4, 3)  # p4 has no known risk
    assert report.gross_profit == 758.0 and report.gross_loss == 150.0
    assert report.profit_factor == pytest.approx(758 / 150)  # 5.0533
    assert report.expectancy_usd == pytest.approx(152.0)  # 608 / 4
    assert report.expectancy_r == pytest.approx(1 / 3)  # (2 - 1 + 0) / 3
    assert report.win_rate == 0.5  # p1, p4 win; p3 at break-even is not a win
    # R = 2, -1, 0: mean 1/3, sample var (25 + 16 + 1) / 9 / 2 = 7/3;
    # sqrt(3) x (1/3) / sqrt(7/3) = 1 / sqrt(7)
    assert report.sqn == pytest.approx(0.3779644730092272)


def test_activity_figures(report):
    assert report.trades_per_month == pytest.approx(365 / 12)  # 4 trades in 4 days
    assert report.average_hold == timedelta(hours=11)  # (8 + 22 + 6 + 8) / 4
    # open: [1st 02:00, 2nd 06:00] (p1, p2 overlap), [2nd 20:00, 3rd 02:00], [4th 12-20]
    # flat: 2 h, 14 h, 34 h (3rd 02:00 -> 4th 12:00), 4 h
    assert report.longest_flat == timedelta(hours=34)
    assert report.fees_paid == 18.0  # 6 + 4 + 3 + 5
    assert report.funding_paid == 2.5  # 1 - 0.5 + 0 + 2


def test_tables_per_market_exit_reason_and_month(report):
    assert report.by_market == (
        BreakdownRow("BTC", trades=2, wins=1, win_rate=0.5, net_pnl=300.0, expectancy_r=1.0),
        BreakdownRow("ETH", trades=1, wins=0, win_rate=0.0, net_pnl=-150.0, expectancy_r=-1.0),
        BreakdownRow("SOL", trades=1, wins=1, win_rate=1.0, net_pnl=458.0, expectancy_r=None),
    )
    assert report.by_exit_reason == (
        BreakdownRow("stop", trades=1, wins=0, win_rate=0.0, net_pnl=-150.0, expectancy_r=-1.0),
        # p3 (R 0) and p4 (no R): expectancy over p3 alone
        BreakdownRow("tp1", trades=2, wins=1, win_rate=0.5, net_pnl=458.0, expectancy_r=0.0),
        BreakdownRow("tp2", trades=1, wins=1, win_rate=1.0, net_pnl=300.0, expectancy_r=2.0),
    )
    (month,) = report.by_month
    assert month.key == "2025-01" and month.trades == 4 and month.net_pnl == 608.0
    assert month.expectancy_r == pytest.approx(1 / 3)


def test_every_month_of_the_span_gets_a_row_and_trades_count_in_their_exit_month():
    curve = EquityCurve((at(20, month=1), at(5, month=3)), (1_000.0, 1_050.0))
    trades = [trade("a", "BTC", at(30, month=1), at(2, month=3), 50.0, risk=25.0, reason="tp3")]
    rows = compute_metrics(trades, curve).by_month
    assert [r.key for r in rows] == ["2025-01", "2025-02", "2025-03"]
    assert rows[0] == BreakdownRow("2025-01", 0, 0, None, 0.0, None)
    assert rows[1] == BreakdownRow("2025-02", 0, 0, None, 0.0, None)
    assert rows[2] == BreakdownRow("2025-03", 1, 1, 1.0, 50.0, 2.0)


def test_longest_flat_spell_clips_trades_to_the_span():
    start, end = at(2), at(4)
    # opened before the span and closed 6 h into it; then flat until the end
    trades = [trade("a", "BTC", at(1), at(2, 6), 1.0, risk=1.0, reason="stop")]
    assert longest_flat_spell(trades, start, end) == timedelta(hours=42)
    assert longest_flat_spell([], start, end) == timedelta(days=2)


def _floats(metrics: BacktestMetrics) -> list[float]:
    return [v for v in dataclasses.astuple(metrics) if isinstance(v, float)]


def test_no_trades_and_a_flat_curve_give_none_or_zero_never_nan():
    curve = EquityCurve((at(1), at(2), at(3)), (5_000.0, 5_000.0, 5_000.0))
    m = compute_metrics([], curve)
    assert (m.trades, m.net_profit_usd, m.max_drawdown_usd, m.max_drawdown_pct) == (0, 0, 0, 0)
    assert m.cagr == 0.0 and m.trades_per_month == 0.0
    for undefined in (
        m.sharpe,
        m.sortino,
        m.calmar,
        m.profit_factor,
        m.expectancy_usd,
        m.expectancy_r,
        m.win_rate,
        m.sqn,
        m.average_hold,
    ):
        assert undefined is None
    assert m.longest_flat == timedelta(days=2)
    assert m.by_market == () and m.by_exit_reason == ()
    assert m.by_month == (BreakdownRow("2025-01", 0, 0, None, 0.0, None),)
    assert all(math.isfinite(v) for v in _floats(m))


def test_one_winning_trade_has_no_profit_factor_and_no_sqn():
    curve = EquityCurve((at(1, 0), at(1, 23)), (1_000.0, 1_020.0))  # one UTC day
    m = compute_metrics(
        [trade("a", "BTC", at(1, 1), at(1, 5), 20.0, risk=10.0, reason="tp1")], curve
    )
    assert m.profit_factor is None  # no losing trade: None, not inf
    assert m.sqn is None  # a sample std needs two trades
    assert m.expectancy_r == 2.0 and m.win_rate == 1.0
    assert m.sharpe is None  # one daily return
    assert all(math.isfinite(v) for v in _floats(m))


def test_equal_r_multiples_have_no_sqn():
    curve = EquityCurve((at(1), at(3)), (1_000.0, 1_020.0))
    trades = [
        trade(p, "BTC", at(1, h), at(1, h + 1), 10.0, risk=10.0, reason="tp1")
        for p, h in (("a", 1), ("b", 5))
    ]
    assert compute_metrics(trades, curve).sqn is None


def test_a_single_mark_has_no_span_figures():
    m = compute_metrics([], EquityCurve((at(1),), (1_000.0,)))
    assert m.cagr is None and m.trades_per_month is None and m.sharpe is None
    assert m.longest_flat == timedelta(0) and m.max_drawdown_pct == 0.0


def test_a_ruined_account_has_cagr_minus_one_and_no_daily_ratios():
    curve = EquityCurve((at(1), at(2), at(3), at(4)), (1_000.0, 500.0, 0.0, 0.0))
    m = compute_metrics([], curve)
    assert m.cagr == -1.0
    assert m.max_drawdown_pct == 1.0 and m.max_drawdown_usd == 1_000.0
    assert m.sharpe is None and m.sortino is None


def test_equity_curve_from_a_polars_frame_sorts_by_time():
    frame = pl.DataFrame({"ts": [at(2), at(1)], "equity": [110.0, 100.0]})
    curve = EquityCurve.from_frame(frame)
    assert curve.ts == (at(1), at(2)) and curve.equity == (100.0, 110.0)


def test_trade_records_read_back_as_strings_become_enums():
    t = TradeRecord("p", "BTC", "short", at(1), at(2), 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, "stop")
    assert t.side is PositionSide.SHORT and t.exit_reason is ExitReason.STOP


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"entry_ts": datetime(2025, 1, 1)}, "timezone-aware UTC"),  # noqa: DTZ001
        ({"exit_ts": at(1), "entry_ts": at(2)}, "before entry_ts"),
        ({"exit_reason": "margin_call"}, "exit_reason 'margin_call' unknown"),
        ({"risk": -1.0}, "risk -1.0 is negative"),
        ({"pnl": math.nan}, "pnl is nan"),
    ],
)
def test_a_bad_trade_record_is_refused_naming_the_trade_and_field(change, message):
    fields = {**dataclasses.asdict(TRADES[0]), **change}
    with pytest.raises(ValueError, match=message) as caught:
        TradeRecord(**fields)
    assert "trade p1 (BTC)" in str(caught.value)


def test_a_bad_equity_curve_is_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        EquityCurve((at(2), at(1)), (1.0, 1.0))
    with pytest.raises(ValueError, match="empty"):
        EquityCurve((), ())
    with pytest.raises(ValueError, match="non-finite"):
        EquityCurve((at(1), at(2)), (1.0, math.nan))
