# Two commands do all the set-up: `make run` and `make test`. Python 3.11+ is the only need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: install run test test-fast test-pg lint format bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# axe-core, injected into pages by the browser tests (accessibility checks).
node_modules/.installed-stamp: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

install: $(STAMP) node_modules/.installed-stamp

## run: migrate the embedded SQLite database, set up the demo, serve on http://127.0.0.1:5000
run: export MODERATION_ENV ?= development
run: $(STAMP)
	$(BIN)/moderation db upgrade
	$(BIN)/moderation demo
	$(BIN)/moderation serve --host 127.0.0.1 --port 5000

## test: the suite on SQLite, and again on PostgreSQL when MODERATION_TEST_DATABASE_URL is set
test: install
	MODERATION_TEST_DATABASE_URL= $(BIN)/python -m pytest
	@if [ -n "$$MODERATION_TEST_DATABASE_URL" ]; then \
		echo "--- again on $$MODERATION_TEST_DATABASE_URL"; \
		$(BIN)/python -m pytest; \
	fi

## test-fast: the in-process tiers on SQLite, for day-to-day work (no browser, no separate
## processes, no races, faults, load, benchmarks, packaging or WordPress: make test runs those too)
SLOW_TIERS := browser or subprocess or concurrency or faults or load or bench or packaging or wordpress
test-fast: $(STAMP)
	MODERATION_TEST_DATABASE_URL= $(BIN)/python -m pytest -m "not ($(SLOW_TIERS))"

## test-pg: the suite on the local PostgreSQL only
test-pg: install
	MODERATION_TEST_DATABASE_URL=$(TEST_PG_URL) $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## soak: the load run for a minute on SQLite and on the local PostgreSQL, and the fault runs
## (PostgreSQL stopped under load, a hung database, a full disk), report in bench/results/soak.md;
## then the XSS corpus test with every payload (make test takes a sample)
soak: install
	$(BIN)/python -m bench.soak $(TEST_PG_URL)
	XSS_CORPUS=full MODERATION_TEST_DATABASE_URL= $(BIN)/python -m pytest -s tests/test_browser_xss.py

## bench: the benchmarks (under 10 minutes on 2 cores); the load comes from wrk (apt-get install wrk)
bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules instance dist build .mypy_cache .ruff_cache .pytest_cache
