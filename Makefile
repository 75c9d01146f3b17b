# Two commands: `make train` and `make test`. Both build .venv on first use (or when
# pyproject.toml changes) with nothing but python3, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test test-fast backprop clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

train: $(STAMP)
	$(BIN)/dqn-train --config configs/cartpole.yaml $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

backprop: $(STAMP)
	$(BIN)/dqn-backprop --out results/backprop

clean-venv:
	rm -rf $(VENV)
