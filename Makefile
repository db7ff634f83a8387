# Developer entry points. `make run` and `make test` work on a fresh machine with only
# Python 3.11+ installed: the first run creates .venv and installs the project into it.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# Re-install only when the dependencies change: the stamp is newer than pyproject.toml.
STAMP := $(VENV)/.installed-stamp
# The first of these that is Python 3.11 or newer creates the virtual environment.
PYTHON_CANDIDATES ?= python3.13 python3.12 python3.11 python3
PYTHON ?= $(shell for p in $(PYTHON_CANDIDATES); do \
	command -v $$p >/dev/null 2>&1 && \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && \
	{ echo $$p; break; }; done)

PYTEST_ARGS ?=
# Parallel test workers (pytest-xdist). Most process-level tests wait on servers, workers
# and browsers, so four workers pay on two cores; TEST_WORKERS=0 runs everything in one
# process. Tests marked xdist_group (a module's own servers) stay on one worker.
TEST_WORKERS ?= 4
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadgroup --durations=20
# The suite starts hundreds of Python processes (servers, management commands, agents):
# let them write and reuse bytecode even where the environment turns that off.
PYTEST_ENV = env -u PYTHONDONTWRITEBYTECODE
BENCH_ARGS ?=
SANDBOX_ARGS ?=
VAR_DIR ?= var

.PHONY: help run test test-fast lint bench clean venv

help:
	@echo "make run    set up and serve the sandbox VTN on https://127.0.0.1:8443"
	@echo "make test   ruff and the layering contracts, then the whole pytest suite in parallel"
	@echo "           (PYTEST_ARGS='-k sandbox' narrows it, TEST_WORKERS=0 runs it in one process)"
	@echo "make test-fast  ruff and the contracts, then the in-process tests only (no slow, process or interop tests)"
	@echo "make lint   ruff, the layering contracts (import-linter) and mypy"
	@echo "make bench  run the benchmarks in benchmarks/ (BENCH_ARGS passes options)"
	@echo "make clean  delete local data under var/ (database, PKI, keys); keeps .venv"

$(PY):
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: Python 3.11 or newer is required (tried: $(PYTHON_CANDIDATES))." >&2; \
		echo "       Install it, or run: make PYTHON=/path/to/python3.11 ..." >&2; \
		exit 1; \
	fi
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	@$(PY) manage.py sandbox $(SANDBOX_ARGS)

# The layering contracts are in pyproject.toml ([tool.importlinter]); docs/architecture.md
# explains them. mypy's settings are there too ([tool.mypy]).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PYTEST_ENV) $(PY) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# The edit-test loop: leaves out property-based and process-level tests (real servers,
# workers, browsers, nginx) and the interop test; `make test` runs them all.
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PYTEST_ENV) $(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow and not process and not interop" $(PYTEST_ARGS)

bench: $(STAMP)
	@scripts=$$(grep -l '__main__' benchmarks/*.py 2>/dev/null || true); \
	if [ -z "$$scripts" ]; then echo "no benchmarks in benchmarks/"; exit 0; fi; \
	for script in $$scripts; do \
		echo "== $$script"; \
		$(PY) $$script $(BENCH_ARGS) || exit $$?; \
	done

clean:
	rm -rf -- $(VAR_DIR)
	rm -rf .pytest_cache .hypothesis test-artifacts .mypy_cache .import_linter_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
