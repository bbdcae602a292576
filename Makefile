# helpdesk: everyday tasks. `make` (or `make help`) lists them.
#
# Needs Python 3.11+ with venv (override with PYTHON=python3.12). Everything installs into
# .venv; nothing is installed system-wide. PostgreSQL targets use psql against PG_HOST.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
SIZE ?= small
BENCH_DB ?= bench-data/$(SIZE).db
PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432
PG_USER ?= postgres
PSQL := psql -h $(PG_HOST) -p $(PG_PORT) -U $(PG_USER) -d postgres -v ON_ERROR_STOP=1 -q
MESSAGE ?= schema change

.DEFAULT_GOAL := help
.PHONY: help install demo demo-reset test test-pg lint format migrate upgrade bench

help: ## List the targets
	@echo "helpdesk: make <target>"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Re-installs when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev extras

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

demo: $(STAMP) ## Install if needed, then run the seeded demo on http://127.0.0.1:5000
	$(BIN)/helpdesk demo

demo-reset: ## Delete the demo's database and secret key (instance/); the next demo reseeds
	rm -rf instance

test: $(STAMP) ## Run the tests (SQLite; HELPDESK_TEST_DATABASE_URL=postgresql+psycopg://... for PostgreSQL)
	$(BIN)/pytest -q

test-pg: $(STAMP) ## Run the tests on a fresh PostgreSQL database (PG_HOST, PG_PORT, PG_USER), dropped after
	@db=hd_test_$$(date +%Y%m%d%H%M%S)_$$$$; \
	$(PSQL) -c "CREATE DATABASE $$db" || exit 1; \
	echo "PostgreSQL database $$db"; \
	HELPDESK_TEST_DATABASE_URL=postgresql+psycopg://$(PG_USER)@$(PG_HOST):$(PG_PORT)/$$db \
		$(BIN)/pytest -q; status=$$?; \
	$(PSQL) -c "DROP DATABASE IF EXISTS $$db WITH (FORCE)"; \
	exit $$status

lint: $(STAMP) ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP) ## Generate a migration from the models: make migrate MESSAGE="add x"
	$(BIN)/helpdesk db migrate -m "$(MESSAGE)"

upgrade: $(STAMP) ## Apply migrations to DATABASE_URL (default: SQLite under instance/)
	@mkdir -p instance
	$(BIN)/helpdesk db upgrade

bench: $(BENCH_STAMP) ## Measure the performance figures: make bench SIZE=tiny|small|medium [DATABASE_URL=...]
	@mkdir -p bench-data
	@if [ -n "$$DATABASE_URL" ]; then url="$$DATABASE_URL"; reuse=""; \
	else url="sqlite:///$(CURDIR)/$(BENCH_DB)"; reuse=$$([ -f "$(BENCH_DB)" ] && echo --reuse); fi; \
	echo "helpdesk bench --size $(SIZE) on $$url $$reuse"; \
	DATABASE_URL="$$url" $(BIN)/helpdesk bench --size $(SIZE) --json bench-data/$(SIZE).json \
		$$reuse $(BENCH_ARGS)
