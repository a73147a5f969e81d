"""Which Prefect server `trader run` talks to, and our own one for `--with-server`.

- PREFECT_API_URL set (environment, .env.local or the Prefect profile): that server is
  used, and must answer; nothing is started.
- Otherwise `--with-server` starts our own server: on --server-port when given (refused
  if the port is taken), else on 4200, or on a free port when 4200 is taken (logged with
  the UI's address). A server we did not start is never reused silently.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import ConfigError, TraderError

log = logging.getLogger("smc_trader.server")

DEFAULT_PORT = 4200
PR_SET_PDEATHSIG = 1  # linux/prctl.h
SERVER_LOG = Path("logs/prefect-server.log")


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile, if any."""
    from prefect.settings import get_current_settings

    url = os.environ.get("PREFECT_API_URL") or get_current_settings().api.url
    return str(url) if url else None


def healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def choose_port(host: str, requested: int | None) -> int:
    """The port our server will use. Refuses (ConfigError) an explicitly requested port
    that is taken; takes a free port when the default one is."""
    if requested is not None:
        if not port_is_free(host, requested):
            raise ConfigError(
                f"--server-port {requested} is taken on {host}: choose another port, or set "
                f"PREFECT_API_URL=http://{host}:{requested}/api to use the server there"
            )
        return requested
    if port_is_free(host, DEFAULT_PORT):
        return DEFAULT_PORT
    port = free_port(host)
    log.warning(
        "port %s is taken by another process (not ours, not reused): our Prefect server uses "
        "port %s instead; set PREFECT_API_URL to use a server of your own", DEFAULT_PORT, port
    )
    return port


def require_server(wait_s: float = 0.0) -> str:
    """The configured server's API URL, once it answers (waiting up to `wait_s`: at boot the
    service may start before its server). Refuses (ConfigError) when none is configured or
    it never answers. `trader run` without --with-server needs one: an ephemeral server has
    no scheduler, so it would serve without ever starting a cycle."""
    url = configured_api_url()
    if url is None:
        raise ConfigError(
            "trader run needs a Prefect server that schedules runs: add --with-server to start "
            "one here, or set PREFECT_API_URL=http://HOST:PORT/api to use a running one"
        )
    deadline = time.monotonic() + wait_s
    if not healthy(url) and wait_s > 0:
        log.info("waiting up to %.0f s for the Prefect server at %s", wait_s, url)
    while not healthy(url):
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"no Prefect server answers at PREFECT_API_URL={url}: start it (make server, "
                "or the smc-trader-prefect service), or unset it and use --with-server"
            )
        time.sleep(1.0)
    return url


def _die_with_parent() -> None:
    """In the server's child process, before exec: SIGTERM it when `trader` dies, even by
    SIGKILL (it runs in its own session, so nothing else would stop it). Linux only."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the finally block below still stops it on every clean exit


def _server_command() -> list[str]:
    prefect = shutil.which("prefect") or str(Path(sys.executable).with_name("prefect"))
    return [prefect, "server", "start"]


@contextmanager
def local_server(
    host: str = "127.0.0.1", port: int | None = None, timeout_s: float = 90
) -> Iterator[str]:
    """Yield the API URL of the server to use: PREFECT_API_URL's when set, else our own,
    started here (in its own process group, so Ctrl-C reaches us, not it) and stopped after.
    """
    configured = configured_api_url()
    if configured is not None:
        log.info("using the Prefect server at PREFECT_API_URL=%s", configured)
        yield require_server()
        return
    port = choose_port(host, port)
    api_url = f"http://{host}:{port}/api"
    SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
    out = open(SERVER_LOG, "ab")  # noqa: SIM115 - lives as long as the server
    # The UI reads its API address from these settings, not from --port: without them the UI
    # of a server on another port talks to whatever listens on 4200.
    env = {
        **os.environ,
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_API_URL": api_url,
    }
    proc = subprocess.Popen(
        _server_command(), stdout=out, stderr=out, env=env, start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not healthy(api_url, timeout_s=1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise TraderError(
                    f"the Prefect server did not start on {host}:{port}; see {SERVER_LOG}"
                )
            time.sleep(0.5)
        os.environ["PREFECT_API_URL"] = api_url
        log.info("Prefect UI: http://%s:%s (server log: %s)", host, port, SERVER_LOG)
        yield api_url
    finally:
        stop_server(proc)
        out.close()


def stop_server(proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    """SIGTERM the server's process group, SIGKILL it if it has not gone in `timeout_s`."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
