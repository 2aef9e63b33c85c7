"""Fixtures of the scheduler tests: the sample market and a SQLite warehouse as the actions'
resources, a Dagster instance that queues runs, and a catalog file for the test code location."""

import dagster as dg
import pytest

from zquant_pipelines.constants import ENV_TASKS_FILE, ENV_TUSHARE_TOKEN, ENV_WAREHOUSE_URL
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines_tests.support.catalog_files import catalog_text
from zquant_pipelines_tests.tasks.support import dagster_home, shipped_instance_config


@pytest.fixture
def resources(tmp_path):
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")
    yield {"market_source": SampleMarketSource(), "warehouse": warehouse}
    warehouse.dispose()


@pytest.fixture
def queue_instance(tmp_path):
    """An instance set up as the shipped dagster.yaml (run queue, one run per task, run-level
    pools), whose launcher only records the runs that leave the queue."""
    overrides = shipped_instance_config()
    with dg.instance_for_test(temp_dir=dagster_home(tmp_path), overrides=overrides) as queued:
        yield queued


@pytest.fixture
def use_catalog(tmp_path, monkeypatch):
    """Point the test code location (catalog_location.py) at a catalog of these tasks, the
    sample market and a SQLite warehouse in tmp_path; returns the catalog file."""

    def write(tasks: list[dict]):
        path = tmp_path / "tasks.yaml"
        path.write_text(catalog_text(tasks))
        monkeypatch.setenv(ENV_TASKS_FILE, str(path))
        monkeypatch.setenv(ENV_WAREHOUSE_URL, f"sqlite:///{tmp_path / 'wh.db'}")
        monkeypatch.delenv(ENV_TUSHARE_TOKEN, raising=False)
        return path

    return write
