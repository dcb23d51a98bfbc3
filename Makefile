# The two commands of the README: `make playground` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: playground test lint typecheck unit integration librdkafka bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $(STAMP)

playground: $(STAMP)
	$(BIN)/shoal playground $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) lint
	$(BIN)/pytest -q -ra $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

librdkafka: $(STAMP)
	bash compat/librdkafka/run.sh

bench: $(STAMP)
	$(BIN)/python bench/produce_consume.py $(ARGS)

# Each fuzz target for FUZZ_SECONDS (make test runs them for 12 s each).
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python fuzz/run.py

clean:
	rm -rf $(VENV) .cache shoal-data .pytest_cache .mypy_cache .ruff_cache
