# dsfc: one-command setup, run, test. Needs root on Debian 12 (apt, namespaces, FRR).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
SCENARIO ?= scenarios/paper_fig4.yaml

# Debian packages the project needs (installed only when missing)
APT_PACKAGES := frr frr-pythontools mininet iproute2 nftables procps psmisc iputils-ping \
	ethtool tshark netsniff-ng clang llvm libbpf-dev bpftool gcc make python3-venv python3-dev \
	openssh-server openssh-client sudo iperf

.PHONY: help setup apt run-scenario reproduce test test-unit test-integration bench bench-scale clean distclean lint

help:
	@echo "make run-scenario   set up if needed, then run the paper's Section VI scenario once"
	@echo "make reproduce      the same, 20 repetitions (the paper's Fig. 5)"
	@echo "make test           set up if needed, then run lint + unit + integration tests"
	@echo "make bench          benchmarks (printed as tables)"
	@echo "make bench-scale    emulation at 25..200 nodes and the control-plane simulation (long)"
	@echo "make clean          remove everything earlier runs left (namespaces, daemons, pins)"
	@echo "make setup          Debian packages + virtualenv only"

apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "error: run as root to install packages" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev]'
	@touch $@

setup: apt $(VENV)/.installed
	@$(VPY) -m connector_p4.ebpf_build

run-scenario: setup
	$(VPY) -m scenarios run $(SCENARIO)

reproduce: setup
	$(VPY) -m scenarios run $(SCENARIO) --repetitions 20

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test-unit: setup
	$(VENV)/bin/pytest -q tests/unit

test-integration: setup
	$(VENV)/bin/pytest -q tests/integration

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q tests

bench: setup
	$(VPY) -m benchmarks

bench-scale: setup
	$(VPY) -m benchmarks scale sim_scale

clean:
	@if [ -x $(VPY) ]; then $(VPY) -m topologies.runstate; \
	else PYTHONPATH=. $(PY) -m topologies.runstate; fi
	rm -rf .pytest_cache .ruff_cache .hypothesis

distclean: clean
	rm -rf $(VENV) *.egg-info
