# Two commands matter: `make run` (set up and start the demo) and `make test` (set up and run every test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck bench bench-jwt clean setup services

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mcp-bastion needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/bastion serve --demo

services:
	@scripts/test-services.sh

test: setup services
	$(BIN)/ruff check src tests bench infra
	$(BIN)/ruff format --check src tests bench infra
	$(BIN)/pyright
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests bench infra
	$(BIN)/ruff format --check src tests bench infra

typecheck: setup
	$(BIN)/pyright

bench: setup
	$(BIN)/python bench/governed_vs_bare.py

bench-jwt: setup
	$(BIN)/python bench/governed_vs_bare.py --auth jwt

clean:
	rm -rf $(VENV) .bastion-demo .pytest_cache build src/*.egg-info
