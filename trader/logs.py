"""One structured line per event, to stderr and logs/trader.log, secrets masked."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from trader.settings import SecretMaskFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def default_log_file() -> Path:
    return Path(os.environ.get("SMC_TRADER_LOG_FILE", "logs/trader.log"))


def setup_logging(level: str = "INFO", log_file: Path | None = None) -> None:
    log_file = log_file or default_log_file()
    logger = logging.getLogger("smc_trader")
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        if getattr(handler, "_smc_trader", False):
            logger.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(SecretMaskFilter())
        handler._smc_trader = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
