# `make serve` and `make test` work on a fresh clone with nothing but Python 3.11 installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU wheel of torch must come first: a bare `torch` requirement would pull GBs of CUDA packages.
TORCH := torch==2.13.0
# Tools installed into the venv (hadolint, yamllint, streamuq) are found by the tests.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install serve test lint typecheck unit bench bench-quick train export clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,cluster]"
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(BIN)/streamuq serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest

test: lint typecheck unit

bench: install
	$(BIN)/python -m benchmarks

bench-quick: install
	$(BIN)/python -m benchmarks --quick

train: install
	$(BIN)/streamuq train --model all

export: install
	$(BIN)/streamuq export --model all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
