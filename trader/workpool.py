"""The work-pool path (prefect.yaml): a worker's flow run starts in the checkout it names.

`prefect deploy --all` registers the deployments of prefect.yaml (names ending in
"-pool", so they never replace the ones `trader run` serves); `prefect worker start
--pool smc-trader` runs them. Each run first calls `enter_home` (prefect.yaml's pull
step), which refuses clearly when SMC_TRADER_HOME is missing instead of running the
cycle in the worker's temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import ConfigError

HOME_ENV = "SMC_TRADER_HOME"


def enter_home() -> dict[str, str]:
    """Change into $SMC_TRADER_HOME. Returns {"directory": path} (a pull step's output).

    Refuses (ConfigError) when the variable is unset or names no smc-trader checkout."""
    home = os.environ.get(HOME_ENV, "").strip()
    if not home:
        raise ConfigError(
            f"{HOME_ENV} is not set: the worker must know the smc-trader checkout to run in; "
            f"start it as {HOME_ENV}=/path/to/smc-trader prefect worker start --pool "
            "smc-trader (deploy/smc-trader-worker.service sets it)"
        )
    path = Path(home).expanduser()
    if not (path / "configs").is_dir() or not (path / "prefect.yaml").is_file():
        raise ConfigError(
            f"{HOME_ENV}={home} is not an smc-trader checkout (no configs/ and prefect.yaml "
            "there): point it at the checkout"
        )
    os.chdir(path)
    return {"directory": str(path)}
