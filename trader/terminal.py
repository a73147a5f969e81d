"""What the long-running commands share on the terminal: ISO-time arguments and a
one-line progress bar."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

from core.cycle import parse_utc


def iso_time(text: str) -> datetime:
    """An argparse type: an ISO date or date-time, UTC unless it names a zone."""
    try:
        return parse_utc(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date/time, e.g. 2025-03-01 or 2025-03-01T12:00"
        ) from exc


class ProgressBar:
    """`label [####....] done/total unit  elapsed` on stderr, redrawn in place; silent when
    stderr is not a terminal (a log file or a pipe gets no carriage returns)."""

    WIDTH = 30

    def __init__(self, label: str, unit: str) -> None:
        self.label, self.unit = label, unit
        self.started = time.perf_counter()
        self.shown = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.shown:
            return
        filled = int(self.WIDTH * done / max(total, 1))
        elapsed = time.perf_counter() - self.started
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} "
            f"{self.unit} {elapsed:6.1f} s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
