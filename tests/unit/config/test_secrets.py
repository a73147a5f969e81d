"""Secrets come from the environment or .env.local and never show in a repr or a log line."""

from __future__ import annotations

import logging

from tasks.logs import setup_logging
from tasks.settings import load_secrets

KEY = "pk-test-AbCdEf0123456789"
SECRET = "c2VjcmV0LXZhbHVlLW5vYm9keS1zaG91bGQtc2Vl"


def test_secrets_from_env_file_are_loaded_and_masked_in_repr(tmp_path, monkeypatch):
    monkeypatch.delenv("KRAKEN_API_KEY", raising=False)
    monkeypatch.delenv("KRAKEN_API_SECRET", raising=False)
    env = tmp_path / ".env.local"
    env.write_text(f"KRAKEN_API_KEY={KEY}\nKRAKEN_API_SECRET={SECRET}\n")
    secrets = load_secrets(env)
    assert secrets.has_kraken
    assert secrets.kraken_api_secret.get_secret_value() == SECRET
    for text in (repr(secrets), str(secrets), secrets.model_dump_json()):
        assert SECRET not in text and KEY not in text


def test_environment_wins_over_the_env_file(tmp_path, monkeypatch):
    env = tmp_path / ".env.local"
    env.write_text("KRAKEN_API_KEY=from-file\n")
    monkeypatch.setenv("KRAKEN_API_KEY", "from-environment")
    assert load_secrets(env).kraken_api_key.get_secret_value() == "from-environment"


def test_a_secret_printed_by_any_code_is_masked_in_the_log_file(tmp_path, monkeypatch, cli_logs):
    monkeypatch.setenv("KRAKEN_API_KEY", KEY)
    monkeypatch.setenv("KRAKEN_API_SECRET", SECRET)
    load_secrets(tmp_path / "absent.env")
    setup_logging("INFO")
    logger = logging.getLogger("smc_trader.test")
    logger.info("request signed with %s and key %s", SECRET, KEY)
    logger.warning(f"a library echoed the secret inline: {SECRET}")
    text = cli_logs()
    assert "request signed with *** and key ***" in text
    assert SECRET not in text and KEY not in text
