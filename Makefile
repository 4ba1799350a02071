# Aegis — the two commands that work on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CACHE := .cache
STAMP := $(VENV)/.setup-stamp
AEGIS := $(BIN)/aegis

.PHONY: setup demo test test-unit test-integration lint kafka-up kafka-down mlflow-ui sql serve notebooks tables-doc \
        bench-model bench-stream bench-backfill bench-api bench-quality features-listing clean

$(STAMP): pyproject.toml requirements.lock deploy/spark/pom.xml deploy/kafka/pom.xml deploy/fetch-jars.sh deploy/install-chromium.sh \
          deploy/build-jvm.sh jvm/pom.xml $(shell find jvm/src -name '*.java')
	@command -v $(PYTHON) >/dev/null || { echo "setup: $(PYTHON) not found (Aegis needs Python 3.11)"; exit 1; }
	@command -v java >/dev/null || { echo "setup: java not found (Aegis needs a JDK 17)"; exit 1; }
	@command -v mvn >/dev/null || { echo "setup: mvn not found (needed once to resolve the JVM jars)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	bash deploy/fetch-jars.sh $(CACHE)
	bash deploy/build-jvm.sh $(CACHE)
	bash deploy/install-chromium.sh
	touch $(STAMP)

setup: $(STAMP)  ## virtualenv, pinned Python deps, JVM jars, Kafka broker libs (idempotent)

demo: setup  ## the whole path on embedded defaults, bounded; prints a summary
	$(AEGIS) demo

test: setup  ## every test: unit and integration (real Kafka broker, Spark, Delta, MLflow)
	$(BIN)/python -m pytest -p no:cacheprovider --durations=15

test-unit: setup
	$(BIN)/python -m pytest -p no:cacheprovider -m "not integration"

test-integration: setup
	$(BIN)/python -m pytest -p no:cacheprovider -m integration

lint: setup  ## ruff and mypy on the project's own code
	$(BIN)/ruff check .
	$(BIN)/mypy

kafka-up: setup
	$(AEGIS) kafka up

kafka-down: setup
	$(AEGIS) kafka down

sql: setup  ## interactive Spark SQL shell over the aegis catalog
	$(AEGIS) sql-shell

notebooks: setup  ## execute the analyst notebooks headless (copies with outputs in var/notebooks/)
	$(BIN)/python notebooks/run.py

tables-doc: setup  ## regenerate docs/tables.md from the table contracts and view docs
	$(BIN)/python -m analysts.dictionary --write

serve: setup  ## the score lookup API (uvicorn)
	$(AEGIS) serve

mlflow-ui: setup  ## MLflow UI over the configured tracking store
	$(AEGIS) mlflow-ui

features-listing: setup  ## regenerate features/compiled.md from the declarations
	$(AEGIS) features listing --write

bench-model: setup
	$(BIN)/python benchmarks/bench_model.py

bench-stream: setup
	$(BIN)/python benchmarks/bench_stream.py $(ARGS)

bench-backfill: setup
	$(BIN)/python benchmarks/bench_backfill.py

bench-api: setup
	flock /tmp/aegis-heavy.lock $(BIN)/python benchmarks/bench_api.py

bench-quality: setup
	$(BIN)/python benchmarks/bench_quality.py

clean:  ## remove local data (lakehouse, broker storage, MLflow store); keeps the venv and jar cache
	-$(AEGIS) kafka down
	rm -rf var
