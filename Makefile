# smc-trader operator targets. Only python3 is needed on the machine: uv is
# bootstrapped into .local/tools, the project into .venv from uv.lock.
SHELL := /bin/bash
PY ?= python3
UV := .local/tools/bin/uv
VENV := .venv
TRADER := $(VENV)/bin/trader
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_HOME ?= $(CURDIR)/.local/prefect

.PHONY: venv install run smoke logs smoke-logs test test-fast lint bench bench-smc bench-cycle \
        bench-store bench-gateway bench-backtest bench-publish bench-sweep \
        server sql check-config reference clean

$(UV):
	$(PY) -m venv .local/tools
	.local/tools/bin/pip install --quiet --disable-pip-version-check uv

venv: $(UV)  ## the project virtualenv (Python 3.11)
	$(UV) venv --quiet --allow-existing --python 3.11 $(VENV)

install: venv  ## install exactly what uv.lock pins
	$(UV) sync --frozen --quiet

run: install  ## serve trading cycles on the sim venue, with a local Prefect server and UI
	$(TRADER) run --with-server

smoke: install  ## one cycle on the sim venue into a scratch database
	@mkdir -p logs
	$(TRADER) cycle --cycles 1 --db .local/smoke.duckdb 2>&1 | tee logs/smoke.log
	@grep -q CYCLE_END logs/smoke.log && echo "smoke: CYCLE_END seen"

logs:  ## follow the service log
	@mkdir -p logs && touch logs/trader.log && tail -n 50 -f logs/trader.log

smoke-logs:  ## the operator patterns in the last smoke run
	@grep -E "CYCLE_END|Kill switch active|DEGRADED|PHANTOM|ORPHAN|Execution failed|Active Portfolio|4H_STRUCTURE_REQUIRED|entry not in OTE|Tier A coin bypassing" logs/smoke.log || true

test: install  ## the whole test suite (what CI runs)
	$(VENV)/bin/python -m pytest -q

test-fast: install  ## unit tests only
	$(VENV)/bin/python -m pytest -q tests/unit

lint: install
	$(VENV)/bin/ruff check .

check-config: install
	$(TRADER) check-config

reference: install  ## regenerate docs/CONFIG.md from the models
	$(TRADER) config-reference -o docs/CONFIG.md

server: install  ## a Prefect server + UI on http://127.0.0.1:4200 (foreground)
	PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=4200 \
	PREFECT_UI_API_URL=http://127.0.0.1:4200/api $(VENV)/bin/prefect server start

sql: install  ## SQL shell on the read copy of data/trading.duckdb (never blocks a cycle)
	$(TRADER) sql

bench: bench-smc bench-cycle bench-store bench-gateway bench-backtest bench-publish bench-sweep  ## every benchmark (figures, not assertions)

bench-smc: install  ## SMC features vs the smartmoneyconcepts package (bench-only venv)
	$(UV) venv --quiet --allow-existing --python 3.11 .local/bench-venv
	$(UV) pip install --quiet --python .local/bench-venv -r bench/requirements.txt
	.local/bench-venv/bin/python bench/bench_smc.py
	.local/bench-venv/bin/python bench/compare_swings.py

bench-cycle: install  ## one 56-market sim cycle: Prefect start-up vs orchestration vs compute
	$(VENV)/bin/python bench/bench_cycle.py

clean:
	rm -rf .local/smoke.duckdb logs/smoke.log

bench-store: install  ## candles upserted per second on the replay data
	$(VENV)/bin/python bench/bench_store.py

bench-gateway: install  ## orders per second through the write-ahead log vs the bare venue
	$(VENV)/bin/python bench/bench_gateway.py

bench-backtest: install  ## backtest market-bars/s (warm, cold), vs replay cycles and backtesting.py
	$(UV) venv --quiet --allow-existing --python 3.11 .local/bench-venv
	$(UV) pip install --quiet --python .local/bench-venv -r bench/requirements.txt
	$(VENV)/bin/python bench/bench_backtest.py
bench-publish: install  ## cycle time with and without a SQL reader; the read copy's cost per cycle
	$(VENV)/bin/python bench/bench_publish.py

bench-sweep: install  ## sweep config-market-bars/s on 1 and 2 Dask workers, per-task overhead, growth
	$(VENV)/bin/python bench/bench_sweep.py
