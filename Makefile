# Two commands do all the set-up: `make run` and `make test`. Python 3.11+ is the only need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test
# make run PORT=5055 serves elsewhere.
PORT ?= 5000

.PHONY: install run test test-fast test-pg lint format bench bench-peer-install soak clean

$(STAMP): pyproject.toml
	@echo "Installing into $(VENV) (the first run takes a minute)..."
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# axe-core, injected into pages by the browser tests (accessibility checks).
node_modules/.installed-stamp: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

install: $(STAMP) node_modules/.installed-stamp

## run: migrate the embedded SQLite database, set up the demo, serve on http://127.0.0.1:$(PORT)
## and print, last, the demo post page, the queue and a login
run: export MODERATION_ENV ?= development
run: $(STAMP)
	@$(BIN)/moderation db upgrade --quiet
	@$(BIN)/moderation serve --host 127.0.0.1 --port $(PORT) --demo

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

# Isso, the peer of bench/peer.py, in a virtual environment of its own (gitignored).
ISSO_STAMP := bench/.isso-venv/.installed-stamp
$(ISSO_STAMP): bench/isso-requirements.txt
	$(PYTHON) -m venv bench/.isso-venv
	bench/.isso-venv/bin/python -m pip install --quiet -r bench/isso-requirements.txt
	touch $@

bench-peer-install: $(ISSO_STAMP)

## bench: the benchmarks (under 10 minutes on 2 cores); the load comes from wrk (apt-get install wrk)
bench: $(STAMP) $(ISSO_STAMP)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules instance dist build .mypy_cache .ruff_cache .pytest_cache
