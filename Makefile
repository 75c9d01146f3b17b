# Two commands: `make train` and `make test`. Both build .venv on first use (or when
# pyproject.toml changes) with nothing but python3, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test test-fast lint backprop bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	@touch $(STAMP)

train: $(STAMP)
	$(BIN)/dqn-train --config configs/cartpole.yaml $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

# ruff (pinned in the dev extra): lint rules and formatting, as configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# `make bench`: dqn against Stable-Baselines3 side by side (`python -m benchmarks.bench`;
# ARGS="--quick" to check that it runs). The "bench" extra (SB3, CPU torch) is installed only
# when it is missing.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	@$(BIN)/python -c "import torch, stable_baselines3" 2>/dev/null \
		|| $(BIN)/python -m pip install --quiet -e ".[bench]"
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.bench $(ARGS)

backprop: $(STAMP)
	$(BIN)/dqn-backprop --out results/backprop

clean-venv:
	rm -rf $(VENV)
