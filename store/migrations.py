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

EXECUTION = Migration(
    3,
    "execution: write-ahead intent log, positions, fills, position events, paper account",
    (
        """
        CREATE TABLE wal (
            intent_id VARCHAR PRIMARY KEY,
            action_type VARCHAR NOT NULL,
            symbol VARCHAR,
            side VARCHAR NOT NULL,
            client_id VARCHAR,
            payload VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            venue_order_id VARCHAR,
            reason VARCHAR,
            cycle_id BIGINT
        )
        """,
        """
        CREATE TABLE positions (
            position_id VARCHAR PRIMARY KEY,
            symbol VARCHAR NOT NULL,
            side VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            size DOUBLE NOT NULL,
            entry_price DOUBLE,
            stop_price DOUBLE NOT NULL,
            stop_order_id VARCHAR,
            tp1_order_id VARCHAR,
            tp2_order_id VARCHAR,
            tp3_order_id VARCHAR,
            tp1_price DOUBLE,
            tp2_price DOUBLE,
            tp3_price DOUBLE,
            imported BOOLEAN NOT NULL,
            opened_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            close_reason VARCHAR,
            record VARCHAR NOT NULL
        )
        """,
        """
        CREATE TABLE fills (
            fill_id VARCHAR PRIMARY KEY,
            venue_order_id VARCHAR NOT NULL,
            client_id VARCHAR,
            symbol VARCHAR NOT NULL,
            side VARCHAR NOT NULL,
            size DOUBLE NOT NULL,
            price DOUBLE NOT NULL,
            fee DOUBLE NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            position_id VARCHAR,
            cycle_id BIGINT
        )
        """,
        """
        CREATE TABLE position_events (
            seq BIGINT PRIMARY KEY,
            recorded_at TIMESTAMPTZ NOT NULL,
            cycle_id BIGINT,
            position_id VARCHAR NOT NULL,
            event VARCHAR NOT NULL,
            payload VARCHAR NOT NULL
        )
        """,
        """
        CREATE TABLE venue_state (
            venue VARCHAR PRIMARY KEY,
            saved_at TIMESTAMPTZ NOT NULL,
            blob BLOB NOT NULL
        )
        """,
        """
        CREATE TABLE kv (
            key VARCHAR PRIMARY KEY,
            value VARCHAR NOT NULL
        )
        """,
        """
        CREATE VIEW open_exposure AS
        SELECT symbol, side, size, entry_price, stop_price, stop_order_id,
               tp1_order_id, tp2_order_id, tp3_order_id, state, imported
        FROM positions WHERE state NOT IN ('closed', 'entry_rejected', 'entry_cancelled')
        """,
    ),
)

SIGNALS = Migration(
    4,
    "signals, gate trace, why_no_trades",
    (
        """
        CREATE TABLE signals (
            cycle_id BIGINT NOT NULL,
            symbol VARCHAR NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            strategy VARCHAR NOT NULL,
            side VARCHAR NOT NULL,
            entry DOUBLE NOT NULL,
            stop DOUBLE NOT NULL,
            tp1 DOUBLE NOT NULL,
            tp2 DOUBLE NOT NULL,
            tp3 DOUBLE NOT NULL,
            regime VARCHAR NOT NULL,
            score DOUBLE NOT NULL,
            structure_tf VARCHAR,
            structure_kind VARCHAR,
            retracement DOUBLE,
            reward_risk DOUBLE,
            tier VARCHAR,
            gate_trace VARCHAR,
            PRIMARY KEY (cycle_id, symbol, strategy)
        )
        """,
        """
        CREATE TABLE gate_trace (
            cycle_id BIGINT NOT NULL,
            symbol VARCHAR NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            signal BOOLEAN NOT NULL,
            strategy VARCHAR,
            reason VARCHAR,
            momentum_reason VARCHAR,
            gate_data VARCHAR NOT NULL,
            gate_daily_bias VARCHAR NOT NULL,
            gate_structure VARCHAR NOT NULL,
            gate_regime VARCHAR NOT NULL,
            gate_ote VARCHAR NOT NULL,
            gate_risk VARCHAR NOT NULL,
            gate_momentum VARCHAR NOT NULL,
            bias VARCHAR,
            daily_close DOUBLE,
            daily_ema DOUBLE,
            structure_tf VARCHAR,
            structure_kind VARCHAR,
            bars_since_break INTEGER,
            regime VARCHAR,
            entry DOUBLE,
            retracement DOUBLE,
            stop DOUBLE,
            reward_risk DOUBLE,
            score DOUBLE,
            tier VARCHAR,
            problem VARCHAR,
            daily_known_at TIMESTAMPTZ,
            h4_known_at TIMESTAMPTZ,
            h1_known_at TIMESTAMPTZ,
            PRIMARY KEY (cycle_id, symbol)
        )
        """,
        """
        CREATE MACRO why_no_trades_last(n) AS TABLE
        SELECT coalesce(reason, 'SIGNAL') AS reason,
               count(*) AS markets,
               count(DISTINCT cycle_id) AS cycles,
               min(ts) AS first_seen,
               max(ts) AS last_seen
        FROM gate_trace
        WHERE cycle_id > (SELECT coalesce(max(cycle_id), 0) - n FROM gate_trace)
        GROUP BY ALL
        ORDER BY markets DESC
        """,
        "CREATE VIEW why_no_trades AS SELECT * FROM why_no_trades_last(24)",
    ),
)

ALLOCATION = Migration(
    5,
    "auction allocations and order intents",
    (
        """
        CREATE TABLE order_intents (
            cycle_id BIGINT NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            client_intent_id VARCHAR PRIMARY KEY,
            rank INTEGER NOT NULL,
            symbol VARCHAR NOT NULL,
            side VARCHAR,
            strategy VARCHAR,
            signal_ts TIMESTAMPTZ,
            tier VARCHAR,
            regime VARCHAR,
            score DOUBLE,
            entry DOUBLE,
            stop DOUBLE,
            tp1 DOUBLE,
            tp2 DOUBLE,
            tp3 DOUBLE,
            size DOUBLE NOT NULL,
            notional DOUBLE NOT NULL,
            margin DOUBLE NOT NULL,
            leverage DOUBLE,
            requested_notional DOUBLE,
            notional_override DOUBLE,
            equity DOUBLE,
            status VARCHAR NOT NULL,
            reason VARCHAR,
            adjustments VARCHAR NOT NULL,
            tp_skipped VARCHAR NOT NULL
        )
        """,
        """
        CREATE TABLE allocations (
            cycle_id BIGINT NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            payload VARCHAR NOT NULL
        )
        """,
    ),
)

PROTECTION = Migration(
    6,
    "protection: cycles without a stop per position and account, realised PnL of lost exits",
    (
        "ALTER TABLE equity_marks ADD COLUMN unprotected_cycles INTEGER DEFAULT 0",
        "ALTER TABLE positions ADD COLUMN unprotected_cycles INTEGER DEFAULT 0",
        "ALTER TABLE positions ADD COLUMN realised_pnl DOUBLE",
        "ALTER TABLE cycles ADD COLUMN unprotected_positions INTEGER",
        "ALTER TABLE cycles ADD COLUMN failed_stages INTEGER",
    ),
)

BACKTESTS = Migration(
    7,
    "backtests: runs, trades, equity, and every decision's gate trace, signals, intents, fills",
    (
        """
        CREATE TABLE backtest_runs (
            run_id VARCHAR PRIMARY KEY,
            config_hash VARCHAR NOT NULL,
            config VARCHAR NOT NULL,
            data_dir VARCHAR NOT NULL,
            data_start TIMESTAMPTZ NOT NULL,
            data_end TIMESTAMPTZ NOT NULL,
            markets VARCHAR NOT NULL,
            code_version VARCHAR NOT NULL,
            fill_model VARCHAR NOT NULL,
            initial_equity DOUBLE NOT NULL,
            status VARCHAR NOT NULL,
            duration_s DOUBLE,
            market_errors VARCHAR,
            metrics VARCHAR,
            error VARCHAR,
            created_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ
        )
        """,
        """
        CREATE TABLE backtest_trades (
            run_id VARCHAR NOT NULL,
            position_id VARCHAR NOT NULL,
            symbol VARCHAR NOT NULL,
            side VARCHAR NOT NULL,
            entry_ts TIMESTAMPTZ NOT NULL,
            exit_ts TIMESTAMPTZ NOT NULL,
            entry_price DOUBLE NOT NULL,
            exit_price DOUBLE NOT NULL,
            size DOUBLE NOT NULL,
            pnl DOUBLE NOT NULL,
            fees DOUBLE NOT NULL,
            funding DOUBLE NOT NULL,
            risk DOUBLE NOT NULL,
            r_multiple DOUBLE,
            exit_reason VARCHAR NOT NULL,
            PRIMARY KEY (run_id, position_id)
        )
        """,
        """
        CREATE TABLE backtest_equity (
            run_id VARCHAR NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            cycle_id BIGINT NOT NULL,
            equity DOUBLE NOT NULL,
            cash DOUBLE NOT NULL,
            margin_used DOUBLE NOT NULL,
            open_positions INTEGER NOT NULL,
            system_state VARCHAR NOT NULL,
            PRIMARY KEY (run_id, ts)
        )
        """,
        "CREATE TABLE backtest_gate_trace AS "
        "SELECT ''::VARCHAR AS run_id, * FROM gate_trace WHERE false",
        "CREATE TABLE backtest_signals AS SELECT ''::VARCHAR AS run_id, * FROM signals WHERE false",
        "CREATE TABLE backtest_intents AS "
        "SELECT ''::VARCHAR AS run_id, * FROM order_intents WHERE false",
        "CREATE TABLE backtest_fills AS "
        "SELECT ''::VARCHAR AS run_id, * EXCLUDE (cycle_id) FROM fills WHERE false",
        """
        CREATE MACRO backtest_why_no_trades(run) AS TABLE
        SELECT coalesce(reason, 'SIGNAL') AS reason,
               count(*) AS decisions,
               count(DISTINCT symbol) AS markets,
               min(ts) AS first_seen,
               max(ts) AS last_seen
        FROM backtest_gate_trace
        WHERE run_id = run
        GROUP BY ALL
        ORDER BY decisions DESC
        """,
    ),
)

SWEEPS = Migration(
    8,
    "sweeps: runs, and every backtest window's result keyed by config, data range and code",
    (
        """
        CREATE TABLE sweep_runs (
            sweep_id VARCHAR PRIMARY KEY,
            space_file VARCHAR NOT NULL,
            space VARCHAR NOT NULL,
            data_dir VARCHAR NOT NULL,
            markets VARCHAR NOT NULL,
            data_start TIMESTAMPTZ NOT NULL,
            data_end TIMESTAMPTZ NOT NULL,
            folds VARCHAR NOT NULL,
            search VARCHAR NOT NULL,
            objective VARCHAR NOT NULL,
            min_trades INTEGER NOT NULL,
            code_version VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            backtests INTEGER NOT NULL,
            evaluated INTEGER,
            reused INTEGER,
            errors VARCHAR,
            report VARCHAR,
            created_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ
        )
        """,
        # One row per (configuration, data range, code version): the resume key. A rerun
        # of any sweep finds what an earlier one evaluated.
        """
        CREATE TABLE sweep_results (
            config_hash VARCHAR NOT NULL,
            data_dir VARCHAR NOT NULL,
            markets VARCHAR NOT NULL,
            window_start TIMESTAMPTZ NOT NULL,
            window_end TIMESTAMPTZ NOT NULL,
            code_version VARCHAR NOT NULL,
            sweep_id VARCHAR NOT NULL,
            config VARCHAR NOT NULL,
            trades INTEGER NOT NULL,
            duration_s DOUBLE NOT NULL,
            result VARCHAR NOT NULL,
            evaluated_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (config_hash, data_dir, markets, window_start, window_end, code_version)
        )
        """,
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    FOUNDATION,
    SAFETY,
    EXECUTION,
    SIGNALS,
    ALLOCATION,
    PROTECTION,
    BACKTESTS,
    SWEEPS,
)
