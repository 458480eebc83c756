# Two entry points: `make demo` and `make test`. Both create .venv when it is
# missing and (re)install the package whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: demo demo-simulated test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Real instances on this machine: upgrade to 1.1.0, roll back the broken 1.2.0.
demo: $(STAMP)
	$(BIN)/scaleset demo --images examples/images/webapp

# The same engine on a simulated 50-instance fleet, in virtual time.
demo-simulated: $(STAMP)
	$(BIN)/scaleset simulate examples/scenarios/bad-image-50.json

# PostgreSQL-backed tests run when a server answers on 127.0.0.1:5432;
# otherwise they skip and say why.
test: $(STAMP)
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('host=127.0.0.1 port=5432 user=postgres dbname=test', connect_timeout=3).close()" 2>/dev/null; then \
		echo "PostgreSQL answers on 127.0.0.1:5432: store tests run on it too"; \
		SCALESET_TEST_POSTGRES_URL='$(PG_URL)' $(BIN)/python -m pytest $(PYTEST_ARGS); \
	else \
		echo "PostgreSQL not reachable on 127.0.0.1:5432: its tests will skip"; \
		$(BIN)/python -m pytest $(PYTEST_ARGS); \
	fi

bench: $(STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .hypothesis
