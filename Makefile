# Two set-up commands on a fresh machine with python3 and make: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: run test dev lint format bench bench-full clean home worker

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The instance directory with our dagster.yaml (SQLite storage unless DAGSTER_PG_URL is set).
home: $(STAMP)
	$(BIN)/python -m zquant_pipelines.instance_home

run: home
	$(BIN)/zquant demo

# Two pytest-xdist workers, each taking whole modules (--dist loadfile: a module's fixtures,
# such as its one `make dev`, are built once), in the order support/module_order.py gives
# (slowest first; --no-loadscope-reorder keeps it). TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder zquant_pipelines_tests

# `dagster dev` (UI + daemon) whose webserver refuses other sites' requests (CSRF): see
# zquant_pipelines/dev_server.py.
dev: home
	$(BIN)/python -m zquant_pipelines.dev_server -w workspace.yaml -h 127.0.0.1 -p 3000

# A Celery worker for tasks/jobs on the celery executor (broker: ZQUANT_CELERY_BROKER, default
# Redis on loopback). Start one per machine; WORKER_NAME must be unique per machine.
worker: home
	$(BIN)/zquant worker --name $(or $(WORKER_NAME),worker-$(shell hostname)) --concurrency $(or $(WORKER_CONCURRENCY),1)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The benchmarks need the bench extra (matplotlib, for the curves' PNG).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench --table

bench-full: $(BENCH_STAMP)
	$(BIN)/python -m bench --size full
	$(BIN)/python -m bench --table

clean:
	rm -rf $(VENV) .dagster_home data *.egg-info
