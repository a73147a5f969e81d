"""Load configuration (two YAML files over the model defaults) and secrets.

Refuses, with a message naming the file, the key, the value and the fix:
unknown keys, wrong types, and every violated safety relation.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from pydantic import SecretStr, ValidationError

from core.errors import ConfigError
from schemas.config import AppConfig, Secrets

log = logging.getLogger("smc_trader.config")

CONFIG_FILE = "config.yaml"
SAFETY_FILE = "safety.yaml"
DATA_DIR_ENV = "SMC_TRADER_DATA_DIR"
SECRET_ENV = {"kraken_api_key": "KRAKEN_API_KEY", "kraken_api_secret": "KRAKEN_API_SECRET"}


def default_config_dir() -> Path:
    return Path(os.environ.get("SMC_TRADER_CONFIG_DIR", "configs"))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(loaded)}")
    return loaded


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(exc: ValidationError, config_dir: Path) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        where = SAFETY_FILE if loc.startswith("safety") else CONFIG_FILE
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{config_dir / where}: {loc or '<root>'}: {err['msg']}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_config(
    config_dir: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> AppConfig:
    """The effective configuration: model defaults < config.yaml < safety.yaml < overrides.

    Raises ConfigError for a missing folder, bad YAML, unknown keys, bad values and
    violated safety relations. Deprecated keys are normalised with a logged warning.
    """
    config_dir = config_dir or default_config_dir()
    if not config_dir.is_dir():
        raise ConfigError(f"config folder {config_dir} does not exist; pass --config DIR")
    main = _read_yaml(config_dir / CONFIG_FILE)
    if "safety" in main:
        raise ConfigError(
            f"{config_dir / CONFIG_FILE}: safety thresholds belong in {SAFETY_FILE}; "
            "move the 'safety' section there"
        )
    raw = _merge(main, {"safety": _read_yaml(config_dir / SAFETY_FILE)})
    if DATA_DIR_ENV in os.environ:
        raw = _merge(raw, {"venue": {"data_dir": os.environ[DATA_DIR_ENV]}})
    raw = _merge(raw, overrides or {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        try:
            config = AppConfig.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, config_dir)) from None
    for w in caught:
        if issubclass(w.category, DeprecationWarning):
            log.warning("config deprecation: %s", w.message)
    return config


def load_secrets(env_file: Path = Path(".env.local")) -> Secrets:
    """Credentials from the environment, else from `.env.local`. Never logged."""
    file_values = dotenv_values(env_file) if env_file.exists() else {}
    found: dict[str, SecretStr] = {}
    for field, var in SECRET_ENV.items():
        value = os.environ.get(var) or file_values.get(var)
        if value:
            found[field] = SecretStr(value)
            SecretMaskFilter.register(value)
    return Secrets(**found)


class SecretMaskFilter(logging.Filter):
    """Replaces any registered secret value in a log record with ***.

    SecretStr already hides secrets in reprs; this catches the ones a library
    (ccxt's verbose mode, an exception text) might print in clear.
    """

    _secrets: set[str] = set()  # noqa: RUF012 - one registry per process, on purpose

    @classmethod
    def register(cls, value: str) -> None:
        if len(value) >= 4:
            cls._secrets.add(value)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self._secrets:
            masked = masked.replace(secret, "***")
        if masked != message:
            record.msg, record.args = masked, None
        return True


def config_as_yaml(config: AppConfig) -> str:
    """The effective configuration as YAML, for `trader check-config`."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def cycle_overrides(
    venue: str | None = None,
    data_dir: str | None = None,
    db: str | None = None,
    api_url: str | None = None,
    sandbox: bool | None = None,
) -> dict[str, Any]:
    """Command-line choices as configuration overrides (None leaves the file's value)."""
    chosen = {"kind": venue, "data_dir": data_dir, "api_url": api_url, "sandbox": sandbox}
    venue_over = {k: v for k, v in chosen.items() if v is not None}
    over: dict[str, Any] = {"venue": venue_over} if venue_over else {}
    if db is not None:
        over["cycle"] = {"db_path": db}
    return over
