"""The Kraken adapters fed answers in Kraken's own shape, through unmodified ccxt parsing.

The answers below are ours, written in the shape Kraken Futures sends as recorded
in ccxt's static test fixtures (ts/src/test/static/response/krakenfutures.json):
numbers as decimal strings in /tickers, /openorders, /fills and /openpositions, JSON
numbers in sendorder / cancelorder events and the account log. A stub transport
replaces the HTTP call only; signing, routing and ccxt's parsing all run.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import ccxt
import pytest

from core.errors import RateLimitedError
from core.orders import OrderRequest, OrderSide, OrderStatus, OrderType
from core.registry import BAD_TICKER_LOG, build_registry
from schemas.config import MarketsConfig, Tier
from venues.base import SimulatedClock
from venues.kraken import KrakenFuturesClient, KrakenVenue
from venues.kraken_limits import ReadRetry
from venues.kraken_orders import KrakenOrderVenue

NOW = datetime(2026, 2, 8, 17, 0, tzinfo=UTC)
Answer = dict[str, Any] | Callable[[], dict[str, Any]]

INSTRUMENTS = {
    "result": "success",
    "instruments": [
        {
            "symbol": symbol,
            "type": "flexible_futures",
            "tradeable": True,
            "tickSize": tick,
            "contractSize": 1,
            "contractValueTradePrecision": precision,
            "marginLevels": [{"numNonContractUnits": 0, "initialMargin": 0.02}],
            "openingDate": "2022-01-01T00:00:00.000Z",
        }
        for symbol, tick, precision in (
            ("PF_XBTUSD", 0.5, 4),
            ("PF_ETHUSD", 0.05, 3),
            ("PF_DOGEUSD", 0.000001, 0),
        )
    ],
    "serverTime": "2026-02-08T17:00:00.000Z",
}


def ticker(symbol: str, price: str, **override: str) -> dict[str, object]:
    last = price
    row: dict[str, object] = {
        "symbol": symbol,
        "last": last,
        "lastTime": "2026-02-08T17:32:13.922599Z",
        "tag": "perpetual",
        "markPrice": last,
        "bid": str(float(last) * 0.9999),
        "ask": str(float(last) * 1.0001),
        "vol24h": "38320755",
        "volumeQuote": "3743943.987912",
        "open24h": last,
        "suspended": False,
        "postOnly": False,
    }
    row.update(override)
    return row


class StubKraken(KrakenFuturesClient):
    """A krakenfutures client whose HTTP layer answers from `answers` (by URL path, without
    the /derivatives/api/v3/ or /api/history/v3/ prefix) and records every request."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        secret = base64.b64encode(b"stub secret for the answer-shape tests").decode()
        super().__init__(
            {"apiKey": "stub", "secret": secret, "enableRateLimit": False},
            reads=ReadRetry(attempts=2, backoff_s=0.0, backoff_max_s=0.0),
        )
        self.answers = {"instruments": INSTRUMENTS, **answers}
        self.requests: list[str] = []

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        path = urlsplit(url).path
        for prefix in ("/derivatives/api/v3/", "/api/history/v3/"):
            path = path.removeprefix(prefix)
        self.requests.append(path)
        answer = self.answers[path]
        payload = answer() if callable(answer) else answer
        return json.loads(json.dumps(payload))  # a fresh copy, as from the wire


def order_venue(answers: dict[str, Answer]) -> tuple[KrakenOrderVenue, StubKraken]:
    client = StubKraken(answers)
    return KrakenOrderVenue(client, clock=SimulatedClock(NOW, NOW - NOW.replace(hour=16))), client


def rate_limited() -> dict[str, Any]:
    raise ccxt.DDoSProtection("krakenfutures 429 apiLimitExceeded")


# -- cancel -------------------------------------------------------------------------------------

CANCELLED = {
    "result": "success",
    "cancelStatus": {
        "status": "cancelled",
        "order_id": "85c40002-3f20-4e87-9302-262626c3531b",
        "receivedTime": "2026-02-08T17:00:01.000Z",
        "orderEvents": [
            {
                "uid": "85c40002-3f20-4e87-9302-262626c3531b",
                "order": {
                    "orderId": "85c40002-3f20-4e87-9302-262626c3531b",
                    "cliOrdId": "smc-tp1",
                    "type": "lmt",
                    "symbol": "PF_XBTUSD",
                    "side": "sell",
                    "quantity": 0.25,
                    "filled": 0.05,
                    "limitPrice": 64000.0,
                    "stopPrice": None,
                    "reduceOnly": True,
                    "timestamp": "2026-02-08T16:26:27.790Z",
                    "lastUpdateTimestamp": "2026-02-08T16:26:27.790Z",
                },
                "type": "CANCEL",
            }
        ],
    },
    "serverTime": "2026-02-08T17:00:01.000Z",
}


def test_a_cancel_that_worked_is_read_from_the_answer_and_makes_no_second_call():
    # /orders/status would answer 429: the adapter must not even ask it
    venue, client = order_venue({"cancelorder": CANCELLED, "orders/status": rate_limited})
    order = venue.cancel("85c40002-3f20-4e87-9302-262626c3531b")
    assert client.requests == ["instruments", "cancelorder"]
    assert (order.status, order.client_id, order.symbol) == (
        OrderStatus.CANCELLED,
        "smc-tp1",
        "BTC/USD:USD",
    )
    assert (order.size, order.filled, order.price, order.reduce_only) == (0.25, 0.05, 64000.0, True)


def test_a_cancel_answered_without_events_uses_what_the_venue_already_knows():
    sent = {
        "result": "success",
        "sendStatus": {
            "order_id": "179f9af8-e45e-469d-b3e9-2fd4675cb7d0",
            "status": "placed",
            "receivedTime": "2026-02-08T17:00:00.000Z",
            "orderEvents": [
                {
                    "type": "PLACE",
                    "order": {
                        "orderId": "179f9af8-e45e-469d-b3e9-2fd4675cb7d0",
                        "cliOrdId": "smc-e1",
                        "type": "lmt",
                        "symbol": "PF_XBTUSD",
                        "side": "buy",
                        "quantity": 0.1,
                        "filled": 0,
                        "limitPrice": 58000.0,
                        "reduceOnly": False,
                        "timestamp": "2026-02-08T17:00:00.000Z",
                        "lastUpdateTimestamp": "2026-02-08T17:00:00.000Z",
                    },
                    "reducedQuantity": None,
                }
            ],
        },
    }
    bare = {"result": "success", "cancelStatus": {"status": "cancelled", "order_id": "x"}}
    venue, client = order_venue(
        {"sendorder": sent, "cancelorder": bare, "orders/status": rate_limited}
    )
    placed = venue.submit(
        OrderRequest("BTC/USD:USD", OrderSide.BUY, OrderType.LIMIT, 0.1, "smc-e1", 58000.0)
    )
    gone = venue.cancel(placed.venue_order_id)
    assert "orders/status" not in client.requests
    assert (gone.venue_order_id, gone.status, gone.client_id) == (
        placed.venue_order_id,
        OrderStatus.CANCELLED,
        "smc-e1",
    )


def test_a_cancel_of_an_unknown_order_without_events_asks_orders_status():
    bare = {"result": "success", "cancelStatus": {"status": "cancelled", "order_id": "y"}}
    venue, client = order_venue(
        {"cancelorder": bare, "orders/status": {"result": "success", "orders": []}}
    )
    assert venue.cancel("y") is None
    assert client.requests[-2:] == ["cancelorder", "orders/status"]


def test_a_refused_stop_carries_krakens_status_word():
    refused = {
        "result": "success",
        "sendStatus": {"status": "invalidPrice", "receivedTime": "x", "orderEvents": []},
    }
    venue, client = order_venue({"sendorder": refused})
    stop = OrderRequest(
        "BTC/USD:USD", OrderSide.SELL, OrderType.STOP, 0.1, "smc-sl1", trigger_price=70000.0
    )
    with pytest.raises(Exception) as raised:
        venue.submit(stop)
    assert getattr(raised.value, "reason", None) == "invalidPrice"
    assert client.requests.count("sendorder") == 1  # an order is never sent twice


# -- fills ---------------------------------------------------------------------------------------


def test_a_fill_on_a_market_missing_from_instruments_keeps_its_size():
    fills = {
        "result": "success",
        "fills": [
            {
                "fill_id": "da062bc0-5901-48a5-9bb3-34c6be3ef7a5",
                "symbol": "PF_NEWUSD",  # listed after load_markets, or delisted since
                "side": "sell",
                "order_id": "85805e01-9eed-4395-8360-ed1a228237c9",
                "cliOrdId": "smc-sl9",
                "size": "0.1",
                "price": "68.54",
                "fillTime": "2026-02-08T16:24:34.849Z",
                "fillType": "taker",
            },
            {
                "fill_id": "7066466a-9c46-48d6-9c43-3585d48f21a4",
                "symbol": "PF_ETHUSD",
                "side": "buy",
                "order_id": "56e84113-055e-44fd-950b-547113dffa3c",
                "size": "1.5",
                "price": "3003.1",
                "fillTime": "2026-02-08T16:20:00.000Z",
                "fillType": "maker",
            },
        ],
        "serverTime": "2026-02-08T17:00:00.000Z",
    }
    venue, _ = order_venue({"fills": fills})
    eth, new = venue.fills()
    assert (new.symbol, new.size, new.price, new.client_id) == ("PF_NEWUSD", 0.1, 68.54, "smc-sl9")
    assert (eth.symbol, eth.size, eth.price, eth.side) == (
        "ETH/USD:USD",
        1.5,
        3003.1,
        OrderSide.BUY,
    )


# -- the account, in strings ------------------------------------------------------------------


def test_positions_open_orders_and_balance_read_krakens_numeric_strings():
    answers: dict[str, Answer] = {
        "openpositions": {
            "result": "success",
            "openPositions": [
                {
                    "side": "short",
                    "symbol": "PF_ETHUSD",
                    "price": "3000.5",
                    "fillTime": "2026-02-08T16:24:34.849Z",
                    "size": "1.5",
                    "unrealizedFunding": "-0.001878596918214635",
                }
            ],
        },
        "tickers": {"result": "success", "tickers": [ticker("PF_ETHUSD", "2990.5")]},
        "openorders": {
            "result": "success",
            "openOrders": [
                {
                    "order_id": "a02a5141-5156-4f62-a992-0f879b5fc989",
                    "symbol": "PF_ETHUSD",
                    "side": "buy",
                    "orderType": "stop",
                    "stopPrice": "3100",
                    "limitPrice": "3110",
                    "unfilledSize": "1.0",
                    "filledSize": "0.5",
                    "receivedTime": "2025-10-21T08:42:03.057503Z",
                    "lastUpdateTime": "2025-10-21T08:42:03.057503Z",
                    "status": "partiallyFilled",
                    "reduceOnly": True,
                    "cliOrdId": "smc-sl2",
                }
            ],
        },
        "accounts": {
            "result": "success",
            "accounts": {
                "flex": {
                    "type": "multiCollateralMarginAccount",
                    "currencies": {},
                    "initialMargin": "299.05",
                    "portfolioValue": "10015.0",
                    "marginEquity": "10015.0",
                }
            },
        },
    }
    venue, _ = order_venue(answers)
    (position,) = venue.positions()
    assert (position.symbol, position.size, position.entry_price, position.mark_price) == (
        "ETH/USD:USD",
        1.5,
        3000.5,
        2990.5,
    )
    assert position.unrealized_pnl == pytest.approx(15.0)  # short 1.5 from 3000.5 to 2990.5
    (stop,) = venue.open_orders()
    assert (stop.type, stop.trigger_price, stop.price, stop.size, stop.filled) == (
        OrderType.STOP,
        3100.0,
        3110.0,  # a stop-limit: its limit read from limitPrice
        1.5,
        0.5,
    )
    balance = venue.balance()
    assert (balance.equity, balance.margin_used) == (10015.0, 299.05)


def test_realised_pnl_comes_from_the_account_logs_cash_legs():
    log = {
        "accountUid": "f92fc7de-2fce-4265-b806-4f3c1efb37ee",
        "logs": [
            {
                "asset": "usd",
                "booking_uid": "10ca244e-1b73-4467-8c3c-74539c7ae677",
                "contract": "pf_xbtusd",
                "date": "2026-02-08T16:55:24.251Z",
                "execution": "a59b8e24-89d8-4553-a084-b2de96dba5d3",
                "fee": 3.5,
                "id": 9,
                "info": "futures trade",
                "margin_account": "flex",
                "new_balance": 9896.5,
                "old_balance": 10000.0,
                "realized_pnl": -100.0,
                "trade_price": 59000.0,
            },
            {
                "asset": "pf_xbtusd",
                "booking_uid": "628c1448-0c16-4b32-8de8-bd7fa44c81aa",
                "contract": "pf_xbtusd",
                "date": "2026-02-08T16:55:24.251Z",
                "execution": "a59b8e24-89d8-4553-a084-b2de96dba5d3",
                "fee": None,
                "id": 8,
                "info": "futures trade",
                "new_balance": 0,
                "old_balance": 0.1,
                "realized_pnl": None,
                "trade_price": 59000.0,
            },
            {
                "asset": "usd",
                "contract": "pf_ethusd",
                "date": "2026-02-08T16:00:00.000Z",
                "execution": None,
                "id": 2,
                "info": "funding rate change",
                "new_balance": 10000.0,
                "old_balance": 9999.9,
                "realized_funding": 0.1,
            },
        ],
    }
    venue, client = order_venue({"account-log": log})
    (exit_,) = venue.realised_pnl("BTC/USD:USD", since=NOW.replace(hour=0))
    assert client.requests[-1] == "account-log"
    assert (exit_.fill_id, exit_.realised_pnl, exit_.fee, exit_.price) == (
        "a59b8e24-89d8-4553-a084-b2de96dba5d3",
        -100.0,
        3.5,
        59000.0,
    )
    assert (exit_.position_before, exit_.position_after, exit_.closed_position) == (0.1, 0, True)
    assert venue.realised_pnl("ETH/USD:USD", since=NOW.replace(hour=0)) == []  # funding only


# -- tickers: one bad market -----------------------------------------------------------------------


def listen(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """caplog listens at the root; the CLI's logging setup may stop propagation earlier."""
    for name in ("smc_trader", "smc_trader.registry"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    caplog.set_level(logging.WARNING, logger="smc_trader.registry")


def test_a_ticker_with_a_non_numeric_volume_marks_that_market_only(caplog, monkeypatch):
    listen(caplog, monkeypatch)
    answers: dict[str, Answer] = {
        "tickers": {
            "result": "success",
            "tickers": [
                ticker("PF_XBTUSD", "60000.0"),
                ticker("PF_ETHUSD", "3000.0", vol24h="n/a", volumeQuote="n/a"),
                ticker("PF_DOGEUSD", "0.096", last="abc"),  # ccxt's own parser raises on it
                {"symbol": "in_xbtusd", "last": "60010", "lastTime": "2026-02-08T17:00:00Z"},
            ],
        }
    }
    venue = KrakenVenue(StubKraken(answers), clock=SimulatedClock(NOW, NOW - NOW.replace(hour=16)))
    markets = venue.markets()
    tickers = venue.tickers()
    assert tickers["BTC/USD:USD"].problem is None and tickers["BTC/USD:USD"].last == 60000.0
    assert tickers["ETH/USD:USD"].problem == "ticker field vol24h='n/a' is not a number"
    assert tickers["DOGE/USD:USD"].problem == "ticker field last='abc' is not a number"
    config = MarketsConfig(pinned_tier_a=("BTC",))
    for _ in range(2):  # two cycles
        frame = build_registry(markets, tickers, config)
    rows = {r["symbol"]: r for r in frame.iter_rows(named=True)}
    assert rows["BTC/USD:USD"]["tier"] == Tier.A
    assert rows["ETH/USD:USD"]["tier"] == Tier.REJECT
    assert "vol24h='n/a'" in rows["ETH/USD:USD"]["reason"]
    assert "last='abc'" in rows["DOGE/USD:USD"]["reason"]
    records = {id(r): r for r in caplog.records if BAD_TICKER_LOG in r.getMessage()}
    logged = sorted(r.getMessage() for r in records.values())
    assert len(logged) == 2  # once per market and problem, not once per cycle
    assert "symbol=DOGE/USD:USD: ticker field last='abc'" in logged[0]


def test_a_read_that_keeps_failing_gives_up_with_a_clear_error():
    venue, client = order_venue({"openpositions": rate_limited})
    with pytest.raises(RateLimitedError, match=r"fetch_positions.*gave up after 2 attempts"):
        venue.positions()
    assert client.requests.count("openpositions") == 2
