# The two commands a newcomer needs: `make demo` and `make test`. Everything installs from this repo.
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo demo-all scale-demo test lint dev bench clean

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(BIN)/imednet-assets: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode
	@touch $@

setup: $(BIN)/imednet-assets

demo: setup ## simulator -> lake + DuckDB under ./data, then a summary
	$(BIN)/imednet-assets demo

demo-all: setup ## the demo into every destination, each on a local server (MongoDB, Snowflake, graph, PostgreSQL)
	$(BIN)/imednet-assets demo --local-servers

scale-demo: setup ## on loopback: S3-compatible lake (moto), PostgreSQL instance, webserver, daemon, two Celery workers; backfill six studies, compare with a single-machine demo
	$(BIN)/imednet-assets scale-demo

test: setup lint ## the whole suite (what CI runs)
	$(BIN)/dagster definitions validate -m imednet_assets.definitions
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .

dev: setup ## Dagster UI on the same code location, simulator running, DAGSTER_HOME under ./data
	$(BIN)/imednet-assets dev

bench: setup ## benchmark table, also written to docs/benchmarks.md
	$(BIN)/imednet-assets bench

clean:
	rm -rf data bench-data
