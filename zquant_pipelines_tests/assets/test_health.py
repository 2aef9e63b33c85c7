"""The task_health asset, job and schedule of the code location, on a run store holding the
known mix of task runs of ``support/synthetic_runs.py``."""

import datetime as dt

import dagster as dg
import pytest

from zquant_pipelines.assets.definitions import build_asset_definitions
from zquant_pipelines.assets.health import ALL_TASKS_KEY, OPERATIONS_GROUP
from zquant_pipelines.history.stats import task_stats
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines_tests.support.synthetic_runs import (
    KNOWN_ANSWER_TASK,
    UNFINISHED_TASK,
    planned_runs,
    write_planned_run,
)

TASK_HEALTH = dg.AssetKey("task_health")
PLANNED = planned_runs()
STATS_FIELDS = (
    "success_rate",
    "avg_duration_seconds",
    "p95_duration_seconds",
    "total_executions",
    "failed_count",
    "running_count",
)


@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dg.Definitions:
    """The assets' Definitions with the resources the market assets need bound (task_health
    itself uses none)."""
    warehouse = Warehouse(url=f"sqlite:///{tmp_path_factory.mktemp('wh') / 'wh.db'}")
    resources = {"market_source": SampleMarketSource(), "warehouse": warehouse}
    yield dg.Definitions.merge(build_asset_definitions(), dg.Definitions(resources=resources))
    warehouse.dispose()


@pytest.fixture(scope="module")
def task_runs_instance(tmp_path_factory):
    """The synthetic mix of task runs; tests only read it."""
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("home"))) as instance:
        for run in PLANNED:
            write_planned_run(instance, run)
        yield instance


@pytest.fixture
def empty_instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


def materialize_task_health(defs: dg.Definitions, instance) -> dict:
    """Run task_health_job and return the metadata values of its materialization."""
    result = defs.resolve_job_def("task_health_job").execute_in_process(instance=instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node("task_health")
    assert materialization.asset_key == TASK_HEALTH
    return materialization.metadata


def expected_metadata(instance) -> dict:
    """task_stats' numbers under ``<task>/<field>``; figures without a value are absent."""
    report = task_stats(instance)
    rows = [(ALL_TASKS_KEY, report.overall)] + [(row.task, row) for row in report.tasks]
    return {
        f"{prefix}/{field}": getattr(row, field)
        for prefix, row in rows
        for field in STATS_FIELDS
        if getattr(row, field) is not None
    }


def test_task_health_records_every_tasks_stats_as_numeric_metadata(defs, task_runs_instance):
    metadata = materialize_task_health(defs, task_runs_instance)

    assert {key: value.value for key, value in metadata.items()} == expected_metadata(
        task_runs_instance
    )
    assert all(
        isinstance(value, dg.FloatMetadataValue | dg.IntMetadataValue)
        for value in metadata.values()
    )
    assert {key.split("/")[0] for key in metadata} == {ALL_TASKS_KEY} | {
        run.task for run in PLANNED if run.task
    }
    # Known answers of the synthetic mix: 20 successes of 1..20 s.
    assert metadata[f"{KNOWN_ANSWER_TASK}/total_executions"].value == 20
    assert metadata[f"{KNOWN_ANSWER_TASK}/success_rate"].value == 1.0
    assert metadata[f"{KNOWN_ANSWER_TASK}/avg_duration_seconds"].value == 10.5
    assert metadata[f"{KNOWN_ANSWER_TASK}/p95_duration_seconds"].value == 19.0
    # Nothing of it finished: no rate to plot, four runs in flight.
    assert f"{UNFINISHED_TASK}/success_rate" not in metadata
    assert metadata[f"{UNFINISHED_TASK}/running_count"].value == 4


def test_each_materialization_records_the_stats_of_its_moment(defs, empty_instance):
    first = materialize_task_health(defs, empty_instance)
    known_run = next(run for run in PLANNED if run.task == KNOWN_ANSWER_TASK)
    write_planned_run(empty_instance, known_run)
    second = materialize_task_health(defs, empty_instance)

    # The health job's own run is not a task run: only the written run counts.
    assert {key: value.value for key, value in first.items()} == {
        f"{ALL_TASKS_KEY}/{field}": 0
        for field in ("total_executions", "failed_count", "running_count")
    }
    assert second[f"{ALL_TASKS_KEY}/total_executions"].value == 1
    assert second[f"{KNOWN_ANSWER_TASK}/avg_duration_seconds"].value == known_run.duration
    history = empty_instance.fetch_materializations(TASK_HEALTH, limit=10).records
    assert len(history) == 2


def test_task_health_sits_in_the_operations_group(defs):
    assets_def = defs.resolve_assets_def(TASK_HEALTH)
    assert assets_def.group_names_by_key[TASK_HEALTH] == OPERATIONS_GROUP
    assert assets_def.partitions_def is None


def test_the_hourly_schedule_requests_a_task_health_run(defs, empty_instance):
    schedule = defs.resolve_schedule_def("task_health_schedule")
    tick = dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC)
    context = dg.build_schedule_context(instance=empty_instance, scheduled_execution_time=tick)

    result = schedule.evaluate_tick(context)

    assert len(result.run_requests) == 1 and not result.skip_message
    assert schedule.job_name == "task_health_job"
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
