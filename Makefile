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

# app/serve.py: hypercorn with a SIGTERM that drains first (readyz 503, streams finish).
run: $(STAMP)
	$(BIN)/python -m app.serve --bind $(SLUICE_HOST):$(SLUICE_PORT) --loop uvloop

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

# Production shape: several hypercorn workers (ops/hypercorn.toml) sharing one Redis
# event log, so a reconnect served by any worker resumes. nginx goes in front
# (ops/nginx.conf). Every worker must sign stream URLs with the same secret: without
# SLUICE_SECRET one is made for this run (set it yourself when several hosts serve).
SLUICE_WORKERS ?= 2
serve-prod: $(STAMP)
	@test -n "$(SLUICE_REDIS_URL)" || { echo "serve-prod: SLUICE_REDIS_URL is unset. Several workers share streams only through Redis: export SLUICE_REDIS_URL=redis://127.0.0.1:6379/0" >&2; exit 2; }
	@test -n "$(SLUICE_SECRET)" || echo "serve-prod: SLUICE_SECRET is unset; using a secret made for this run (signed stream URLs die with it)" >&2
	SLUICE_SECRET="$${SLUICE_SECRET:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')}" \
	$(BIN)/hypercorn --config ops/hypercorn.toml --bind $(SLUICE_HOST):$(SLUICE_PORT) --workers $(SLUICE_WORKERS) asgi:app

# k6 ramp of SSE streams against the simulated model (ops/k6/streams.js); starts its
# own Sluice unless SLUICE_URL is given. Size: LOAD_VUS, LOAD_RAMP, LOAD_HOLD, LOAD_TOKENS.
load: $(STAMP)
	$(BIN)/python ops/k6/run.py
