"""smc-trader application package: CLI, settings, logging.

Importing it sets process-wide Prefect defaults before Prefect is imported:
telemetry off (it logs "database is locked" on SQLite), a project-local
PREFECT_HOME, and our loggers forwarded to the Prefect UI. Each is only a
default: an operator's environment wins.
"""

import contextlib
import os
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Operator commands log outside flow runs; that is expected, not a warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
if "PREFECT_HOME" not in os.environ:
    home = Path(".local/prefect").resolve()
    # Prefect creates only the last level and warns otherwise (a fresh working directory).
    with contextlib.suppress(OSError):  # Prefect then says so itself
        home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(home)
os.environ.setdefault(
    "PREFECT_LOGGING_EXTRA_LOGGERS", "smc_trader,core,tasks,venues,store,flows,trader"
)
