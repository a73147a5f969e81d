"""The kraken venue trades only in a mode chosen explicitly: live, demo or a loopback simulator."""

from __future__ import annotations

import itertools

import pytest

from core.errors import ConfigError, LiveTradingNotAllowedError
from venues.kraken_orders import is_loopback_url, require_explicit_mode

LOOPBACK = "http://127.0.0.1:8080"
REMOTE = "https://futures.kraken.com"
URLS = (None, LOOPBACK, REMOTE)


def expected_mode(live: bool, sandbox: bool, api_url: str | None, creds: bool) -> str | None:
    """The rule, written once as a table walk: None means refused."""
    if not creds or (live and sandbox):
        return None
    if api_url == LOOPBACK:
        return None if live else "simulator"
    if api_url == REMOTE:
        return "live" if live else None
    return "live" if live else "demo" if sandbox else None


@pytest.mark.parametrize(
    ("live", "sandbox", "api_url", "creds"),
    list(itertools.product((False, True), (False, True), URLS, (False, True))),
)
def test_every_combination_of_flags_gives_one_mode_or_a_refusal(live, sandbox, api_url, creds):
    wanted = expected_mode(live, sandbox, api_url, creds)
    kwargs = {"live": live, "sandbox": sandbox, "api_url": api_url, "has_credentials": creds}
    if wanted is None:
        with pytest.raises(LiveTradingNotAllowedError) as refused:
            require_explicit_mode(**kwargs)
        message = str(refused.value)
        # every refusal tells the operator the whole recipe
        assert "--live" in message
        assert "KRAKEN_API_KEY" in message and "KRAKEN_API_SECRET" in message
        assert ".env.local" in message
    else:
        assert require_explicit_mode(**kwargs) == wanted


def test_the_exact_switches_that_allow_each_mode():
    creds = {"has_credentials": True}
    assert require_explicit_mode(live=True, sandbox=False, api_url=None, **creds) == "live"
    assert require_explicit_mode(live=False, sandbox=True, api_url=None, **creds) == "demo"
    assert require_explicit_mode(live=False, sandbox=False, api_url=LOOPBACK, **creds) == (
        "simulator"
    )
    # the simulator emulating the demo exchange is still the simulator
    assert require_explicit_mode(live=False, sandbox=True, api_url=LOOPBACK, **creds) == (
        "simulator"
    )


def test_no_switch_at_all_refuses_rather_than_falling_back_to_live():
    with pytest.raises(LiveTradingNotAllowedError, match="neither --live, --sandbox"):
        require_explicit_mode(live=False, sandbox=False, api_url=None, has_credentials=True)


def test_missing_credentials_refuse_even_with_live():
    with pytest.raises(LiveTradingNotAllowedError, match="no API credentials"):
        require_explicit_mode(live=True, sandbox=False, api_url=None, has_credentials=False)


def test_a_remote_api_url_without_live_is_refused_naming_the_url():
    with pytest.raises(LiveTradingNotAllowedError, match=r"futures\.kraken\.com is not loopback"):
        require_explicit_mode(live=False, sandbox=False, api_url=REMOTE, has_credentials=True)


def test_an_empty_api_url_counts_as_none():
    assert require_explicit_mode(live=False, sandbox=True, api_url="", has_credentials=True) == (
        "demo"
    )


def test_the_refusal_is_a_config_error_so_start_up_stops():
    assert issubclass(LiveTradingNotAllowedError, ConfigError)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://localhost:9000/",
        "http://[::1]:8080",
        "127.0.0.1:8080",
    ],
)
def test_loopback_urls(url):
    assert is_loopback_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://futures.kraken.com",
        "https://demo-futures.kraken.com",
        "http://10.0.0.5:8080",
        "http://0.0.0.0:8080",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://[::2]:8080",
        "",
        "not a url",
        "http://[::1",
    ],
)
def test_other_urls_are_not_loopback(url):
    assert not is_loopback_url(url)
