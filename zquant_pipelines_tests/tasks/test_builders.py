"""Catalog -> Dagster: the shipped tasks.yaml builds, and each task's job carries its tags,
pool, retry policy, executor limits and (for a workflow) its dependency graph."""

import dagster as dg
import pytest

from zquant_pipelines.constants import DEFAULT_TASKS_FILE, TAG_TASK, TAG_TASK_TYPE
from zquant_pipelines.tasks.builders import (
    PRIORITY_TAG,
    build_task_definitions,
    job_name,
    pool_name,
    retry_policy,
    schedule_name,
    sensor_name,
)
from zquant_pipelines.tasks.catalog import load_catalog, parse_catalog
from zquant_pipelines_tests.tasks.support import (
    REPO_ROOT,
    example,
    member,
    task_definitions,
    workflow,
)


@pytest.fixture(scope="module")
def shipped():
    catalog = load_catalog(REPO_ROOT / DEFAULT_TASKS_FILE)
    return catalog, build_task_definitions(catalog)


def unbound_job(defs: dg.Definitions, task_name: str) -> dg.JobDefinition:
    """A job as built, before resources are bound (enough to read its structure)."""
    return next(job for job in defs.jobs if job.name == job_name(task_name))


def test_shipped_catalog_builds_a_job_per_task_and_a_trigger_per_timed_task(shipped):
    catalog, defs = shipped
    tasks = catalog.tasks.values()

    assert {job.name for job in defs.jobs} == {job_name(task.name) for task in tasks}
    assert {s.name for s in defs.schedules} == {
        schedule_name(task.name) for task in tasks if task.trigger == "cron"
    }
    assert {s.name for s in defs.sensors} == {
        sensor_name(task.name) for task in tasks if task.trigger == "interval"
    }
    assert {task.trigger for task in tasks} == {"cron", "interval", None}


def test_shipped_triggers_keep_cron_timezone_interval_and_enabled(shipped):
    catalog, defs = shipped
    for schedule in defs.schedules:
        task = catalog.tasks[schedule.name.removesuffix("_schedule")]
        assert (schedule.cron_schedule, schedule.execution_timezone) == (
            task.cron_expression,
            task.timezone,
        )
        assert schedule.job_name == job_name(task.name)
        expected = "RUNNING" if task.enabled else "STOPPED"
        assert schedule.default_status.value == expected
    for sensor in defs.sensors:
        task = catalog.tasks[sensor.name.removesuffix("_sensor")]
        assert sensor.minimum_interval_seconds == task.interval_seconds
        assert sensor.job_name == job_name(task.name)
        assert sensor.default_status.value == ("RUNNING" if task.enabled else "STOPPED")
    assert catalog.tasks["after_close"].enabled is False
    assert dg.DefaultScheduleStatus.STOPPED in {s.default_status for s in defs.schedules}


def test_shipped_jobs_resolve_with_the_resources_and_tag_their_runs(shipped, resources):
    catalog, defs = shipped
    bound = dg.Definitions.merge(defs, dg.Definitions(resources=resources))
    for task in catalog.tasks.values():
        job = bound.resolve_job_def(job_name(task.name))

        assert job.run_tags[TAG_TASK] == task.name
        assert job.run_tags[TAG_TASK_TYPE] == task.task_type
        assert {node.definition.pool for node in job.graph.nodes} == {pool_name(task.name)}


def test_shipped_workflow_graph_is_its_members_wired_by_dependencies(shipped):
    catalog, defs = shipped
    spec = catalog.workflow("after_close")
    job = unbound_job(defs, "after_close")

    edges = {
        (dependency.node, invocation.alias)
        for invocation, inputs in job.dependencies.items()
        for dependency in inputs.values()
    }
    assert {node.name for node in job.graph.nodes} == set(spec.member_names)
    assert edges == set(spec.edges)
    assert ("sync_all_daily_data", "calculate_factor") in edges


def test_task_params_are_the_default_op_config(shipped):
    catalog, defs = shipped
    job = unbound_job(defs, "repair_daily_bars")
    config = job.run_config_schema.config_type.fields["ops"].default_value

    params = dict(catalog.tasks["repair_daily_bars"].config)
    params.pop("task_action")
    assert config == {"repair_daily_bars": {"config": params}}


def test_retry_policy_has_max_retries_and_retry_interval_as_delay():
    catalog = parse_catalog(
        {
            "tasks": [
                example("fixed", max_retries=3, retry_interval=45),
                example("backoff", max_retries=5, retry_interval=300, retry_backoff="exponential"),
                example("once", max_retries=0),
            ]
        }
    )
    fixed, backoff, once = catalog.tasks.values()

    assert retry_policy(fixed) == dg.RetryPolicy(max_retries=3, delay=45)
    assert retry_policy(backoff) == dg.RetryPolicy(
        max_retries=5, delay=300, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )
    assert retry_policy(once) is None


def test_retry_policy_defaults_are_zquants_three_retries_a_minute_apart(resources):
    task = {"name": "plain", "task_type": "manual_task", "config": {"task_action": "example_task"}}
    defs = task_definitions([task], resources)
    op = defs.resolve_job_def("plain_job").graph.node_dict["plain"].definition

    assert op.retry_policy == dg.RetryPolicy(max_retries=3, delay=60)


def executor_config(job: dg.JobDefinition) -> dict:
    return job.executor_def.apply_config_mapping({}).value["config"]


def test_workflow_executor_runs_serial_one_at_a_time_and_parallel_up_to_max_parallel(resources):
    defs = task_definitions(
        [
            example("a"),
            example("b"),
            workflow("one_by_one", "serial", "stop", [member("a"), member("b")]),
            workflow(
                "fan_out",
                "parallel",
                "continue",
                [member("a"), member("b")],
                settings={"max_parallel": 3},
            ),
            workflow("quick", "serial", "stop", [member("a")], executor="in_process"),
        ],
        resources,
    )

    assert executor_config(defs.resolve_job_def("one_by_one_job"))["max_concurrent"] == 1
    assert executor_config(defs.resolve_job_def("fan_out_job"))["max_concurrent"] == 3
    assert defs.resolve_job_def("quick_job").executor_def is dg.in_process_executor


def test_workflow_members_sit_in_the_workflows_pool_with_serial_priorities(resources):
    defs = task_definitions(
        [
            example("a"),
            example("b"),
            example("c"),
            workflow("chain", "serial", "stop", [member("c"), member("a", "b"), member("b")]),
        ],
        resources,
    )
    nodes = defs.resolve_job_def("chain_job").graph.node_dict

    assert {node.definition.pool for node in nodes.values()} == {pool_name("chain")}
    priorities = {name: int(node.definition.tags[PRIORITY_TAG]) for name, node in nodes.items()}
    # Topological order, ties in list order: c, b, a; the first runs first (highest priority).
    assert sorted(priorities, key=priorities.get, reverse=True) == ["c", "b", "a"]
