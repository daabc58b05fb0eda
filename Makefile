# make setup   the virtualenv with the project and its test tools
# make run     migrate the default SQLite archive, run the scheduler in the foreground and the
#              web interface beside it on http://127.0.0.1:8000/
# make web     only the web interface (read-only) on http://127.0.0.1:8000/
# make test    lint, type-check, and the whole suite on SQLite and on a real PostgreSQL
# make bench   the throughput benchmark

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_URL_FILE := $(VENV)/.test-postgres-url

.PHONY: setup run web test lint format system-deps test-sqlite test-postgresql bench clean demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the suite needs: PostgreSQL (server for the tests) and Chromium (rendering).
system-deps:
	@missing=""; \
	ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages:$$missing (run: sudo apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

# The web interface runs in the background (loopback only, its request log off) and stops with
# the scheduler; if its port is taken it says so and the scheduler runs on without it.
run: setup
	$(BIN)/crawler db upgrade
	@CRAWLER_LOG_LEVEL=warning $(BIN)/crawler web & web=$$!; \
	trap 'kill $$web 2>/dev/null; wait $$web 2>/dev/null' EXIT INT TERM; \
	$(BIN)/crawler schedule

web: setup
	$(BIN)/crawler web

demo: setup
	$(BIN)/crawler demo

lint: setup
	$(BIN)/ruff format --check crawler tests bench migrations
	$(BIN)/ruff check crawler tests bench migrations
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format crawler tests bench migrations
	$(BIN)/ruff check --fix crawler tests bench migrations

test-sqlite: setup
	CRAWLER_TEST_DATABASE=sqlite $(BIN)/pytest

test-postgresql: setup
	@url=$$(bash tests/postgres.sh start) || exit 1; \
	CRAWLER_TEST_DATABASE=postgresql CRAWLER_TEST_POSTGRES_URL=$$url $(BIN)/pytest; \
	status=$$?; bash tests/postgres.sh stop; exit $$status

test: setup system-deps lint test-sqlite test-postgresql

bench: setup
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
