# The commands of the README: `make demo` and `make test` (`make test-quick` while developing). All set up .venv
# first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
# Run as if the venv were activated, so that tools calling `python` (e.g. tools/dist_train.sh) use it.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo test test-quick lint

setup:
	@bash tools/setup_env.sh

lint: setup
	$(PY) -m ruff check mmad tools tests configs

# pytest-xdist workers: one per core, at most 4; tests/parallel_scheduling.py shares the tests between them.
PYTEST_PARALLEL ?= -n auto --maxprocesses=4

test: lint
	$(PY) -m pytest -q $(PYTEST_PARALLEL)

# Everything but the tests marked slow (end-to-end trainings, multi-process runs): docs/testing.md.
test-quick: lint
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not slow"

demo: setup
	$(PY) tools/run_demo.py
