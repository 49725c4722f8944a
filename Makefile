# hft-tui.  Everything needs root (BPF, netlink, namespaces).
#   make demo   the lab, the simulator and the TUI, trading
#   make test   the house's guards (make check), then the whole test suite against the real kernel
#   make check  the layers contract (import-linter), ruff (lint and format) and mypy
#   make bench  latency benchmark: engine vs Python and C bots vs bare reflector
# Each installs what is missing first (make install).

VENV   := .venv
PY     := $(VENV)/bin/python
HFT    := $(VENV)/bin/hft-tui
PYTEST_ARGS ?=

.PHONY: install demo check test bench screenshots lab-down clean

install:
	@bash scripts/install.sh

demo: install
	$(HFT) --demo

check: install
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check hft_tui tests
	$(VENV)/bin/ruff format --check hft_tui tests
	$(VENV)/bin/mypy

test: check
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install
	$(HFT) bench --out docs/bench
	$(PY) -m hft_tui.bench.recorded_speed --out docs/bench/recorded.json
	$(PY) -m hft_tui.bench.app_perf --out docs/bench/app.json

screenshots: install
	$(PY) -m hft_tui.demo.screenshots

lab-down:
	@$(HFT) lab down

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
