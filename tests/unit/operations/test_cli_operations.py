"""What a new user hit (issue 12): one-line errors instead of tracebacks, `trader run`
without a server refuses naming the fix, our server takes a free port when 4200 is taken
(never reusing a foreign one), `trader sql` reads only the read copy."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import trader.prefect_server as prefect_server
from core.errors import ConfigError
from trader.cli import main

REPO = Path(__file__).resolve().parents[3]


def held_port() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_an_unreachable_kraken_is_one_line_before_any_flow_run(monkeypatch, capsys):
    monkeypatch.setenv("KRAKEN_API_KEY", "key-for-the-test")
    monkeypatch.setenv("KRAKEN_API_SECRET", "c2VjcmV0LWZvci10aGUtdGVzdA==")
    s, port = held_port()
    s.close()  # nothing listens there now: connection refused, like a dead network
    code = main(["cycle", "--config", str(REPO / "configs"), "--venue", "kraken",
                 "--api-url", f"http://127.0.0.1:{port}", "--db", "unused.duckdb"])
    err = capsys.readouterr().err
    assert code == 1
    # beside the log lines (timestamped), the error is one line, not a flow run's tracebacks
    (line,) = [x for x in err.splitlines() if not re.match(r"\d{4}-\d\d-\d\d ", x)]
    assert line.startswith(f"trader: cannot reach Kraken Futures at 127.0.0.1:{port}: ")
    assert "Connection refused" in line
    assert "Traceback" not in err


def test_trader_run_without_a_server_refuses_naming_with_server_and_prefect_api_url(
    tmp_path,
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")  # no profile naming a server
    result = subprocess.run(
        [sys.executable, "-m", "trader.cli", "run", "--config", str(REPO / "configs")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "--with-server" in result.stderr and "PREFECT_API_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_our_server_takes_a_free_port_when_the_default_one_is_taken(monkeypatch, caplog):
    s, port = held_port()
    try:
        monkeypatch.setattr(prefect_server, "DEFAULT_PORT", port)
        chosen = prefect_server.choose_port("127.0.0.1", None)
        assert chosen != port and prefect_server.port_is_free("127.0.0.1", chosen)
        # an explicitly requested port that is taken is refused, not silently replaced
        with pytest.raises(ConfigError, match=f"--server-port {port} is taken"):
            prefect_server.choose_port("127.0.0.1", port)
    finally:
        s.close()


def test_a_configured_server_that_does_not_answer_is_refused(monkeypatch):
    s, port = held_port()
    s.close()
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{port}/api")
    with pytest.raises(ConfigError, match="no Prefect server answers at PREFECT_API_URL"):
        prefect_server.require_server(wait_s=0.0)


def test_trader_sql_without_a_read_copy_is_one_line(tmp_path, capsys):
    code = main(["sql", "--config", str(REPO / "configs"), "--db", str(tmp_path / "x.duckdb"),
                 "-c", "SELECT 1"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "no read copy at" in err and "run one: trader cycle" in err
