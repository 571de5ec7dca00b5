# Thin targets; the work is in the scripts they call.
PY ?= python3
# Two environments, each installed from its lock only (requirements*.txt, hashed):
# .venv-run holds what serving needs, .venv adds the test and lint tools.
RUN_VENV := .venv-run
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(RUN_VENV)/.installed
STAMP := $(VENV)/.installed
PIP_INSTALL = -m pip install --disable-pip-version-check --require-hashes --no-deps --no-compile
SLUICE_HOST ?= 127.0.0.1
SLUICE_PORT ?= 8000
export SLUICE_HOST SLUICE_PORT

.PHONY: run test lint fmt lock bench bench-quick load serve-prod system-deps

# The repository is put on the environment's path with a .pth file (what an editable
# install would do), so no build step or build backend is needed. Every installed
# module is compiled to bytecode once, in parallel: where PYTHONDONTWRITEBYTECODE is
# set (many containers), a process would otherwise compile each module it imports at
# every start, half of Sluice's start-up and ~9 MB of its RSS (docs/performance.md).
define install_from_lock
	test -x $(1)/bin/python || $(PY) -m venv $(1)
	$(1)/bin/python $(PIP_INSTALL) -r $(2)
	$(1)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
		| xargs -I{} sh -c 'echo "$(CURDIR)" > {}/sluice.pth && $(1)/bin/python -m compileall -q -j0 {}'
	touch $(1)/.installed
endef
# Sluice's own modules, likewise, before it is served (only what changed is compiled).
COMPILE_APP = -m compileall -q app asgi.py

$(RUN_STAMP): requirements.txt Makefile
	@echo "installing the runtime from requirements.txt into $(RUN_VENV)"
	$(call install_from_lock,$(RUN_VENV),requirements.txt)

$(STAMP): requirements-dev.txt Makefile
	@echo "installing the dev environment from requirements-dev.txt into $(VENV)"
	$(call install_from_lock,$(VENV),requirements-dev.txt)

# app/serve.py: hypercorn with a SIGTERM that drains first (readyz 503, streams finish).
run: $(RUN_STAMP)
	$(RUN_VENV)/bin/python $(COMPILE_APP)
	@echo "serving on http://$(SLUICE_HOST):$(SLUICE_PORT)/ (sim/echo, sim/lorem; memory store)"
	$(RUN_VENV)/bin/python -m app.serve --bind $(SLUICE_HOST):$(SLUICE_PORT) --loop uvloop

system-deps:
	sh ops/install-system-deps.sh

test: lint system-deps
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# A deliberate refresh of both locks to the newest releases pyproject.toml allows:
# commit it on its own, after `make test` passes on it.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 \
		--no-header --upgrade -o requirements.txt
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --generate-hashes \
		--python-version 3.11 --no-header --upgrade -o requirements-dev.txt
	$(BIN)/uv lock --upgrade

# bench/run.py starts each system itself (Redis included) and writes bench/RESULTS.md;
# bench/cancel.py then adds its section (cancel → upstream closed) to it.
bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.cancel

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick
	$(BIN)/python -m bench.cancel --runs 20

# Production shape: several hypercorn workers (ops/hypercorn.toml) sharing one Redis
# event log, so a reconnect served by any worker resumes. nginx goes in front
# (ops/nginx.conf). Every worker must sign stream URLs with the same secret: without
# SLUICE_SECRET one is made for this run (set it yourself when several hosts serve).
SLUICE_WORKERS ?= 2
serve-prod: $(RUN_STAMP)
	@test -n "$(SLUICE_REDIS_URL)" || { echo "serve-prod: SLUICE_REDIS_URL is unset. Several workers share streams only through Redis: export SLUICE_REDIS_URL=redis://127.0.0.1:6379/0" >&2; exit 2; }
	@test -n "$(SLUICE_SECRET)" || echo "serve-prod: SLUICE_SECRET is unset; using a secret made for this run (signed stream URLs die with it)" >&2
	$(RUN_VENV)/bin/python $(COMPILE_APP)
	SLUICE_SECRET="$${SLUICE_SECRET:-$$($(RUN_VENV)/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')}" \
	$(RUN_VENV)/bin/hypercorn --config ops/hypercorn.toml --bind $(SLUICE_HOST):$(SLUICE_PORT) --workers $(SLUICE_WORKERS) asgi:app

# k6 ramp of SSE streams against the simulated model (ops/k6/streams.js); starts its
# own Sluice unless SLUICE_URL is given. Size: LOAD_VUS, LOAD_RAMP, LOAD_HOLD, LOAD_TOKENS.
load: $(STAMP)
	$(BIN)/python ops/k6/run.py
