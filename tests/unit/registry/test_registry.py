"""The market registry (SPEC §2): tiers, the pinned majors, the configured universe."""

from __future__ import annotations

import logging
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.market import MarketInfo, Ticker
from core.registry import (
    PINNED_BYPASS_LOG,
    UNKNOWN_CANDIDATE_LOG,
    MarketRegistry,
    build_registry,
    classify,
    spread_bps,
)
from schemas.config import AppConfig, MarketsConfig, Tier

DEFAULT = MarketsConfig()
MILLION = 1_000_000.0


def market(base: str, settle: str = "USD") -> MarketInfo:
    return MarketInfo(
        symbol=f"{base}/{settle}:{settle}",
        venue_symbol=f"PF_{base}{settle}",
        base=base,
        settle=settle,
        contract_size=1.0,
        tick_size=0.01,
        lot_size=0.001,
        min_size=0.001,
        max_leverage=20.0,
    )


def ticker(
    symbol: str, volume_usd: float | None, spread: float = 2.0, mid: float = 100.0
) -> Ticker:
    """A ticker whose bid/ask sit `spread` basis points apart around `mid`."""
    half = mid * spread / 2e4
    return Ticker(symbol, mid, mid - half, mid + half, volume_usd)


def registry_of(
    specs: dict[str, tuple[float | None, float]], config: MarketsConfig = DEFAULT
) -> MarketRegistry:
    """{base: (24 h volume, spread bps)} → the registry built from those markets and tickers."""
    markets = [market(base) for base in specs]
    tickers = {m.symbol: ticker(m.symbol, *specs[m.base]) for m in markets}
    return MarketRegistry(build_registry(markets, tickers, config))


# --- thresholds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "spread", "tier"),
    [
        (50 * MILLION, 5.0, Tier.A),  # exactly on A's limits
        (50 * MILLION - 1, 5.0, Tier.B),  # a dollar short of A
        (50 * MILLION, 5.01, Tier.B),  # a hair too wide for A
        (5 * MILLION, 15.0, Tier.B),
        (5 * MILLION - 1, 15.0, Tier.C),
        (5 * MILLION, 15.01, Tier.C),
        (0.5 * MILLION, 40.0, Tier.C),
        (0.5 * MILLION - 1, 40.0, Tier.REJECT),
        (0.5 * MILLION, 40.01, Tier.REJECT),
        (10_000 * MILLION, 40.01, Tier.REJECT),  # huge volume cannot buy back a wide book
        (10_000 * MILLION, 0.1, Tier.A),
        (0.0, 0.0, Tier.REJECT),
    ],
)
def test_tier_thresholds_hold_at_and_around_each_boundary(
    volume: float, spread: float, tier: Tier
) -> None:
    assert classify("XRP", volume, spread, DEFAULT).tier is tier


RANK = {Tier.A: 0, Tier.B: 1, Tier.C: 2, Tier.REJECT: 3}
volumes = st.floats(min_value=0, max_value=1e11, allow_nan=False)
spreads = st.floats(min_value=0, max_value=200, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(volume=volumes, spread=spreads, less_volume=volumes, more_spread=spreads)
def test_less_volume_or_a_wider_spread_never_earns_a_better_tier(
    volume: float, spread: float, less_volume: float, more_spread: float
) -> None:
    worse_volume = min(volume, less_volume)
    worse_spread = max(spread, more_spread)
    tier = classify("XRP", volume, spread, DEFAULT).tier
    assert RANK[classify("XRP", worse_volume, spread, DEFAULT).tier] >= RANK[tier]
    assert RANK[classify("XRP", volume, worse_spread, DEFAULT).tier] >= RANK[tier]


def test_a_market_is_placed_in_the_best_tier_whose_both_limits_it_meets() -> None:
    # A's volume but B's spread: B, and the reason shows the numbers compared.
    result = classify("XRP", 80 * MILLION, 12.0, DEFAULT)
    assert result.tier is Tier.B
    assert "80,000,000 >= 5,000,000" in result.reason
    assert "12.0 <= 15 bps" in result.reason


def test_a_reject_says_what_it_missed_against_tier_c() -> None:
    result = classify("XRP", 120_000.0, 55.0, DEFAULT)
    assert result.tier is Tier.REJECT
    assert "below tier C" in result.reason
    assert "120,000" in result.reason and "500,000" in result.reason
    assert "55.0" in result.reason and "max 40" in result.reason


def test_configured_thresholds_replace_the_defaults() -> None:
    strict = MarketsConfig(
        tiers={
            Tier.A: {"min_volume_24h_usd": 500 * MILLION, "max_spread_bps": 2},
            Tier.B: {"min_volume_24h_usd": 100 * MILLION, "max_spread_bps": 4},
            Tier.C: {"min_volume_24h_usd": 50 * MILLION, "max_spread_bps": 8},
        }
    )
    assert classify("XRP", 60 * MILLION, 5.0, DEFAULT).tier is Tier.A
    assert classify("XRP", 60 * MILLION, 5.0, strict).tier is Tier.C
    assert classify("XRP", 40 * MILLION, 5.0, strict).tier is Tier.REJECT


def test_spread_is_measured_in_basis_points_of_mid_and_a_crossed_book_has_none() -> None:
    assert spread_bps(Ticker("X", 100.0, 99.95, 100.05, 1.0)) == pytest.approx(10.0)
    assert spread_bps(Ticker("X", 100.0, 100.05, 99.95, 1.0)) is None
    assert spread_bps(Ticker("X", 100.0, None, 100.05, 1.0)) is None
    assert spread_bps(None) is None


# --- pinned majors ------------------------------------------------------------------


@pytest.mark.parametrize("base", ["BTC", "ETH", "SOL", "DOGE", "BNB"])
def test_pinned_majors_are_tier_a_even_with_no_volume_and_no_spread(base: str) -> None:
    assert classify(base, 0.0, 500.0, DEFAULT).tier is Tier.A
    assert classify(base, None, None, DEFAULT).tier is Tier.A


def test_a_pinned_major_with_zero_volume_is_tradeable_tier_a_and_logs_the_bypass(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI's logging setup may stop propagation at smc_trader; caplog listens at the root.
    for name in ("smc_trader", "smc_trader.registry"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    caplog.set_level(logging.INFO, logger="smc_trader.registry")
    registry = registry_of({"BTC": (0.0, 300.0), "XRP": (0.0, 300.0)})

    assert registry.tier("BTC/USD:USD") is Tier.A
    assert registry.is_tradeable("BTC/USD:USD")
    assert registry.frame.filter(registry.frame["pinned"])["base"].to_list() == ["BTC"]
    assert registry.tier("XRP/USD:USD") is Tier.REJECT
    # By identity: after an in-process Prefect/CLI run, smc_trader may also hold caplog's
    # handler directly, so one record can be captured twice.
    bypass = list(
        {id(r): r for r in caplog.records if PINNED_BYPASS_LOG in r.getMessage()}.values()
    )
    assert [r.getMessage() for r in bypass] == [
        "BTC/USD:USD: Tier A coin bypassing filters (trusted major)"
    ]
    assert bypass[0].levelno == logging.INFO  # expected behaviour, not a warning (issue 12)


def test_the_bypass_line_is_the_string_operators_grep_for() -> None:
    assert PINNED_BYPASS_LOG == "Tier A coin bypassing filters (trusted major)"


def test_a_pinned_major_without_any_ticker_is_still_tier_a() -> None:
    row = build_registry([market("ETH")], {}, DEFAULT).row(0, named=True)
    assert (row["tier"], row["tradeable"], row["pinned"]) == ("A", True, True)
    assert row["reason"] == "pinned major"


def test_pinned_majors_are_configurable() -> None:
    config = MarketsConfig(pinned_tier_a=("BTC",))
    registry = registry_of({"BTC": (0.0, 300.0), "ETH": (0.0, 300.0)}, config)
    assert registry.tier("BTC/USD:USD") is Tier.A
    assert registry.tier("ETH/USD:USD") is Tier.REJECT


# --- the universe ---------------------------------------------------------------------


def test_candidate_symbols_restrict_the_universe_but_pinned_majors_stay() -> None:
    config = MarketsConfig(candidate_symbols=("XRP", "ADA"))
    registry = registry_of(
        {
            "BTC": (5_000 * MILLION, 1.0),
            "SOL": (0.0, 300.0),
            "XRP": (80 * MILLION, 3.0),
            "ADA": (1 * MILLION, 30.0),
            "LINK": (80 * MILLION, 3.0),  # liquid, but not a candidate
        },
        config,
    )
    assert set(registry.frame["base"]) == {"BTC", "SOL", "XRP", "ADA"}
    assert registry.tier("LINK/USD:USD") is Tier.REJECT
    assert not registry.is_tradeable("LINK/USD:USD")


def test_no_candidate_symbols_means_every_listed_perpetual() -> None:
    registry = registry_of({"XRP": (80 * MILLION, 3.0), "ADA": (1 * MILLION, 30.0)})
    assert sorted(registry.frame["base"]) == ["ADA", "XRP"]


def test_perpetuals_settled_in_another_currency_are_left_out() -> None:
    markets = [market("XRP"), market("ADA", settle="USDT")]
    tickers = {m.symbol: ticker(m.symbol, 80 * MILLION) for m in markets}
    frame = build_registry(markets, tickers, DEFAULT)
    assert frame["symbol"].to_list() == ["XRP/USD:USD"]


def test_a_market_without_ticker_is_rejected_with_the_reason() -> None:
    tickers = {"ADA/USD:USD": ticker("ADA/USD:USD", 80 * MILLION)}
    frame = build_registry([market("XRP"), market("ADA")], tickers, DEFAULT)
    xrp = frame.filter(frame["symbol"] == "XRP/USD:USD").row(0, named=True)
    assert xrp["tier"] == "REJECT"
    assert not xrp["tradeable"]
    assert xrp["reason"] == "no volume or spread from the venue"
    assert xrp["volume_24h_usd"] is None and xrp["spread_bps"] is None


def test_a_crossed_book_cannot_be_measured_and_is_rejected() -> None:
    crossed = Ticker("XRP/USD:USD", 1.0, 1.01, 0.99, 80 * MILLION)
    frame = build_registry([market("XRP")], {"XRP/USD:USD": crossed}, DEFAULT)
    assert frame["tier"].to_list() == ["REJECT"]
    assert frame["reason"].to_list() == ["no volume or spread from the venue"]


# --- deprecated liquidity_tiers -------------------------------------------------------------


def test_liquidity_tiers_are_normalised_into_candidate_symbols_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="liquidity_tiers is deprecated"):
        config = MarketsConfig.model_validate(
            {"liquidity_tiers": {"A": ["BTC", "XRP"], "B": ["ADA"], "C": ["PEPE", "XRP"]}}
        )
    assert config.candidate_symbols == ("BTC", "XRP", "ADA", "PEPE")


def test_liquidity_tiers_merge_with_candidate_symbols_without_duplicates() -> None:
    with pytest.warns(DeprecationWarning):
        config = MarketsConfig.model_validate(
            {"candidate_symbols": ["LINK", "XRP"], "liquidity_tiers": {"B": ["XRP", "ADA"]}}
        )
    assert config.candidate_symbols == ("LINK", "XRP", "ADA")


def test_liquidity_tiers_inside_the_whole_configuration_are_accepted_not_rejected() -> None:
    with pytest.warns(DeprecationWarning):
        app = AppConfig.model_validate({"markets": {"liquidity_tiers": {"A": ["XRP"], "B": None}}})
    assert app.markets.candidate_symbols == ("XRP",)


def test_a_legacy_tier_list_does_not_fix_the_tier_it_names() -> None:
    # liquidity_tiers said ADA is tier A; the registry measures it instead.
    with pytest.warns(DeprecationWarning):
        config = MarketsConfig.model_validate({"liquidity_tiers": {"A": ["ADA"]}})
    registry = registry_of({"ADA": (1 * MILLION, 30.0), "XRP": (80 * MILLION, 3.0)}, config)
    assert registry.tier("ADA/USD:USD") is Tier.C
    assert "XRP" not in set(registry.frame["base"])


def test_the_current_form_raises_no_deprecation_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        config = MarketsConfig.model_validate({"candidate_symbols": ["XRP"]})
    assert config.candidate_symbols == ("XRP",)


# --- MarketRegistry answers -------------------------------------------------------------


def test_the_registry_answers_tiers_tradeability_and_counts() -> None:
    registry = registry_of(
        {
            "BTC": (0.0, 300.0),
            "XRP": (80 * MILLION, 3.0),
            "ADA": (8 * MILLION, 10.0),
            "PEPE": (1 * MILLION, 30.0),
            "SHIB": (10_000.0, 70.0),
        }
    )
    assert sorted(registry.tradeable_symbols()) == [
        "ADA/USD:USD",
        "BTC/USD:USD",
        "PEPE/USD:USD",
        "XRP/USD:USD",
    ]
    assert registry.tier("XRP/USD:USD") is Tier.A
    assert registry.tier("ADA/USD:USD") is Tier.B
    assert registry.tier("PEPE/USD:USD") is Tier.C
    assert registry.tier("SHIB/USD:USD") is Tier.REJECT
    assert not registry.is_tradeable("SHIB/USD:USD")
    assert registry.tier_counts() == {"A": 2, "B": 1, "C": 1, "REJECT": 1}


def test_a_symbol_the_registry_never_saw_is_rejected_not_an_error() -> None:
    registry = registry_of({"XRP": (80 * MILLION, 3.0)})
    assert registry.tier("NOPE/USD:USD") is Tier.REJECT
    assert not registry.is_tradeable("NOPE/USD:USD")


def test_the_registry_frame_is_sorted_by_symbol_with_one_row_per_market() -> None:
    registry = registry_of({"XRP": (80 * MILLION, 3.0), "ADA": (1 * MILLION, 30.0), "BTC": (0, 1)})
    assert registry.frame["symbol"].to_list() == ["ADA/USD:USD", "BTC/USD:USD", "XRP/USD:USD"]


def test_an_unknown_candidate_symbol_is_warned_about_by_name_once_per_build(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("smc_trader", "smc_trader.registry"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    caplog.set_level(logging.WARNING, logger="smc_trader.registry")
    config = MarketsConfig(candidate_symbols=("XRP", "XBT", "ADA"))
    markets = [market("XRP"), market("ADA"), market("BTC")]
    frame = build_registry(
        markets, {m.symbol: ticker(m.symbol, 80 * MILLION) for m in markets}, config
    )
    assert set(frame["base"].to_list()) >= {"XRP", "ADA"}
    warned = list(
        {id(r): r for r in caplog.records if UNKNOWN_CANDIDATE_LOG in r.getMessage()}.values()
    )
    assert len(warned) == 1 and "XBT" in warned[0].getMessage()
    assert "XRP" not in warned[0].getMessage().split(":")[0]


def test_a_ticker_the_venue_marked_unusable_is_rejected_with_its_problem() -> None:
    bad = Ticker(
        "ADA/USD:USD", None, None, None, None, problem="ticker field vol24h='x' is not a number"
    )
    frame = build_registry([market("ADA")], {"ADA/USD:USD": bad}, DEFAULT)
    row = frame.row(0, named=True)
    assert (row["tier"], row["tradeable"]) == ("REJECT", False)
    assert "vol24h='x'" in row["reason"]
