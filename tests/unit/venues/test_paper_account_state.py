"""A saved paper account continues exactly where it stopped.

The account is saved as versioned JSON (venues/paper/account.py) after every cycle
and restored at the next, maybe in a fresh process. What a trader would notice if
that went wrong: different fills, ids, cash or positions after a restart; an
account that loads half; an old account that no longer loads.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.market import MarketInfo
from core.orders import OrderRequest, OrderSide, OrderStatus, OrderType
from core.precision import round_to_step
from venues.paper import (
    FORMAT_VERSION,
    CancelOutcome,
    DuplicateClientIdError,
    HistoryForgotten,
    OrderRejectedError,
    PaperAccountState,
    PaperConfig,
    PaperEngine,
    PaperOrderVenue,
    PaperStateError,
    load_paper_account,
    save_paper_account,
)
from venues.paper.legacy import from_pickle, is_pickled
from venues.sim import SimVenue

FIXTURES = Path(__file__).parent / "paper_state"
T0 = datetime(2025, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
BTC = MarketInfo("BTC/USD:USD", "PF_XBTUSD", "BTC", "USD", 1.0, 0.5, 0.001, 0.001, 50.0)
ETH = MarketInfo("ETH/USD:USD", "PF_ETHUSD", "ETH", "USD", 1.0, 0.05, 0.01, 0.01, 20.0)
MARKETS = (BTC, ETH)
START_PRICE = {BTC.symbol: 100.0, ETH.symbol: 10.0}
CLIENT_IDS = [f"c{i}" for i in range(6)]  # few, so client ids repeat and collide


def json_round_trip(engine: PaperEngine) -> PaperEngine:
    return PaperEngine.restore(json.loads(json.dumps(engine.snapshot(), allow_nan=False)))


# -- random accounts ---------------------------------------------------------------------

market = st.integers(0, 1)
orders = st.tuples(
    st.just("order"),
    market,
    st.sampled_from(list(OrderType)),
    st.sampled_from(list(OrderSide)),
    st.integers(1, 3000),  # lots
    st.booleans(),  # reduce_only
    st.integers(-8, 8),  # price / trigger offset from the mark, in percent
    st.booleans(),  # a stop / take-profit with a limit price too
    st.sampled_from(CLIENT_IDS),
    st.sampled_from([True, True, True, False]),  # record the client id
)
bars = st.tuples(
    st.just("bar"),
    market,
    st.floats(-0.06, 0.06),  # open vs previous close
    st.floats(0.0, 0.04),  # wick up
    st.floats(0.0, 0.04),  # wick down
    st.floats(-0.06, 0.06),  # close vs open
    st.sampled_from([None, 0.5, 5.0, 500.0]),  # volume: None, thin, ample
)
funding = st.tuples(st.just("funding"), market, st.floats(-0.002, 0.002))
cancels = st.one_of(
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("cancel_client"), st.sampled_from(CLIENT_IDS)),
    st.tuples(st.just("cancel_all"), st.sampled_from([None, BTC.symbol])),
)
switches = st.one_of(
    st.tuples(st.just("partials"), st.sampled_from([1.0, 0.5, 0.3]), st.sampled_from([None, 0.5])),
    st.tuples(
        st.just("trigger_fills"),
        st.sampled_from([1.0, 0.5]),
        st.sampled_from(["keep", "cancel"]),
        st.sampled_from([(OrderType.STOP,), (OrderType.STOP, OrderType.TAKE_PROFIT)]),
    ),
)
forgets = st.tuples(st.just("forget"), st.integers(0, 10))  # minutes back from now
# orders and bars drawn most, so positions build, stops trigger and exits fill (weights by
# repetition in sampled_from: st.one_of flattens nested one_ofs into equal shares)
KINDS = {"order": orders, "bar": bars, "funding": funding, "cancel": cancels}
KINDS |= {"switch": switches, "forget": forgets}
WEIGHTED = ["order"] * 4 + ["bar"] * 4 + ["funding", "cancel", "cancel", "switch", "forget"]
actions = st.lists(st.sampled_from(WEIGHTED).flatmap(KINDS.__getitem__), min_size=10, max_size=60)
configs = st.builds(
    PaperConfig,
    maker_fee=st.sampled_from([0.0, 0.0002]),
    taker_fee=st.sampled_from([0.0, 0.0005]),
    slippage_bps=st.sampled_from([0.0, 5.0]),
    initial_cash=st.sampled_from([2_000.0, 1_000_000.0]),  # small cash: margin refusals
    max_fill_fraction=st.sampled_from([1.0, 0.5, 0.3]),
    volume_participation=st.sampled_from([None, 0.5]),
    trigger_fill_fraction=st.sampled_from([1.0, 0.5, 0.3]),
    triggered_remainder=st.sampled_from(["keep", "cancel"]),
    check_margin=st.booleans(),
    seed=st.integers(0, 2**32),
)


def new_engine(config: PaperConfig) -> PaperEngine:
    engine = PaperEngine(MARKETS, config)
    for symbol, price in START_PRICE.items():
        engine.on_price(symbol, T0, price)
    return engine


def order_request(engine: PaperEngine, action: tuple) -> tuple[OrderRequest, bool]:
    _, i, kind, side, lots, reduce_only, offset, with_limit, cid, record = action
    m = MARKETS[i]
    mark = engine.mark(m.symbol) or START_PRICE[m.symbol]
    level = max(round_to_step(mark * (1 + offset / 100), m.tick_size), m.tick_size)
    triggered_kind = kind in (OrderType.STOP, OrderType.TAKE_PROFIT)
    limit = level if kind is OrderType.LIMIT or (triggered_kind and with_limit) else None
    size = round_to_step(lots * m.lot_size, m.lot_size)
    request = OrderRequest(
        m.symbol, side, kind, size, cid, limit, level if triggered_kind else None, reduce_only
    )
    return request, record


def play(engine: PaperEngine, action: tuple, ts: datetime) -> object:
    """Apply one action; returns everything the engine answered (to compare engines by)."""
    kind = action[0]
    if kind == "order":
        request, record = order_request(engine, action)
        try:
            return engine.submit(request, ts, record_client_id=record)
        except OrderRejectedError as exc:  # a refusal must be the same refusal, same words
            return (type(exc).__name__, exc.reason, str(exc))
    if kind == "bar":
        _, i, gap, up, down, move, volume = action
        symbol = MARKETS[i].symbol
        mark = engine.mark(symbol) or START_PRICE[symbol]
        open_ = max(mark * (1 + gap), 0.5)
        close = max(open_ * (1 + move), 0.5)
        high, low = max(open_, close) * (1 + up), min(open_, close) * (1 - down)
        return engine.on_bar(symbol, ts, open_, high, low, close, volume)
    if kind == "funding":
        return engine.apply_funding(MARKETS[action[1]].symbol, action[2], ts)
    if kind == "cancel":
        open_orders = engine.open_orders()
        if not open_orders:
            return None
        return engine.cancel(open_orders[action[1] % len(open_orders)].venue_order_id, ts)
    if kind == "cancel_client":
        return engine.cancel_by_client_id(action[1], ts)
    if kind == "cancel_all":
        return engine.cancel_all(action[1], ts)
    if kind == "partials":
        return engine.set_partial_fills(action[1], action[2])
    if kind == "trigger_fills":
        return engine.set_trigger_fills(action[1], action[2], action[3])
    return engine.forget_history(ts - timedelta(minutes=action[1]))


def trading_view(engine: PaperEngine) -> tuple:
    """What the bot and the venue API read of an account: money, positions, open orders."""
    return (
        engine.balance(),
        engine.positions(),
        engine.open_orders(),
        (engine.cash, engine.realised_pnl, engine.fees_paid, engine.funding_paid),
        (engine.position_margin(), engine.order_margin()),
        [(engine.mark(m.symbol), engine.position_opened(m.symbol)) for m in MARKETS],
        engine.config,
    )


def full_view(engine: PaperEngine) -> tuple:
    """trading_view plus the history: every order, fill and client-id lookup."""
    return (
        trading_view(engine),
        engine.orders(),
        engine.executions(),
        [engine.order_by_client_id(c) for c in CLIENT_IDS],
        engine.history_forgotten(),
    )


def at(n: int) -> datetime:
    return T0 + timedelta(minutes=n + 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, steps=actions)
def test_a_json_restored_engine_answers_every_later_input_as_the_original_does(config, steps):
    # the original goes through every step once; an engine restored from its JSON before
    # step k must then give the same answers and the same account from step k on, for every k
    original = new_engine(config)
    saved, answers, views = [], [], []
    for n, action in enumerate(steps):
        saved.append(json.dumps(original.snapshot(), allow_nan=False))
        answers.append(play(original, action, at(n)))
        views.append(full_view(original))
    saved.append(json.dumps(original.snapshot(), allow_nan=False))
    for k in range(len(steps) + 1):
        restored = PaperEngine.restore(json.loads(saved[k]))
        for n in range(k, len(steps)):
            # same fills (ids, prices, sizes, fees), same ids for new orders, same refusals
            assert play(restored, steps[n], at(n)) == answers[n], (k, steps[n])
            assert full_view(restored) == views[n], (k, steps[n])
        assert json.dumps(restored.snapshot()) == saved[-1]  # to the id generator's state


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, steps=actions)
def test_forgetting_history_changes_no_later_fill_balance_or_position(config, steps):
    forgetful, keeper = new_engine(config), new_engine(config)
    for n, action in enumerate(steps):
        if action[0] == "forget":
            forgetful.forget_history(at(n) - timedelta(minutes=action[1]))
            continue
        answers = play(forgetful, action, at(n)), play(keeper, action, at(n))
        if action[0] == "cancel_client":  # a forgotten client id answers as unknown (as Kraken)
            assert answers[0].outcome in (answers[1].outcome, CancelOutcome.NOT_FOUND), action
        else:  # fills, ids and refusals
            assert answers[0] == answers[1], action
        assert trading_view(forgetful) == trading_view(keeper), action
    # what is kept is the keeper's history, minus only what was forgotten
    kept, whole = forgetful.executions(), keeper.executions()
    assert len(whole) - len(kept) == forgetful.history_forgotten().executions
    assert [e for e in whole if e in kept] == kept


# -- states a cycle can end in -------------------------------------------------------------


def test_a_stop_triggered_and_half_filled_finishes_after_a_restart_as_it_would_have():
    config = PaperConfig(maker_fee=0.0, taker_fee=0.0, initial_cash=100_000.0)
    engine = new_engine(config)
    engine.set_trigger_fills(0.5, "keep")
    engine.submit(OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.MARKET, 2.0, "entry"), T0)
    stop = OrderRequest(BTC.symbol, OrderSide.SELL, OrderType.STOP, 2.0, "stop", None, 95.0, True)
    stop_id = engine.submit(stop, T0).order.venue_order_id
    engine.on_bar(BTC.symbol, T0 + H, 100.0, 100.0, 94.0, 95.0)
    working = engine.working_order(stop_id)
    assert working is not None and working.triggered and working.filled_lots == 1000  # 1 of 2

    restored = json_round_trip(engine)
    after = [e.on_bar(BTC.symbol, T0 + 2 * H, 93.0, 94.0, 92.0, 93.5) for e in (engine, restored)]
    assert after[0] == after[1]
    (fill,) = [x.fill for x in after[1]]
    assert (fill.size, fill.price) == (1.0, 93.0)  # the remainder at the next bar's open
    assert restored.order(stop_id).status is OrderStatus.FILLED
    assert restored.positions() == [] and restored.cash == engine.cash


def test_a_stop_limit_that_gapped_past_its_limit_still_rests_after_a_restart():
    engine = new_engine(PaperConfig(initial_cash=100_000.0))
    engine.submit(OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.MARKET, 1.0, "entry"), T0)
    stop = OrderRequest(BTC.symbol, OrderSide.SELL, OrderType.STOP, 1.0, "sl", 94.0, 95.0, True)
    stop_id = engine.submit(stop, T0).order.venue_order_id
    assert engine.on_bar(BTC.symbol, T0 + H, 90.0, 91.0, 89.0, 90.0) == []  # gapped under 94
    restored = json_round_trip(engine)
    assert restored.working_order(stop_id).triggered
    assert restored.on_bar(BTC.symbol, T0 + 2 * H, 93.0, 94.5, 92.0, 94.0)[0].fill.price == 94.0


def test_ids_continue_from_where_the_saved_account_stopped():
    engine = new_engine(PaperConfig(seed=42))
    engine.submit(OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.MARKET, 0.1, "a"), T0)
    restored = json_round_trip(engine)
    fresh = new_engine(PaperConfig(seed=42))  # what a restart without the generator would do
    nxt = OrderRequest(BTC.symbol, OrderSide.SELL, OrderType.MARKET, 0.1, "b")
    ids = [e.submit(nxt, T0 + H).order.venue_order_id for e in (engine, restored, fresh)]
    assert ids[0] == ids[1] != ids[2]


def test_an_open_client_id_is_still_refused_as_a_duplicate_after_a_restart():
    engine = new_engine(PaperConfig())
    limit = OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.LIMIT, 1.0, "dup", price=90.0)
    engine.submit(limit, T0)
    restored = json_round_trip(engine)
    with pytest.raises(DuplicateClientIdError):
        restored.submit(limit, T0 + H)
    assert restored.order_by_client_id("dup") == engine.order_by_client_id("dup")


# -- the saved account: version, feed progress, refusals -----------------------------------


class TwoMarketSim(SimVenue):
    """The seeded sim market with three perpetuals, the third listed only from `listing_at`."""

    def __init__(self, start: datetime, listing_at: datetime | None = None) -> None:
        super().__init__(seed=11, count=3, start=start)
        self.listing_at = listing_at

    def markets(self) -> list[MarketInfo]:
        listed = super().markets()
        if self.listing_at is not None and self.clock.now() < self.listing_at:
            return listed[:2]
        return listed


def sim_orders(venue: PaperOrderVenue, cycle: int) -> None:
    """An entry with its stop and take-profit on the first market every 6 hours."""
    m = venue.engine.markets()[0]
    mark = venue.engine.mark(m.symbol)
    if cycle % 6 or mark is None or any(p.symbol == m.symbol for p in venue.positions()):
        return
    venue.engine.cancel_all(m.symbol, venue.clock.now())
    size = round_to_step(1000 / mark, m.lot_size) or m.lot_size
    venue.submit(OrderRequest(m.symbol, OrderSide.BUY, OrderType.MARKET, size, f"e{cycle}"))
    for kind, level, name in ((OrderType.STOP, 0.99, "s"), (OrderType.TAKE_PROFIT, 1.01, "t")):
        trigger = round_to_step(mark * level, m.tick_size)
        venue.submit(
            OrderRequest(
                m.symbol, OrderSide.SELL, kind, size, f"{name}{cycle}", None, trigger, True
            )
        )


def test_a_saved_sim_account_continues_in_a_new_process_with_the_same_fills_and_cash():
    start = datetime(2024, 3, 1, tzinfo=UTC)
    feed = TwoMarketSim(start)
    venue = PaperOrderVenue.on_feed(feed, PaperConfig(initial_cash=50_000.0))
    for cycle in range(30):
        sim_orders(venue, cycle)
        feed.clock.advance()
    venue.balance()  # the cycle's last read catches the engine up
    text = save_paper_account(venue)

    # a new process: a new feed at the saved time, the account from its text
    new_feed = TwoMarketSim(feed.clock.now())
    restored = load_paper_account(text, new_feed)
    assert restored.driver.done_until == venue.driver.done_until == feed.clock.now()
    for cycle in range(30, 80):
        sim_orders(venue, cycle)
        sim_orders(restored, cycle)
        feed.clock.advance()
        new_feed.clock.advance()
        assert restored.fills() == venue.fills()
        assert restored.balance() == venue.balance()
        assert restored.positions() == venue.positions()
    assert len(venue.fills()) >= 10  # the account did trade across the restart


def test_a_market_listed_after_the_save_is_traded_after_the_restore():
    start = datetime(2024, 3, 1, tzinfo=UTC)
    feed = TwoMarketSim(start, listing_at=start + 5 * H)
    venue = PaperOrderVenue.on_feed(feed)
    feed.clock.advance(), feed.clock.advance()
    venue.balance()
    text = save_paper_account(venue)
    for _ in range(4):  # the third market lists while no process runs
        feed.clock.advance()
    restored = load_paper_account(text, feed)
    new = feed.markets()[2]
    assert new.symbol in {m.symbol for m in restored.engine.markets()}
    restored.balance()  # catches up: the new market's bars since its listing give it a price
    mark = restored.engine.mark(new.symbol)
    assert mark is not None
    size = round_to_step(100 / mark, new.lot_size) or new.lot_size
    order = restored.submit(OrderRequest(new.symbol, OrderSide.BUY, OrderType.MARKET, size, "n"))
    assert order.status is OrderStatus.FILLED


def test_saving_forgets_history_beyond_the_retention_but_keeps_the_open_position_s_fills():
    start = datetime(2024, 3, 1, tzinfo=UTC)
    feed = TwoMarketSim(start)
    venue = PaperOrderVenue.on_feed(feed)
    second = venue.engine.markets()[1]
    held = OrderRequest(second.symbol, OrderSide.BUY, OrderType.MARKET, second.min_size, "held")
    venue.submit(held)  # opened on day one, never closed
    for cycle in range(24 * 5):
        sim_orders(venue, cycle)
        feed.clock.advance()
    venue.balance()
    every_fill = venue.fills()
    restored = load_paper_account(save_paper_account(venue, retention=timedelta(days=2)), feed)

    horizon = feed.clock.now() - timedelta(days=2)
    forgotten = restored.engine.history_forgotten()
    assert forgotten.executions > 0 and forgotten.orders > 0 and forgotten.before == horizon
    assert restored.fills(horizon) == venue.engine.fills(horizon)  # the /fills window whole
    # the account log still answers for the position held since day one
    assert restored.realised_pnl(second.symbol, start) == venue.realised_pnl(second.symbol, start)
    assert restored.order_by_client_id("held").status is OrderStatus.FILLED
    assert len(restored.fills()) < len(every_fill)
    assert restored.balance() == venue.balance()


def test_no_retention_keeps_every_fill_where_a_short_one_forgets():
    start = datetime(2024, 3, 1, tzinfo=UTC)
    feed = TwoMarketSim(start)
    venue = PaperOrderVenue.on_feed(feed)
    for cycle in range(24 * 3):
        sim_orders(venue, cycle)
        feed.clock.advance()
    every_fill = venue.fills()
    restored = load_paper_account(save_paper_account(venue, retention=None), feed)
    assert (
        restored.fills() == every_fill and restored.engine.history_forgotten() == HistoryForgotten()
    )
    bounded = load_paper_account(save_paper_account(venue, retention=timedelta(hours=12)), feed)
    assert 0 < len(bounded.fills()) < len(every_fill)  # the same account, bounded, does forget


def fixture_account() -> PaperAccountState:
    """A small account in every state a cycle can leave: a position with a half-filled
    triggered stop, a resting take-profit, a half-filled limit entry, funding paid, and a
    closed, forgotten round trip."""
    engine = PaperEngine(MARKETS, PaperConfig(initial_cash=100_000.0, seed=7))
    engine.set_trigger_fills(0.5, "keep")
    for symbol, price in START_PRICE.items():
        engine.on_bar(symbol, T0, price, price * 1.01, price * 0.99, price, 50.0)
    engine.submit(OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.MARKET, 1.0, "old"), T0)
    engine.submit(OrderRequest(BTC.symbol, OrderSide.SELL, OrderType.MARKET, 1.0, "old-x"), T0)
    engine.submit(OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.MARKET, 2.0, "entry"), T0 + H)
    for kind, level, cid in ((OrderType.STOP, 95.0, "stop"), (OrderType.TAKE_PROFIT, 110.0, "tp")):
        engine.submit(
            OrderRequest(BTC.symbol, OrderSide.SELL, kind, 2.0, cid, None, level, True), T0
        )
    engine.set_partial_fills(0.5)
    engine.submit(OrderRequest(ETH.symbol, OrderSide.BUY, OrderType.LIMIT, 3.0, "eth", 9.6), T0)
    engine.on_bar(ETH.symbol, T0 + 2 * H, 10.0, 10.1, 9.5, 9.9, 400.0)
    engine.apply_funding(BTC.symbol, 0.0001, T0 + 2 * H)
    engine.on_bar(BTC.symbol, T0 + 3 * H, 100.0, 100.5, 94.0, 96.0, 40.0)
    engine.forget_history(T0 + H)
    feeds = {m.symbol: m.symbol for m in MARKETS}
    return PaperAccountState(engine.snapshot(), "1h", T0 + 3 * H, feeds)


def test_the_format_1_account_fixture_still_restores_to_its_figures():
    state = PaperAccountState.from_json((FIXTURES / "account_v1.json").read_text())
    engine = PaperEngine.restore(state.engine)
    assert state.format_version == 1 and state.done_until == T0 + 3 * H
    (btc, eth) = engine.positions()
    assert (btc.symbol, btc.size, eth.size) == (BTC.symbol, 1.0, 1.5)
    stop = engine.order_by_client_id("stop")
    assert (stop.status, stop.filled) == (OrderStatus.OPEN, 1.0)  # triggered, half filled
    assert engine.working_order(stop.venue_order_id).triggered
    assert engine.order_by_client_id("old") is None  # forgotten with its closed round trip
    assert engine.history_forgotten() == HistoryForgotten(2, 2, T0 + H)
    assert engine.cash == pytest.approx(
        100_000.0 + engine.realised_pnl - engine.fees_paid + engine.funding_paid, abs=1e-9
    )


def test_the_writer_still_writes_format_1_or_the_version_was_bumped():
    written = json.loads(fixture_account().to_json())
    saved = json.loads((FIXTURES / "account_v1.json").read_text())
    assert FORMAT_VERSION == 1 and written == saved, (
        "the saved-account format changed: bump FORMAT_VERSION, keep a reader (a migration) "
        "for version 1 in venues.paper.account.READERS, and add a fixture for the new version"
    )


def valid_account() -> dict:
    return json.loads(fixture_account().to_json())


def _set(path: list, value: object):
    def change(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return change


def _add_open_order_with_client_id(data: dict) -> None:
    orders = data["engine"]["orders"]
    twin = dict(next(o for o in orders if o["status"] == "open" and o["client_id"]))
    twin["venue_order_id"] = "a-second-order"
    orders.append(twin)


REFUSED = [
    ("a newer format", _set(["format_version"], 2), "format_version", "newer smc-trader"),
    ("a version as text", _set(["format_version"], "1"), "format_version", "not a version"),
    ("another kind", _set(["kind"], "freqtrade"), "account.kind", "is not"),
    ("no orders", _set(["engine", "orders"], KeyError), "engine", "missing ['orders']"),
    ("an unknown key", _set(["engine", "extra"], 1), "engine", "unknown keys ['extra']"),
    (
        "bad status",
        _set(["engine", "orders", 2, "status"], "opn"),
        "engine.orders[2].status",
        "'opn' is not one of",
    ),
    (
        "unknown market",
        _set(["engine", "orders", 0, "symbol"], "DOGE"),
        "engine.orders[0].symbol",
        "not in engine.markets",
    ),
    (
        "lots as text",
        _set(["engine", "orders", 1, "size_lots"], "2000"),
        "engine.orders[1].size_lots",
        "expected an integer",
    ),
    (
        "overfilled",
        _set(["engine", "orders", 1, "filled_lots"], 10**6),
        "engine.orders[1].filled_lots",
        "exceeds size_lots",
    ),
    (
        "naive time",
        _set(["engine", "orders", 1, "created"], "2025-03-01T00:00:00"),
        "engine.orders[1].created",
        "no UTC offset",
    ),
    (
        "orphan fill",
        _set(["engine", "executions", -1, "venue_order_id"], "nobody"),
        "engine.executions[",
        "no such order",
    ),
    (
        "NaN cash",
        _set(["engine", "account", "cash"], float("nan")),
        "engine.account.cash",
        "not finite",
    ),
    (
        "short generator",
        _set(["engine", "ids", "words"], [1, 2, 3]),
        "engine.ids.words",
        "625 integers",
    ),
    (
        "a flat book missing",
        _set(["engine", "positions", ETH.symbol], KeyError),
        "engine.positions",
        "missing ['ETH/USD:USD']",
    ),
    ("a bad fee", _set(["engine", "config", "maker_fee"], -1.0), "engine.config", "maker_fee"),
    (
        "leverage for nobody",
        _set(["engine", "config", "leverage"], {"DOGE": 2.0}),
        "engine.config",
        "unknown markets",
    ),
    (
        "a second open order with its client id",
        _add_open_order_with_client_id,
        "engine.orders[",
        "already carries this client id",
    ),
    ("a bad timeframe", _set(["feed", "timeframe"], "7m"), "account.feed.timeframe", "'7m'"),
    (
        "a feed market for no engine market",
        _set(["feed", "symbols", "DOGE/USD:USD"], "DOGE/USD:USD"),
        "account.feed.symbols",
        "not engine markets",
    ),
]


@pytest.mark.parametrize(
    ("name", "damage", "where", "problem"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_a_damaged_account_is_refused_naming_the_field_and_nothing_is_restored(
    name, damage, where, problem
):
    data = valid_account()
    damage(data)
    text = json.dumps(data)  # NaN goes through as JSON's NaN literal, as a hand edit would
    feed = TwoMarketSim(datetime(2024, 3, 1, tzinfo=UTC))
    with pytest.raises(PaperStateError) as refused:
        load_paper_account(text, feed)
    assert refused.value.where.startswith(where) and problem in refused.value.problem
    assert "nothing was restored" in str(refused.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"\x80\x04\x95...", "pickled paper account"),
        ("{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ("[1, 2]", "expected an object"),
    ],
)
def test_what_is_not_a_saved_account_is_refused(text, problem):
    with pytest.raises(PaperStateError, match=problem):
        PaperAccountState.from_json(text)


def test_nan_figures_are_refused_when_saving_rather_than_written():
    state = fixture_account()
    engine = dict(state.engine)
    engine["account"] = {**engine["account"], "cash": float("nan")}
    with pytest.raises(PaperStateError, match="cannot be written"):
        PaperAccountState(engine, "1h", None, {}).to_json()


def test_the_account_is_json_text_a_person_or_duckdb_can_read():
    data = json.loads(fixture_account().to_json())
    assert data["format_version"] == FORMAT_VERSION
    assert data["feed"]["done_until"] == "2025-03-01T03:00:00+00:00"
    assert set(data["engine"]) >= {"account", "positions", "orders", "executions"}
    assert data["engine"]["positions"][BTC.symbol]["lots"] == 1000


# -- accounts pickled before the JSON format -----------------------------------------------


def test_an_account_pickled_before_the_json_format_converts_once_with_its_state():
    blob = (FIXTURES / "account_pickled_f7a160c.pickle").read_bytes()  # as that commit saved
    assert is_pickled(blob)
    with pytest.raises(PaperStateError, match=r"venues\.paper\.legacy\.from_pickle"):
        PaperAccountState.from_json(blob)
    state = from_pickle(blob, timeframe="1h")
    engine = PaperEngine.restore(json.loads(state.to_json())["engine"])
    assert state.done_until == T0 + H
    assert engine.cash == pytest.approx(99_999.93702)
    assert [(p.symbol, p.size) for p in engine.positions()] == [
        (BTC.symbol, 1.0),
        (ETH.symbol, 1.5),
    ]
    assert [o.client_id for o in engine.open_orders()] == ["stop-1", "tp-1", "eth-entry"]
    assert engine.history_forgotten() == HistoryForgotten()


def test_a_pickle_of_something_else_is_refused():
    import pickle

    with pytest.raises(PaperStateError, match="does not hold"):
        from_pickle(pickle.dumps({"engine": 1}), timeframe="1h")


# -- size and time of a saved account (figures printed, not asserted) -----------------------


def account_with(executions: int) -> PaperEngine:
    """An account whose history holds `executions` fills: round trips of a market entry and
    its take-profit, each exit with a stop placed and cancelled (three orders a trip)."""
    engine = new_engine(PaperConfig(initial_cash=10**9, maker_fee=0.0002, taker_fee=0.0005))
    ts = T0
    for n in range(executions // 2):
        ts += H
        engine.on_bar(BTC.symbol, ts, 100.0, 100.0, 100.0, 100.0, 1e6)
        engine.submit(OrderRequest(BTC.symbol, OrderSide.BUY, OrderType.MARKET, 1.0, f"e{n}"), ts)
        stop = OrderRequest(
            BTC.symbol, OrderSide.SELL, OrderType.STOP, 1.0, f"s{n}", None, 90.0, True
        )
        engine.submit(stop, ts)
        tp = OrderRequest(
            BTC.symbol, OrderSide.SELL, OrderType.LIMIT, 1.0, f"t{n}", 100.5, None, True
        )
        engine.submit(tp, ts)
        engine.on_bar(BTC.symbol, ts + H / 2, 100.0, 101.0, 100.0, 101.0, 1e6)
        engine.cancel_by_client_id(f"s{n}", ts + H / 2)
    return engine


@pytest.mark.parametrize("executions", [1_000, 10_000])
def test_a_large_account_round_trips_whole_and_its_size_and_time_are_printed(executions, capsys):
    engine = account_with(executions)
    assert len(engine.executions()) == executions
    done_until = engine.executions()[-1].fill.ts
    feeds = {BTC.symbol: BTC.symbol}

    started = time.perf_counter()
    text = PaperAccountState(engine.snapshot(), "1h", done_until, feeds).to_json()
    saved = time.perf_counter()
    state = PaperAccountState.from_json(text)
    restored = PaperEngine.restore(state.engine)
    loaded = time.perf_counter()
    assert full_view(restored) == full_view(engine)

    orders = len(engine.orders())
    engine.forget_history(done_until - timedelta(days=30))
    bounded = len(PaperAccountState(engine.snapshot(), "1h", done_until, feeds).to_json())
    with capsys.disabled():
        print(
            f"\npaper account, {executions} executions / {orders} orders: "
            f"JSON {len(text) / 1e6:.2f} MB, save {1e3 * (saved - started):.0f} ms, "
            f"load+restore {1e3 * (loaded - saved):.0f} ms; after 30-day retention "
            f"{len(engine.executions())} executions, {bounded / 1e6:.2f} MB"
        )
