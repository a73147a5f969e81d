"""Versioned schema migrations. Append only: a shipped migration is never edited."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


FOUNDATION = Migration(
    1,
    "foundation: markets, candles, gaps, cycles, market errors",
    (
        """
        CREATE TABLE markets (
            symbol VARCHAR PRIMARY KEY,
            venue VARCHAR NOT NULL,
            venue_symbol VARCHAR NOT NULL,
            base VARCHAR NOT NULL,
            settle VARCHAR NOT NULL,
            contract_size DOUBLE NOT NULL,
            tick_size DOUBLE NOT NULL,
            lot_size DOUBLE NOT NULL,
            min_size DOUBLE NOT NULL,
            max_leverage DOUBLE NOT NULL,
            last DOUBLE,
            bid DOUBLE,
            ask DOUBLE,
            volume_24h_usd DOUBLE,
            spread_bps DOUBLE,
            tier VARCHAR NOT NULL,
            pinned BOOLEAN NOT NULL,
            tradeable BOOLEAN NOT NULL,
            reason VARCHAR NOT NULL,
            cycle_id BIGINT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )
        """,
        """
        CREATE TABLE candles (
            symbol VARCHAR NOT NULL,
            timeframe VARCHAR NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            open DOUBLE NOT NULL,
            high DOUBLE NOT NULL,
            low DOUBLE NOT NULL,
            close DOUBLE NOT NULL,
            volume DOUBLE NOT NULL,
            PRIMARY KEY (symbol, timeframe, ts)
        )
        """,
        """
        CREATE TABLE candle_gaps (
            symbol VARCHAR NOT NULL,
            timeframe VARCHAR NOT NULL,
            gap_start TIMESTAMPTZ NOT NULL,
            gap_end TIMESTAMPTZ NOT NULL,
            attempts INTEGER NOT NULL,
            filled BOOLEAN NOT NULL,
            first_seen_cycle BIGINT NOT NULL,
            PRIMARY KEY (symbol, timeframe, gap_start)
        )
        """,
        """
        CREATE TABLE cycles (
            cycle_id BIGINT PRIMARY KEY,
            flow_run_id VARCHAR,
            venue VARCHAR NOT NULL,
            clock_ts TIMESTAMPTZ NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            duration_s DOUBLE,
            markets_total INTEGER,
            tradeable_markets INTEGER,
            coins_processed INTEGER,
            candles_upserted BIGINT,
            signals INTEGER,
            candidates INTEGER,
            winners_selected INTEGER,
            intents INTEGER,
            orders_placed INTEGER,
            orders_cancelled INTEGER,
            open_positions INTEGER,
            equity DOUBLE,
            margin_utilization DOUBLE,
            system_state VARCHAR,
            market_errors INTEGER,
            summary VARCHAR
        )
        """,
        """
        CREATE TABLE market_errors (
            cycle_id BIGINT NOT NULL,
            symbol VARCHAR NOT NULL,
            stage VARCHAR NOT NULL,
            error VARCHAR NOT NULL,
            ts TIMESTAMPTZ NOT NULL
        )
        """,
    ),
)

SAFETY = Migration(
    2,
    "safety: system state history, equity marks, invariant checks",
    (
        """
        CREATE TABLE system_state_history (
            seq BIGINT PRIMARY KEY,
            recorded_at TIMESTAMPTZ NOT NULL,
            cycle_id BIGINT,
            state VARCHAR NOT NULL,
            since TIMESTAMPTZ NOT NULL,
            cause VARCHAR NOT NULL,
            event VARCHAR,
            state_values VARCHAR NOT NULL,
            who VARCHAR,
            why VARCHAR,
            forced BOOLEAN NOT NULL
        )
        """,
        """
        CREATE TABLE equity_marks (
            cycle_id BIGINT PRIMARY KEY,
            ts TIMESTAMPTZ NOT NULL,
            equity DOUBLE NOT NULL,
            margin_used DOUBLE NOT NULL,
            margin_utilization DOUBLE,
            high_water DOUBLE NOT NULL,
            drawdown DOUBLE,
            open_positions INTEGER NOT NULL,
            exposures VARCHAR NOT NULL
        )
        """,
        """
        CREATE TABLE invariant_checks (
            cycle_id BIGINT NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            name VARCHAR NOT NULL,
            value DOUBLE NOT NULL,
            verdict VARCHAR NOT NULL,
            thresholds VARCHAR NOT NULL
        )
        """,
        """
        CREATE VIEW current_system_state AS
        SELECT * FROM system_state_history ORDER BY seq DESC LIMIT 1
        """,
    ),
)

MIGRATIONS: tuple[Migration, ...] = (FOUNDATION, SAFETY)
