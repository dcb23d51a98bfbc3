# The two commands of the README: `make playground` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: playground test lint typecheck unit integration librdkafka compat bench verify soak fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench,verify]'
	touch $(STAMP)

playground: $(STAMP)
	$(BIN)/shoal playground $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) lint
	$(BIN)/pytest -q -ra -m "not compat" $(PYTEST_ARGS)

# The whole of each peer suite (Java client, Kafka's tools, franz-go, the differential suite
# against Apache Kafka); make test runs a representative part of each.
compat: $(STAMP)
	$(BIN)/pytest -q -ra -m compat $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

librdkafka: $(STAMP)
	bash compat/librdkafka/run.sh

bench: $(STAMP)
	$(BIN)/python bench/produce_consume.py $(ARGS)

# The acceptance run of `shoal verify` (docs/verify.md): 10 minutes, 3 agents on SeaweedFS and
# PostgreSQL, kill -9, SIGSTOP for twice the heartbeat timeout, S3 503s and latency, a
# PostgreSQL restart. Report in verify-report/; exit code nonzero on any violation.
VERIFY_FAULTS := kill:60s:5s,stop:150s:10s,s3-503:240s:15s,pg-restart:330s:3s,kill:420s:5s,s3-slow:480s:20s:500ms,stop:540s:10s
verify: $(STAMP)
	$(BIN)/shoal verify --playground 3 --object-store seaweedfs --metadata postgres \
		--partitions 8 --producers 3 --consumers 2 --duration-s 600 \
		--faults $(VERIFY_FAULTS) --report verify-report $(ARGS)

# The long runs of the life of data (docs/jobs.md): compaction under load for 10 minutes (make
# test runs it for 60 s), then bench/soak.py for 15 minutes (table, verdict, PNG in soak-report/).
soak: $(STAMP)
	SHOAL_COMPACTION_LOAD_S=600 $(BIN)/pytest -q -ra tests/integration/test_compaction_load.py
	$(BIN)/python bench/soak.py --data-dir soak-report $(ARGS)

# Each fuzz target for FUZZ_SECONDS (make test runs them for 12 s each).
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python fuzz/run.py

clean:
	rm -rf $(VENV) .cache shoal-data verify-report soak-report .pytest_cache .mypy_cache .ruff_cache
