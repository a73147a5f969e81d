"""Configuration folders for tests that run whole cycles."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def small_config(folder: Path) -> Path:
    """The shipped configuration on an 8-market sim (the same cycle, in about a second),
    written into `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "safety.yaml"):
        (folder / name).write_text((REPO / "configs" / name).read_text())
    with open(folder / "config.yaml", "a") as out:
        out.write("\nvenue:\n  sim_markets: 8\n")
    return folder
