# Thin targets; the work is in the scripts they call.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SLUICE_HOST ?= 127.0.0.1
SLUICE_PORT ?= 8000
export SLUICE_HOST SLUICE_PORT

.PHONY: run test lint fmt bench bench-quick load serve-prod system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hypercorn asgi:app --bind $(SLUICE_HOST):$(SLUICE_PORT) --worker-class uvloop

system-deps:
	sh ops/install-system-deps.sh

test: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# bench/run.py starts each system itself (Redis included) and writes bench/RESULTS.md.
bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick
