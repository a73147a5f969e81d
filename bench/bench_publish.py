"""The read copy (store/publish.py): cycle time with and without a SQL reader held open,
what the publication costs per cycle, and how that cost grows with the store.

Not a test: it prints figures (and saves them to bench/results/publish.txt).

1. 56-market sim cycles as flow runs on a running Prefect server, in rounds of three
   adjacent cycles: no reader; a reader process holding the read copy open (two queries,
   why_no_trades and a candle count, every 5 s); a reader querying every 50 ms. Ratios
   are taken within each round (the machine is shared: its load drifts between rounds)
   and their median reported.
2. The publication of each cycle: milliseconds and bytes written, from its log line.
3. The same store grown by a year of history for its 56 markets (synthetic rows):
   a publication with nothing changed (the fingerprint scan) and one with a new hourly
   candle per market (a typical cycle).
4. The old way, for contrast: a reader holding the store's own file makes the next cycle
   fail (after store.db.LOCK_WAIT_S).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ROUNDS = 6

READER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("open", flush=True)
    while True:
        con.execute("SELECT * FROM why_no_trades").fetchall()
        con.execute("SELECT count(*) FROM candles").fetchall()
        time.sleep(float(sys.argv[2]))
    """
)
IDLE_S, BUSY_S = 5.0, 0.05  # a notebook left open / a dashboard hammering the copy


class Publications(logging.Handler):
    """Collects the "read copy published" lines of the cycles."""

    PATTERN = re.compile(r"generation \d+, (\d+) ms, (\d+) bytes in (\d+) parts \((\d+) unch")

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, int, int, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.search(record.getMessage())
        if match:
            self.rows.append(tuple(int(g) for g in match.groups()))  # type: ignore[arg-type]


def ratio(values: list[float], base: list[float]) -> float:
    """Median of the per-round ratios."""
    return statistics.median(v / b for v, b in zip(values, base, strict=True))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"prefect server at {url} did not start")


def cycles(db: Path, n: int) -> list[float]:
    from flows.cycle import trading_cycle

    times = []
    for _ in range(n):
        start = time.perf_counter()
        trading_cycle(db=str(db))
        times.append(time.perf_counter() - start)
    return times


def with_reader(path: Path, run, pause_s: float = IDLE_S):
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(pause_s)],
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
    try:
        return run()
    finally:
        reader.kill()
        reader.wait()


def grow_candles(con, months: int = 12) -> int:
    """A year more history for every stored market and timeframe (synthetic rows before
    each series' first candle), so the newest candles stay where a live store has them."""
    con.execute(
        f"""
        INSERT OR IGNORE INTO candles
        SELECT c.symbol, c.timeframe, g.ts, 100, 101, 99, 100, 1000
        FROM (SELECT symbol, timeframe, min(ts) AS first,
                     CASE timeframe WHEN '1h' THEN INTERVAL 1 HOUR
                                    WHEN '4h' THEN INTERVAL 4 HOUR
                                    ELSE INTERVAL 1 DAY END AS step
              FROM candles GROUP BY ALL) c,
             LATERAL (SELECT unnest(generate_series(
                 c.first - INTERVAL {months} MONTH, c.first - c.step, c.step)) AS ts) g
        """
    )
    return con.execute("SELECT count(*) FROM candles").fetchall()[0][0]


def scaling(db: Path) -> list[str]:
    import duckdb

    from store.publish import publish

    big = db.with_name("big.duckdb")
    big.write_bytes(db.read_bytes())
    con = duckdb.connect(str(big))
    con.execute("SET TimeZone='UTC'")
    rows = grow_candles(con)
    publish(con, big)  # first publication of the grown store
    unchanged = publish(con, big)
    con.execute(
        "INSERT OR IGNORE INTO candles SELECT symbol, '1h', max(ts) + INTERVAL 1 HOUR, 1, 1, "
        "1, 1, 1 FROM candles WHERE timeframe = '1h' GROUP BY symbol"
    )
    one_bar = publish(con, big)
    con.close()
    size = big.stat().st_size
    return [
        f"store grown to {rows:,} candles ({size / 1e6:.0f} MB file): publication with nothing "
        f"changed {unchanged.seconds * 1000:.0f} ms, 0 bytes; with one new hourly candle per "
        f"market {one_bar.seconds * 1000:.0f} ms, {one_bar.bytes_written:,} bytes "
        f"({one_bar.parts_written} parts written, {one_bar.parts_linked} linked)",
    ]


def old_way(db: Path) -> str:
    from store.db import LOCK_WAIT_S, StoreLockedError

    start = time.perf_counter()
    try:
        with_reader(db, lambda: cycles(db, 1))
    except StoreLockedError:
        return (f"reader holding the store's own file: the cycle failed after "
                f"{time.perf_counter() - start:.1f} s (StoreLockedError; waits "
                f"{LOCK_WAIT_S:.0f} s for the lock)")
    return "reader holding the store's own file: the cycle did NOT fail (unexpected)"


def main() -> None:
    from store.publish import read_copy_of
    from tasks.logs import setup_logging

    work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    os.environ["SMC_TRADER_LOG_FILE"] = str(work / "trader.log")
    setup_logging("WARNING")
    publications = Publications()
    report = logging.getLogger("smc_trader.report")
    report.setLevel(logging.INFO)
    report.addHandler(publications)

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_API_PORT": str(port), "PREFECT_HOME": str(work / "p")}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    db = work / "trading.duckdb"
    try:
        wait_healthy(url)
        os.environ["PREFECT_API_URL"] = url
        cycles(db, 2)  # initial history, first full publication
        publications.rows.clear()
        views = read_copy_of(db).views_file
        rounds = [
            (cycles(db, 1)[0],
             with_reader(views, lambda: cycles(db, 1), IDLE_S)[0],
             with_reader(views, lambda: cycles(db, 1), BUSY_S)[0])
            for _ in range(ROUNDS)
        ]
        contrast = old_way(db)
    finally:
        server.terminate()
        server.wait(timeout=30)
    alone = [r[0] for r in rounds]
    held = [r[1] for r in rounds]
    busy = [r[2] for r in rounds]
    ms = [r[0] for r in publications.rows]
    nbytes = [r[1] for r in publications.rows]
    copy = read_copy_of(db)
    current = sum(f.stat().st_size for f in copy.current.resolve().rglob("*") if f.is_file())
    lines = [
        f"machine: {os.cpu_count()} cores; sim venue, 56 markets; {ROUNDS} rounds of three "
        "adjacent cycles as flow runs on a running Prefect server",
        f"no reader      median {statistics.median(alone):.2f} s per cycle",
        f"reader held    median {statistics.median(held):.2f} s per cycle; within a round "
        f"{ratio(held, alone):.2f}x the cycle without (connection open, two queries every "
        f"{IDLE_S:g} s); all {len(held)} completed",
        f"reader busy    median {statistics.median(busy):.2f} s per cycle; within a round "
        f"{ratio(busy, alone):.2f}x (two queries every {BUSY_S:g} s); all {len(busy)} completed",
        f"publication    median {statistics.median(ms):.0f} ms (max {max(ms)}), median "
        f"{statistics.median(nbytes) / 1e3:.0f} KB written per cycle (max "
        f"{max(nbytes) / 1e3:.0f} KB); the read copy holds {current / 1e6:.1f} MB, the store "
        f"file {db.stat().st_size / 1e6:.1f} MB",
        *scaling(db),
        contrast,
    ]
    text = "\n".join(lines)
    print(text)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "publish.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
