"""The HTTP side: a loopback ThreadingHTTPServer speaking Kraken Futures REST.

Order of work per request: route -> latency -> fault draw (5xx / 429 /
timeout refuse before anything happens) -> signature check (private routes)
-> Kraken's cost budget -> the endpoint -> ack faults (ACK_LOST, SLOW_ACK
lose or delay an answer to work already done).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from core.errors import VenueError, VenueRetryableError
from venues.base import MarketDataVenue
from venues.kraken_sim.auth import Credentials
from venues.kraken_sim.endpoints import ApiRequest, Route, resolve
from venues.kraken_sim.exchange import ApiError, SimExchange
from venues.kraken_sim.faults import FaultKind, FaultRule, Faults
from venues.kraken_sim.render import iso
from venues.paper.config import PaperConfig
from venues.paper.driver import FundingSchedule
from venues.paper.engine import PaperEngine

log = logging.getLogger("smc_trader.kraken_sim")


class KrakenSimServer(ThreadingHTTPServer):
    """Serves one SimExchange to clients holding one key pair."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        exchange: SimExchange,
        credentials: Credentials,
        faults: Faults,
    ) -> None:
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise ValueError(f"the simulator listens on loopback only, not {address[0]}")
        self.exchange = exchange
        self.credentials = credentials
        self.faults = faults
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on kept-alive clients so their handler threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: ccxt reuses one requests session
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server: KrakenSimServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("KRAKEN_SIM %s %s", self.address_string(), format % args)

    # -- the pipeline -------------------------------------------------------------------

    def _serve(self) -> None:
        started = time.perf_counter()
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        found = resolve(url.path)
        if found is None or self.command not in found[0].methods:
            self._send_error(404, "notFound")
            return
        route, path_args = found
        request = ApiRequest(self.command, url.path, url.query, body, path_args)
        faults = self.server.faults
        if faults.latency_ms > 0:
            time.sleep(faults.latency_ms / 1000)
        fault = faults.draw(route.name)
        if fault is not None and self._refuse(fault):
            return
        if route.private and not self._authentic(request):
            self._send_error(401, "authenticationError")
            return
        budget = faults.budget
        cost = route.cost(request)
        if budget is not None and cost and not budget.try_spend(cost):
            self._send_error(429, "apiLimitExceeded")
            return
        status, payload = self._answer(route, request, fault)
        if fault is not None and self._lose_answer(fault):
            return
        self._send_json(status, payload)
        log.debug(
            "KRAKEN_SIM %s %s %d %.1fms",
            self.command,
            url.path,
            status,
            (time.perf_counter() - started) * 1000,
        )

    def _answer(
        self, route: Route, request: ApiRequest, fault: FaultRule | None
    ) -> tuple[int, dict[str, Any]]:
        exchange = self.server.exchange
        if fault is not None and fault.kind is FaultKind.REJECT and route.name == "sendorder":
            status = {
                "status": fault.reason,
                "receivedTime": iso(exchange.now()),
                "orderEvents": [],
            }
            return 200, self._envelope({"sendStatus": status})
        try:
            payload = route.handler(exchange, request)
        except ApiError as exc:
            return exc.http_status, self._error_body(exc.code)
        except VenueRetryableError as exc:
            log.warning("KRAKEN_SIM_FEED_UNAVAILABLE endpoint=%s error=%s", route.name, exc)
            return 503, self._error_body("Unavailable")
        except VenueError as exc:  # e.g. the replay data has run out
            log.error("KRAKEN_SIM_FEED_ERROR endpoint=%s error=%s", route.name, exc)
            return 500, self._error_body("Server Error")
        except Exception:  # a bug: answer like a broken exchange, keep serving the others
            log.exception("KRAKEN_SIM_BUG endpoint=%s", route.name)
            return 500, self._error_body("unknownError")
        return 200, self._envelope(payload) if route.enveloped else payload

    def _authentic(self, request: ApiRequest) -> bool:
        post_data = request.query or request.body
        return self.server.credentials.verify(
            self.headers.get("APIKey"),
            self.headers.get("Authent"),
            post_data,
            request.path,
            self.headers.get("Nonce") or "",
        )

    def _refuse(self, fault: FaultRule) -> bool:
        """Faults that strike before the request is carried out; True when one did."""
        if fault.kind is FaultKind.SERVER_ERROR:
            self._fail(fault.status)
            return True
        if fault.kind is FaultKind.RATE_LIMIT:
            self._send_error(429, "apiLimitExceeded")
            return True
        if fault.kind is FaultKind.TIMEOUT:
            time.sleep(self.server.faults.timeout_s)
            self._fail(0)
            return True
        return False

    def _lose_answer(self, fault: FaultRule) -> bool:
        """Faults that strike after the work is done; True when the answer was lost."""
        if fault.kind is FaultKind.ACK_LOST:
            self._fail(fault.status)
            return True
        if fault.kind is FaultKind.SLOW_ACK:
            time.sleep(self.server.faults.timeout_s)  # the client has given up by now
        return False

    # -- writing ----------------------------------------------------------------------

    def _envelope(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"result": "success", **payload, "serverTime": iso(self.server.exchange.now())}

    def _error_body(self, code: str) -> dict[str, Any]:
        return {"result": "error", "error": code, "serverTime": iso(self.server.exchange.now())}

    def _send_error(self, status: int, code: str) -> None:
        self._send_json(status, self._error_body(code))

    def _fail(self, status: int) -> None:
        """A 5xx with an HTML body, as a proxy in front of Kraken sends; 0 hangs up instead."""
        if status == 0:
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client left first
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = f"<html><body><h1>{status} Service Unavailable</h1></body></html>".encode()
        self._write(status, body, "text/html")

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._write(status, json.dumps(payload).encode(), "application/json")

    def _write(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client gave up (its timeout): nothing to tell


class RunningSim:
    """A simulator serving in a background thread. Use as a context manager or call stop().

    From a test: `faults` switches request faults and exchange behaviour at runtime
    (inject, partial_stop_fills, refuse_wrong_side_stops, delay_fill_reports, clear);
    `exchange.*_by_hand` changes the account behind the client's back (place_by_hand,
    cancel_by_hand, cancel_all_by_hand, open_position_by_hand, close_position_by_hand);
    `advance` moves the clock; `engine` reads the exchange's own truth.
    """

    def __init__(self, server: KrakenSimServer, thread: threading.Thread) -> None:
        self.server = server
        self._thread = thread
        self._stopped = False

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def exchange(self) -> SimExchange:
        return self.server.exchange

    @property
    def engine(self) -> PaperEngine:
        return self.server.exchange.engine

    @property
    def faults(self) -> Faults:
        return self.server.faults

    def now(self) -> datetime:
        return self.exchange.now()

    def advance(self, bars: int = 1) -> datetime:
        """Move the feed's clock by `bars` bars and fill every order they reach."""
        return self.exchange.advance(bars)

    def stop(self) -> None:
        """Stop serving, hang up on open connections, release the port. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.server.shutdown()
        self.server.close_connections()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(
    feed: MarketDataVenue,
    api_key: str,
    api_secret: str,
    port: int = 0,
    faults: Faults | None = None,
    *,
    paper: PaperConfig | None = None,
    funding: FundingSchedule | None = None,
    timeframe: str | None = None,
    closed_order_retention: timedelta | None = timedelta(seconds=5),
    host: str = "127.0.0.1",
) -> RunningSim:
    """Serve a Kraken-Futures-compatible exchange on host:port (0 picks a free port).

    Accepts only requests signed with (api_key, api_secret). Refuses a secret that
    is not base64, a non-loopback host, and a feed whose lot sizes are not powers
    of ten (ValueError).
    """
    credentials = Credentials(api_key, api_secret)
    faults = faults or Faults()
    exchange = SimExchange(
        feed,
        paper,
        timeframe=timeframe,
        funding=funding,
        closed_order_retention=closed_order_retention,
        faults=faults,
    )
    server = KrakenSimServer((host, port), exchange, credentials, faults)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kraken-sim", daemon=True
    )
    thread.start()
    log.info(
        "KRAKEN_SIM_START url=http://%s:%d markets=%d",
        host,
        server.server_address[1],
        len(exchange.catalogue),
    )
    return RunningSim(server, thread)


API_URL_KEYS = ("public", "private", "charts", "history", "feeschedules")


def point_ccxt_at(exchange: Any, url: str) -> Any:
    """Rewrite a ccxt krakenfutures client's urls['api'] to a local simulator; returns it.

    Call set_sandbox_mode(True) before this, never after: it overwrites urls['api'].
    """
    base = url.rstrip("/")
    api = dict(exchange.urls["api"])
    api.update(
        public=f"{base}/derivatives/api/",
        private=f"{base}/derivatives/api/",
        charts=f"{base}/api/charts/",
        history=f"{base}/api/history/",
        feeschedules=f"{base}/api/feeschedules/",
    )
    exchange.urls["api"] = api
    return exchange
