# Koho — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.koho-installed

.PHONY: run test lint bench install clean help

help:
	@echo "make run    - install, migrate, start the sandbox and Airflow with the demo city"
	@echo "make test   - run the whole test suite"
	@echo "make lint   - ruff check and ruff format --check"
	@echo "make bench  - benchmarks (figures as ratios against a baseline measured in the same run)"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) scripts/run_demo.py

test: install
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) -m bench

clean:
	rm -rf .airflow .pytest_cache .ruff_cache .hypothesis
