# Two entry points: `make demo` and `make test`. Both create .venv when it is
# missing and (re)install the package whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

# The real clients the end-to-end tests drive, unmodified (issue 11): azure-cli in
# its own venv (its pins clash with ours), the JavaScript SDK from tests/clients/js.
AZ_VENV := .venv-az
AZ_CLI := azure-cli==2.91.0
AZ_STAMP := $(AZ_VENV)/.installed-stamp
JS_DIR := tests/clients/js
JS_STAMP := $(JS_DIR)/node_modules/.installed-stamp

.PHONY: demo demo-simulated test bench install clients browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(AZ_STAMP):
	test -x $(AZ_VENV)/bin/python || $(PYTHON) -m venv $(AZ_VENV)
	$(AZ_VENV)/bin/python -m pip install --quiet '$(AZ_CLI)'
	touch $@

# Node.js and npm from Debian's packages where they are missing and we may install.
$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	command -v npm >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }; }
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The dashboard's browser tests drive Debian's chromium (Playwright's own browser download
# cannot work offline): installed where missing and we may install.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; } \
		|| echo "chromium could not be installed: the dashboard's browser tests will skip"

# Best effort: a client that cannot be installed here makes its tests skip, saying why.
clients: browser
	-@$(MAKE) --no-print-directory $(AZ_STAMP) || echo "azure-cli could not be installed: its tests will skip"
	-@$(MAKE) --no-print-directory $(JS_STAMP) || echo "the JavaScript SDK could not be installed: its tests will skip"

# Real instances on this machine: upgrade to 1.1.0, roll back the broken 1.2.0.
demo: $(STAMP)
	$(BIN)/scaleset demo --images examples/images/webapp

# The same engine on a simulated 50-instance fleet, in virtual time.
demo-simulated: $(STAMP)
	$(BIN)/scaleset simulate examples/scenarios/bad-image-50.json

# PostgreSQL-backed tests run when a server answers on 127.0.0.1:5432;
# otherwise they skip and say why. The suite runs in PYTEST_WORKERS processes
# (pytest-xdist; most tests wait on real instances rather than compute), each
# PostgreSQL test process in a schema of its own; PYTEST_WORKERS=0 runs it in one.
PYTEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist worksteal)
test: $(STAMP) clients
	@if [ -f $(AZ_STAMP) ]; then export SCALESET_TEST_AZ='$(abspath $(AZ_VENV))/bin/az'; fi; \
	if [ -f $(JS_STAMP) ]; then export SCALESET_TEST_JS_DIR='$(abspath $(JS_DIR))'; fi; \
	if $(BIN)/python -c "import psycopg,sys; psycopg.connect('host=127.0.0.1 port=5432 user=postgres dbname=test', connect_timeout=3).close()" 2>/dev/null; then \
		echo "PostgreSQL answers on 127.0.0.1:5432: store tests run on it too"; \
		SCALESET_TEST_POSTGRES_URL='$(PG_URL)' $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS); \
	else \
		echo "PostgreSQL not reachable on 127.0.0.1:5432: its tests will skip"; \
		$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS); \
	fi

bench: $(STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) $(AZ_VENV) $(JS_DIR)/node_modules build *.egg-info src/*.egg-info .pytest_cache .hypothesis
