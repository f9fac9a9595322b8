# Set-up and checks for runner-fsm. Both targets create the virtual environment when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RUNTIME__DLTHUB_TELEMETRY := false

.PHONY: demo test lint bench install clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test,demo,postgres,tenacity,dev]"
	touch $(STAMP)

install: $(STAMP)

# Load the NYC flights 2013 data set into duckdb through runner-fsm, then print rows per table.
demo: $(STAMP)
	$(BIN)/runner-fsm run examples/nycflights/dlt.yml flights
	$(BIN)/python examples/nycflights/count_rows.py

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# Time runner-fsm against plain dlt, the journal and the command line; see docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python bench/run_cost.py
	$(BIN)/python bench/journal_cost.py

lint: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m ruff check runner_fsm tests

clean-demo:
	rm -rf examples/nycflights/_data
