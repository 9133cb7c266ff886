# Two commands a new user needs: `make run` (a node on the built-in defaults) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck format-check bench chaos fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*; touch $@

run: $(STAMP)
	$(BIN)/marmot $(ARGS)

# CI (.ci/run) runs this: lint, format, types, then the tests
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q $(PYTEST_ARGS)

# subsets by marker (tests/README.md): in-process unit tests only (about a minute), or the multi-node ones
.PHONY: test-unit test-cluster
test-unit: $(STAMP)
	$(BIN)/pytest -q -m unit $(PYTEST_ARGS)

test-cluster: $(STAMP)
	$(BIN)/pytest -q -m cluster $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

# mypy over src/marmot with [tool.mypy] in pyproject.toml (strict on mysql, storage, cluster, sql, engine, replication)
typecheck: $(STAMP)
	$(BIN)/mypy

# `ruff format --check` (part of `make test`); `.venv/bin/ruff format src tests bench` formats
format-check: $(STAMP)
	$(BIN)/ruff format --check src tests bench

bench: $(STAMP)
	$(BIN)/python bench/point_select.py

# ten seeded fault schedules of 60 s each (tests/chaos, docs/reliability.md); CI runs one short one
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.runner --schedules 10 --duration 60 $(ARGS)

# the Hypothesis fuzzers with many examples (minutes; `make test` runs them for seconds), then the
# overload tests with the 100 MB result set (docs/reliability.md, "Fuzzing" and "Overload")
FUZZ_TESTS := tests/unit/test_fuzz_mysql.py tests/unit/test_fuzz_rpc.py tests/unit/test_fuzz_config.py \
	tests/integration/test_fuzz_node.py
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -p no:cacheprovider -o timeout=3600 $(FUZZ_TESTS) $(PYTEST_ARGS)
	MARMOT_OVERLOAD_FULL=1 $(BIN)/pytest -q -s -o timeout=1800 tests/integration/test_overload.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) marmot-data .pytest_cache .mypy_cache
