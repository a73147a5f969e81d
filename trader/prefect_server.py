"""A local Prefect server for `trader run --with-server`: started if none answers, stopped after."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import TraderError

log = logging.getLogger("smc_trader.server")


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def local_server(host: str = "127.0.0.1", port: int = 4200, timeout_s: float = 90) -> Iterator[str]:
    """Yield the API URL of a healthy Prefect server, starting one if none answers."""
    api_url = os.environ.get("PREFECT_API_URL") or f"http://{host}:{port}/api"
    if _healthy(api_url):
        log.info("using the Prefect server at %s", api_url)
        os.environ["PREFECT_API_URL"] = api_url
        yield api_url
        return
    prefect = shutil.which("prefect") or str(Path(sys.executable).with_name("prefect"))
    Path("logs").mkdir(exist_ok=True)
    out = open("logs/prefect-server.log", "ab")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [prefect, "server", "start", "--host", host, "--port", str(port)], stdout=out, stderr=out
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(api_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise TraderError(
                    f"the Prefect server did not start on {host}:{port}; see "
                    "logs/prefect-server.log (is the port taken? set PREFECT_API_URL to use "
                    "another server)"
                )
            time.sleep(0.5)
        os.environ["PREFECT_API_URL"] = api_url
        log.info("Prefect UI: http://%s:%s (server log: logs/prefect-server.log)", host, port)
        yield api_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()
