# SPDX-License-Identifier: GPL-2.0
# make test-kernel   build Debian's Linux 7.3 (or KERNEL_SRC), check its vDSO, boot it, run the guest tests
# make test          lint, type-check and the test suite, including the real-kernel end-to-end test

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KERNEL_SRC ?=
SERIES ?=
EXPECT ?= upstream
ACCEL ?= auto
STRESS ?=
VARIANT ?=
HARNESS_ARGS ?=

.PHONY: all deps test-kernel test test-full lint unit e2e bench bench-speed bench-flaky clean

all: test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

deps: $(VENV)/.installed
	scripts/install-deps

test-kernel: deps
	$(PY) -m harness run --expect $(EXPECT) --accel $(ACCEL) \
		$(if $(KERNEL_SRC),--kernel-src $(KERNEL_SRC)) \
		$(foreach s,$(SERIES),--series $(s)) $(if $(STRESS),--stress) \
		$(if $(VARIANT),--config-variant $(VARIANT)) $(HARNESS_ARGS)

lint: deps
	$(VENV)/bin/ruff check harness tests bench guest-tests/runner.py guest-tests/python
	$(VENV)/bin/mypy harness

unit: deps
	$(PY) -m pytest -q -m "not e2e"

e2e: deps
	$(PY) -m pytest -q -m "e2e and not full"

test: lint
	$(PY) -m pytest -q -ra -m "not full"

# The heaviest real-kernel runs: other Debian kernels (cold builds) and the stress boots.
# Run before an issue they cover is resolved; the kernels' report is kept in bench/results/.
test-full: deps
	$(PY) -m pytest -q -ra -m full

# On demand, not in CI: each prints a table and writes JSON under runs/.
bench: bench-speed bench-flaky

bench-speed: deps
	$(PY) bench/speed.py

bench-flaky: deps
	$(PY) bench/flakiness.py -n $(or $(N),20)

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
