"""One structured line per event, to stderr and logs/trader.log, secrets masked.

The file handler reopens the file when logrotate has moved it away (WatchedFileHandler),
so deploy/logrotate.conf rotates logs/trader.log without losing a line, even with the
service and its flow-run processes all writing to it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.settings import SecretMaskFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Our modules log under "smc_trader.*" or their module path (core.*, tasks.*, ...).
LOGGER_ROOTS = ("smc_trader", "core", "tasks", "venues", "store", "flows", "trader")


def default_log_file() -> Path:
    return Path(os.environ.get("SMC_TRADER_LOG_FILE", "logs/trader.log"))


def backtest_log_file() -> Path:
    """Backtests log beside the service log, never into it: a backtest's DEGRADED or
    HALTED lines in logs/trader.log would read as the live system's."""
    return default_log_file().with_name("backtest.log")


def setup_logging(
    level: str = "INFO", log_file: Path | None = None, console_level: str | None = None
) -> None:
    """Our loggers to stderr and `log_file` at `level`; `console_level` raises the bar for
    stderr only (a backtest's terminal shows its progress bar, the file every decision)."""
    log_file = log_file or default_log_file()
    console = logging.StreamHandler()
    if console_level is not None:
        console.setLevel(console_level)
    handlers: list[logging.Handler] = [console]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handlers.append(logging.handlers.WatchedFileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(SecretMaskFilter())
        handler._smc_trader = True  # type: ignore[attr-defined]
    for root in LOGGER_ROOTS:
        logger = logging.getLogger(root)
        logger.setLevel(level)
        logger.propagate = False
        for old in [h for h in logger.handlers if getattr(h, "_smc_trader", False)]:
            logger.removeHandler(old)
            old.close()
        for handler in handlers:
            logger.addHandler(handler)


def ensure_logging(level: str = "INFO") -> None:
    """Configure our log file unless this process already did (a served flow run is a fresh
    process started by Prefect, not by `trader`, and must still write logs/trader.log)."""
    if not any(getattr(h, "_smc_trader", False) for h in logging.getLogger("smc_trader").handlers):
        setup_logging(level)


@contextmanager
def quiet_decisions(level: int = logging.ERROR) -> Iterator[None]:
    """Inside the block our loggers pass only `level` and above: a sweep worker runs hundreds
    of backtests whose DEGRADED and refusal lines would bury the sweep's own output (their
    decisions are stored as results; `trader backtest` reruns one with every line)."""
    loggers = [logging.getLogger(root) for root in LOGGER_ROOTS]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in zip(loggers, before, strict=True):
            logger.setLevel(old)
