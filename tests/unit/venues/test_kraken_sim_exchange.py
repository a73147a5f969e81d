"""The simulated exchange behind the HTTP layer, and the HTTP layer for non-ccxt clients."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import polars as pl
import pytest

from core.market import MarketInfo, Ticker
from venues.base import SimulatedClock
from venues.kraken_sim import SimExchange, sign, start_in_thread
from venues.kraken_sim.endpoints import ApiRequest, batch_order
from venues.kraken_sim.exchange import ApiError, OrderSpec
from venues.kraken_sim.feeds import ShiftedFeed
from venues.paper import PaperConfig

START = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
SECRET = base64.b64encode(b"unit-test secret").decode()


def market(base: str, lot: float = 0.001) -> MarketInfo:
    return MarketInfo(f"{base}/USD:USD", f"{base}USD", base, "USD", 1.0, 0.5, lot, lot, 20.0)


class Feed:
    """A MarketDataVenue of flat markets at 100 with ±1 wicks; `late` lists one more at bar 10."""

    name = "unit"

    def __init__(self, bars: int = 2100, now_bar: int = 2050, late: bool = False) -> None:
        closes = [100.0] * bars
        self.frame = pl.DataFrame(
            {
                "ts": [START + i * H for i in range(bars)],
                "open": closes,
                "high": [101.0] * bars,
                "low": [99.0] * bars,
                "close": closes,
                "volume": [1.0] * bars,
            }
        ).with_columns(pl.col("ts").dt.cast_time_unit("us"))
        self.clock = SimulatedClock(START + now_bar * H, H)
        self.late = late
        self.listed = [market("BTC"), market("ETH")]

    def markets(self) -> list[MarketInfo]:
        extra = [market("SOL")] if self.late and self.clock.now() >= START + 10 * H else []
        return self.listed + extra

    def tickers(self) -> dict[str, Ticker]:
        return {m.symbol: Ticker(m.symbol, 100.0, 99.5, 100.5, 1e6) for m in self.markets()}

    def ohlcv(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> pl.DataFrame:
        if timeframe != "1h":
            from core.errors import DataError

            raise DataError(symbol, f"timeframe {timeframe} not offered")
        until = min(until, self.clock.now())
        return self.frame.filter((pl.col("ts") >= since) & (pl.col("ts") + H <= until))

    def close(self) -> None:
        """Nothing to release."""


def spec(kind: str, side: str = "buy", size: float = 1.0, **kw: object) -> OrderSpec:
    return OrderSpec(kind, "PF_XBTUSD", side, size, **kw)  # type: ignore[arg-type]


def seconds(ts: datetime) -> int:
    return int(ts.timestamp())


# -- candles --------------------------------------------------------------------------------


def test_candles_come_2000_a_page_closed_only_with_more_candles_flagged():
    ex = SimExchange(Feed())
    page = ex.candles("PF_XBTUSD", "trade", "1h", seconds(START), seconds(START + 3000 * H))
    assert len(page["candles"]) == 2000 and page["more_candles"] is True
    tail = ex.candles("PF_XBTUSD", "trade", "1h", seconds(START + 2000 * H), None)
    times = [c["time"] for c in tail["candles"]]
    assert len(times) == 50 and tail["more_candles"] is False  # bars 2000..2049 have closed
    assert times[-1] == int((START + 2049 * H).timestamp() * 1000)


def test_candle_window_is_inclusive_of_both_ends_as_ccxt_computes_it():
    ex = SimExchange(Feed())
    # ccxt asks from=since, to=since + limit * duration - 1: exactly `limit` candles
    page = ex.candles("pf_xbtusd", "mark", "1h", seconds(START), seconds(START + 10 * H) - 1)
    assert len(page["candles"]) == 10
    assert {c["volume"] for c in page["candles"]} == {0}  # mark candles carry no volume


def test_unknown_interval_or_symbol_is_an_api_error():
    ex = SimExchange(Feed())
    with pytest.raises(ApiError):
        ex.candles("PF_XBTUSD", "trade", "2h", None, None)
    with pytest.raises(ApiError, match="contractNotFound"):
        ex.candles("PF_NOPEUSD", "trade", "1h", None, None)


# -- following the feed's clock -------------------------------------------------------------


def test_orders_fill_when_anyone_advances_the_feed_clock():
    feed = Feed(now_bar=5)
    ex = SimExchange(feed, PaperConfig(maker_fee=0.0))
    ex.place(spec("lmt", limit_price=99.5))
    feed.clock.advance()  # not through the exchange: the cycle moving its own venue
    assert ex.open_orders() == []
    assert ex.positions()[0]["size"] == "1.0"  # Kraken sends numbers as decimal strings here


def test_a_market_listed_later_becomes_an_instrument():
    feed = Feed(now_bar=8, late=True)
    ex = SimExchange(feed)
    assert [i["symbol"] for i in ex.instruments()] == ["PF_XBTUSD", "PF_ETHUSD"]
    ex.advance(3)
    assert [i["symbol"] for i in ex.instruments()][-1] == "PF_SOLUSD"
    assert ex.place(OrderSpec("mkt", "PF_SOLUSD", "buy", 1.0))["status"] == "placed"


def test_orders_status_keeps_closed_orders_only_briefly_like_kraken():
    feed = Feed(now_bar=5)
    ex = SimExchange(feed)
    done = ex.place(spec("mkt", cli_ord_id="m-1"))
    assert [o["status"] for o in ex.order_statuses([done["order_id"]], [])] == ["FULLY_EXECUTED"]
    ex.advance()
    assert ex.order_statuses([done["order_id"]], ["m-1"]) == []
    keeping = SimExchange(Feed(now_bar=5), closed_order_retention=None)
    keeping.place(spec("mkt", cli_ord_id="m-2"))
    keeping.advance()
    assert len(keeping.order_statuses([], ["m-2"])) == 1


# -- sendorder variants -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "status"),
    [
        (spec("post", limit_price=101.0), "postWouldExecute"),
        (spec("ioc", limit_price=99.0), "iocWouldNotExecute"),
        (spec("stp", stop_price=95.0, limit_price=94.3), "invalidPrice"),  # off the tick
        (spec("lmt"), "invalidPrice"),
        (spec("lmt", size=0.0, limit_price=99.0), "invalidSize"),
        (spec("lmt", size=0.0015, limit_price=99.0), "invalidSize"),
        (spec("lmt", side="hold", limit_price=99.0), "invalidSide"),
        (spec("fok", limit_price=99.0), "invalidOrderType"),
        (spec("lmt", limit_price=99.0, cli_ord_id="x" * 101), "clientOrderIdTooLong"),
        (spec("mkt", side="sell", reduce_only=True), "wouldNotReducePosition"),
    ],
)
def test_refused_orders_answer_krakens_status_and_place_nothing(order, status):
    ex = SimExchange(Feed())
    assert ex.place(order)["status"] == status
    assert ex.engine.orders() == []


def test_ioc_fills_what_crosses_and_cancels_the_rest():
    ex = SimExchange(Feed(), PaperConfig(max_fill_fraction=0.5))
    sent = ex.place(spec("ioc", limit_price=100.5))
    assert [e["type"] for e in sent["orderEvents"]] == ["EXECUTION"]
    assert ex.open_orders() == [] and ex.positions()[0]["size"] == "0.5"


def test_unknown_symbol_is_an_api_error():
    with pytest.raises(ApiError, match="contractNotFound"):
        SimExchange(Feed()).place(OrderSpec("mkt", "PF_NOPEUSD", "buy", 1.0))


def test_batch_with_a_url_encoded_json_body_sends_and_cancels():
    ex = SimExchange(Feed())
    instructions = {
        "batchOrder": [
            {
                "order": "send",
                "order_tag": "1",
                "orderType": "lmt",
                "symbol": "PF_XBTUSD",
                "side": "buy",
                "size": 1,
                "limitPrice": 90.0,
                "cliOrdId": "b-1",
            },
            {"order": "cancel", "cliOrdId": "b-1"},
            {
                "order": "send",
                "order_tag": "3",
                "orderType": "mkt",
                "symbol": "PF_NOPEUSD",
                "side": "buy",
                "size": 1,
            },
        ]
    }
    body = "json=" + quote(json.dumps(instructions))
    result = batch_order(ex, ApiRequest("POST", "/derivatives/api/v3/batchorder", "", body, {}))
    assert [s["status"] for s in result["batchStatus"]] == [
        "placed",
        "cancelled",
        "contractNotFound",
    ]
    assert result["batchStatus"][0]["order_tag"] == "1"


# -- construction ---------------------------------------------------------------------------------


def test_a_lot_size_that_is_not_a_power_of_ten_is_refused():
    feed = Feed()
    feed.listed = [market("BTC", lot=0.005)]
    with pytest.raises(ValueError, match="power of ten"):
        SimExchange(feed)


def test_the_server_listens_on_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        start_in_thread(Feed(), "k", SECRET, host="0.0.0.0")


def test_a_shifted_feed_shows_the_past_as_the_present_hour():
    now = datetime(2026, 11, 24, 14, 37, tzinfo=UTC)
    shifted = ShiftedFeed.to_present(Feed(), now)
    assert shifted.clock.now() == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    last = shifted.ohlcv("BTC/USD:USD", "1h", now - 3 * H, now)
    assert last["ts"].to_list()[-1] == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    ex = SimExchange(shifted)
    assert ex.tickers()[0]["lastTime"] == "2026-11-24T14:00:00.000Z"


# -- HTTP for a client that is not ccxt -----------------------------------------------------------


def call(url: str, path: str, query: str = "", headers: dict[str, str] | None = None):
    request = urllib.request.Request(f"{url}{path}?{query}", method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_signed_with_a_nonce_unknown_paths_and_bad_keys():
    with start_in_thread(Feed(), "k", SECRET) as sim:
        query = "orderType=mkt&symbol=PF_XBTUSD&side=buy&size=0.5"
        path = "/derivatives/api/v3/sendorder"
        authent = sign(SECRET, query, "/api/v3/sendorder", "1700000000000")
        headers = {"APIKey": "k", "Authent": authent, "Nonce": "1700000000000"}
        status, body = call(sim.url, path, query, headers)
        assert (status, body["result"], body["sendStatus"]["status"]) == (200, "success", "placed")
        status, body = call(sim.url, path, query, {**headers, "APIKey": "other"})
        assert (status, body["error"]) == (401, "authenticationError")
        status, body = call(sim.url, "/derivatives/api/v3/nothing-here")
        assert (status, body["error"]) == (404, "notFound")
        assert len(sim.engine.orders()) == 1


# -- answers in Kraken's shape ---------------------------------------------------------------------


class NaNFeed(Feed):
    """A feed whose tickers carry a NaN volume and, for ETH, no prices at all."""

    def tickers(self) -> dict[str, Ticker]:
        return {
            "BTC/USD:USD": Ticker("BTC/USD:USD", 100.0, 99.5, 100.5, float("nan")),
            "ETH/USD:USD": Ticker("ETH/USD:USD", None, None, None, None),
        }


def test_tickers_are_decimal_strings_and_leave_out_what_is_unknown_never_nan():
    ex = SimExchange(NaNFeed())
    rows = {r["symbol"]: r for r in ex.tickers()}
    json.dumps(rows, allow_nan=False)  # raises on NaN or infinity
    btc, eth = rows["PF_XBTUSD"], rows["PF_ETHUSD"]
    assert (btc["last"], btc["bid"], btc["ask"]) == ("100.0", "99.5", "100.5")
    assert "vol24h" not in btc and "volumeQuote" not in btc  # the NaN volume is left out
    assert "bid" not in eth and "ask" not in eth
    assert eth["markPrice"] == eth["last"] == "100.0"  # the engine's mark stands in


def test_every_account_answer_is_valid_json_with_numeric_strings():
    ex = SimExchange(Feed(now_bar=5))
    ex.place(spec("mkt", cli_ord_id="m-1"))
    ex.place(spec("stp", side="sell", stop_price=95.0, limit_price=94.5, reduce_only=True))
    answers = [ex.open_orders(), ex.positions(), ex.fills(None), ex.accounts(), ex.tickers()]
    json.dumps(answers, allow_nan=False)
    (stop_row,) = ex.open_orders()
    assert (stop_row["stopPrice"], stop_row["limitPrice"], stop_row["unfilledSize"]) == (
        "95.0",
        "94.5",
        "1.0",
    )
    (fill,) = ex.fills(None)
    assert (fill["size"], fill["price"]) == ("1.0", "100.0")
    assert ex.accounts()["flex"]["portfolioValue"] == "9999.95"  # 10k less the 0.05 % fee


def test_the_account_log_books_two_legs_per_fill_and_filters_like_kraken():
    ex = SimExchange(Feed(now_bar=5))
    ex.place(spec("mkt", cli_ord_id="in"))
    ex.advance()
    ex.place(spec("mkt", side="sell", reduce_only=True, cli_ord_id="out"))
    logs = ex.account_log()["logs"]
    assert [r["id"] for r in logs] == [4, 3, 2, 1]  # newest first by default
    assert [r["asset"] for r in logs] == ["usd", "pf_xbtusd", "usd", "pf_xbtusd"]
    cash_out, position_out = logs[0], logs[1]
    assert (position_out["old_balance"], position_out["new_balance"]) == (1.0, 0.0)
    assert cash_out["new_balance"] == pytest.approx(
        cash_out["old_balance"] + cash_out["realized_pnl"] - cash_out["fee"]
    )
    later = START + 6 * H
    assert [r["id"] for r in ex.account_log(since=later, ascending=True)["logs"]] == [3, 4]
    assert [r["id"] for r in ex.account_log(before=later)["logs"]] == [2, 1]
    assert len(ex.account_log(count=1)["logs"]) == 1
    assert ex.account_log(info="funding rate change")["logs"] == []


def test_a_trigger_signal_outside_krakens_enum_is_an_invalid_argument():
    from venues.kraken_sim.endpoints import send_order

    query = "orderType=stp&symbol=PF_XBTUSD&side=sell&size=1&stopPrice=95&triggerSignal=spot"
    with pytest.raises(ApiError, match="invalidArgument"):
        send_order(SimExchange(Feed()), ApiRequest("POST", "/x", query, "", {}))
