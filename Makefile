# The two commands of the README: `make demo` and `make test`. Both set up .venv first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
# Run as if the venv were activated, so that tools calling `python` (e.g. tools/dist_train.sh) use it.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo test lint

setup:
	@bash tools/setup_env.sh

lint: setup
	$(PY) -m ruff check mmad tools tests configs

test: lint
	$(PY) -m pytest -q

demo: setup
	$(PY) tools/run_demo.py
