# ftq — run `make help` for the targets a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install ftq with its dev tools

test: $(STAMP) ## run the whole test suite (embedded PostgreSQL unless DATABASE_URL is set)
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff, mypy --strict and the layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: $(STAMP) ## start embedded PostgreSQL, the Fireworks simulator and ftq, with demo users
	$(BIN)/ftq demo

bench: $(STAMP) ## run the benchmarks; prints a table and writes bench/results/*.json
	$(BIN)/python -m bench

soak: $(STAMP) ## long reliability runs; rewrites tests/RELIABILITY.md
	FTQ_SOAK=1 $(BIN)/pytest -q -m slow tests/e2e

.PHONY: help install test lint demo bench soak
