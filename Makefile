# Two commands: `make train` and `make test` (the README's quick start). Both build .venv on
# first use (or when pyproject.toml changes) with nothing but python3, then run. `make help`
# lists the other targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# setuptools prints a boxed "Editable installation" notice (the repository's `dqn/` folder takes
# precedence over other installs during imports) for every editable install: that is what an
# editable install is for here, so the notice is filtered out, and no other warning with it.
# `-c constraints.txt`: every package at the version the suite last passed with (`make lock`
# below), so that a fresh clone installs the same set next month as today; pyproject.toml keeps
# the ranges the package accepts, for `pip install` into a project of your own.
# $(call editable,VENV,LOCK): that pip install into VENV's python, under LOCK.
editable = PYTHONWARNINGS="ignore:Editable installation" $(1)/bin/python -m pip install --quiet \
	-c $(2) -e
EDITABLE := $(call editable,$(VENV),constraints.txt)

.DEFAULT_GOAL := help  # a bare `make` lists the targets (it ran the install)
.PHONY: help train test test-fast test-other-cpu test-lowest trust lint backprop bench lock \
	clean-venv

# pyproject.toml's requires-python, checked here so that the message names the interpreter.
NEED_PY := import sys; sys.exit(sys.version_info < (3, 10))
AGAIN := make $(or $(MAKECMDGOALS),train) PYTHON=python3.11

# A venv cannot move: its scripts start the python of the folder it was made in (a clone moved
# or renamed failed with ".venv/bin/dqn-train: exec: <old folder>/.venv/bin/python: not found").
# The stamp holds that folder, and a .venv made in another one is made again. (An empty stamp
# is an older Makefile's, which did not record it.)
MADE_IN := $(shell cat $(STAMP) 2>/dev/null)
ifneq ($(MADE_IN),)
ifneq ($(MADE_IN),$(CURDIR))
.PHONY: $(STAMP)  # out of date whatever its time: its recipe then makes .venv again
MOVED := @echo "make: .venv was made in $(MADE_IN), not in $(CURDIR): making it again"; \
	rm -rf $(VENV)
endif
endif

# A .venv installed once whose python or pyvenv.cfg went since (deleted, an interrupted `rm -rf
# .venv`) is made again too: its stamp alone said it was up to date, and `make train` failed
# with ".venv/bin/dqn-train: No such file or directory" or "No module named 'dqn'".
ifneq ($(wildcard $(STAMP)),)
ifeq ($(shell test -f $(VENV)/pyvenv.cfg && test -x $(BIN)/python && echo ok),)
.PHONY: $(STAMP)
BROKEN := @echo "make: .venv has no bin/python or pyvenv.cfg: making it again"; rm -rf $(VENV)
endif
endif

# A .venv that is not a venv with a pip that runs is made again: a `python3 -m venv` that failed
# half-way (Debian's and Ubuntu's Python without their python3-venv package) leaves a python
# without pip, on which every later run failed with "No module named pip"; a Ctrl-C while pip
# upgraded itself, or while venv installed it, leaves a pip that imports but does not run ("No
# module named 'pip._internal.utils'", on every later run); and a .venv whose pyvenv.cfg is
# gone (an interrupted `rm -rf .venv`) leaves a python that is the base interpreter itself,
# into which pip would install everything.
IS_VENV := import sys; sys.exit(sys.prefix == sys.base_prefix)
# The folder as it is, quoted for the shell ('...' keeps $, `, \ and " as they are: an echo of
# "$(CURDIR)" expanded them, and the stamp never matched its folder again).
QUOTED_CURDIR := '$(subst ','\'',$(CURDIR))'
$(STAMP): pyproject.toml constraints.txt
	$(MOVED)
	$(BROKEN)
	@if ! { $(BIN)/python -c '$(IS_VENV)' && $(BIN)/python -m pip --version; } >/dev/null 2>&1; \
	then \
		rm -rf $(VENV); \
		command -v $(PYTHON) >/dev/null || { echo "make: no '$(PYTHON)' on PATH;" \
			"dqn needs Python >= 3.10: give one, as in '$(AGAIN)'" >&2; exit 2; }; \
		version=$$($(PYTHON) -V 2>&1) || { echo "make: '$(PYTHON)' does not run" \
			"($$(echo "$$version" | head -n 1)): give another, as in '$(AGAIN)'" >&2; exit 2; }; \
		$(PYTHON) -c '$(NEED_PY)' || { echo "make: dqn needs Python >= 3.10 and '$(PYTHON)'" \
			"is $$version: give another, as in '$(AGAIN)'" >&2; exit 2; }; \
		$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 2; }; \
	fi
	@$(BIN)/python -c '$(NEED_PY)' || { echo "make: .venv holds $$($(BIN)/python -V 2>&1)" \
		"and dqn needs Python >= 3.10: 'make clean-venv', then '$(AGAIN)'" >&2; exit 2; }
	@echo "make: installing dqn and what it needs into .venv (a few minutes the first time)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(EDITABLE) ".[dev,ray,render]"
	@printf '%s\n' $(QUOTED_CURDIR) > $(STAMP)

help:
	@echo "make train           train CartPole-v1 with configs/cartpole.yaml (ARGS: dqn-train's options)"
	@echo "make test            the whole test suite, slow training tests included (ARGS: pytest's)"
	@echo "make test-fast       the suite without the tests marked slow"
	@echo "make test-other-cpu  the suite rounding as another x86-64 CPU would (docs/trust.md)"
	@echo "make test-lowest     the suite with the oldest release of each package dqn takes"
	@echo "make trust           30 seeds of the default config: how many solve CartPole-v1"
	@echo "make backprop        the backprop lab's four demos and plots, into results/backprop"
	@echo "make bench           dqn against Stable-Baselines3 side by side (installs SB3, torch)"
	@echo "make lint            ruff's checks and formatting"
	@echo "make lock            constraints.txt resolved again (needs the package index)"
	@echo "make clean-venv      remove .venv"

train: $(STAMP)
	$(BIN)/dqn-train --config configs/cartpole.yaml $(ARGS)
	@echo "One seed is one draw: 'make trust' trains 30 seeds and counts how many solve CartPole."

# Two pytest workers, a test file each at a time (its module fixtures are built once): the
# suite's single-process tests then use both cores, and the tests that train in two processes
# share them with whatever the other worker runs. Files go out in the order tests/conftest.py
# gives them, longest first (xdist would order them by their number of tests, which put the
# longest file last). ARGS="-n 0" runs it in one process.
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	$(PYTEST) $(ARGS)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow" $(ARGS)

# The whole suite rounding as another CPU would: XLA compiled for SSE4.2 (no AVX, no FMA) and
# OpenBLAS's Sandybridge kernels (AVX, no FMA) send every seed down other float trajectories
# than this machine's own kernels (`python -m benchmarks.rounding` prints digests that show it).
# Not Haswell: OpenBLAS already picks those for AVX2 CPUs (AMD Zen too), where they would change
# nothing. x86-64 only. On an AVX CPU without AVX2 (Sandy and Ivy Bridge) the Sandybridge
# kernels are OpenBLAS's own choice: the target says so, since only XLA's rounding changes there.
OTHER_CPU := XLA_FLAGS="$$XLA_FLAGS --xla_cpu_max_isa=SSE4_2" OPENBLAS_CORETYPE=Sandybridge

test-other-cpu: $(STAMP)
	@case "$$(uname -m)" in x86_64|amd64) ;; *) echo "test-other-cpu: x86-64 only (XLA's SSE4.2" \
		"build and OpenBLAS's Sandybridge kernels are x86 kernels); this machine is $$(uname -m)" >&2; \
		exit 2;; esac
	@if [ -r /proc/cpuinfo ] && grep -qw avx /proc/cpuinfo && ! grep -qw avx2 /proc/cpuinfo; then \
		echo "test-other-cpu: this CPU runs OpenBLAS's Sandybridge kernels already;" \
			"numpy rounds as it does without this target (XLA does not)" >&2; fi
	$(OTHER_CPU) $(PYTEST) $(ARGS)

# `make test-lowest`: the suite (ARGS: pytest's) against the oldest releases pyproject.toml
# accepts of each package it names (constraints-lowest.txt; what they pull in at its newest
# allowed), in a .venv-lowest of its own, so that the ranges a `pip install dqn` into a
# project of your own may pick are ranges the suite passed in. The benchmarks are left out: they
# run at the lock's versions (`make bench`). TensorFlow 2.16 has wheels for Python 3.9-3.12.
LOWEST_VENV := .venv-lowest
LOWEST_STAMP := $(LOWEST_VENV)/.installed-lowest

LOWEST_PY := import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))

$(LOWEST_STAMP): pyproject.toml constraints-lowest.txt
	@$(LOWEST_VENV)/bin/python -m pip --version >/dev/null 2>&1 || { \
		$(PYTHON) -c '$(LOWEST_PY)' 2>/dev/null || { echo "make: test-lowest needs Python 3.10" \
			"to 3.12 (TensorFlow 2.16 has wheels up to 3.12) and '$(PYTHON)' is" \
			"$$($(PYTHON) -V 2>&1 | head -n 1): give one, as in 'make test-lowest" \
			"PYTHON=python3.12'" >&2; \
			exit 2; }; \
		rm -rf $(LOWEST_VENV) && $(PYTHON) -m venv $(LOWEST_VENV) || exit 2; }
	@echo "make: installing dqn with the oldest releases it takes into $(LOWEST_VENV)"
	$(LOWEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(call editable,$(LOWEST_VENV),constraints-lowest.txt) ".[dev,ray,render]"
	@touch $(LOWEST_STAMP)

test-lowest: $(LOWEST_STAMP)
	$(LOWEST_VENV)/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder \
		--ignore tests/test_bench.py $(ARGS)

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
		|| { echo "make: installing the bench extra (Stable-Baselines3, CPU torch) into .venv"; \
			$(EDITABLE) ".[bench]"; }
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.bench $(ARGS)

# `make trust`: does the default config learn on this machine? It trains seeds 0-29 of
# configs/cartpole.yaml (TensorFlow learner, as populations) and prints how many ended >= 475,
# with a 95% interval, beside the median env steps to the first evaluation >= 475. Run again, it
# trains nothing and prints the same summary; an interrupted one continues where it stopped.
trust: $(STAMP)
	$(BIN)/dqn-compare --config configs/cartpole.yaml --variants default:loss=huber --seeds 30 \
		--out results/trust-check $(ARGS)

backprop: $(STAMP)
	$(BIN)/dqn-backprop --out results/backprop

# `make lock`: constraints.txt resolved again from pyproject.toml (every extra, for Python 3.10
# on, every platform: one file, its pins split by environment markers where a package's newest
# release differs between Pythons), keeping each pin that pyproject.toml still allows;
# `make lock ARGS=--upgrade` moves every pin to the newest release allowed. Then `make test`
# and `python scripts/lock_wheels.py` (a wheel of every pin for each Python and platform).
# uv resolves (pip cannot write a lock for other Pythons than its own); pip still installs. It
# lives in a venv of its own, so that a lock pyproject.toml no longer fits can still be redone.
LOCK_VENV := .venv-lock
lock:
	@test -x $(LOCK_VENV)/bin/uv || { rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV) \
		&& $(LOCK_VENV)/bin/python -m pip install --quiet "uv==0.13.9"; }
	$(LOCK_VENV)/bin/uv pip compile pyproject.toml --extra dev --extra ray --extra render \
		--extra bench --universal --python-version 3.10 --quiet --custom-compile-command \
		"make lock" --constraint constraints-holds.txt --output-file constraints.txt $(ARGS)

clean-venv:
	rm -rf $(VENV)
