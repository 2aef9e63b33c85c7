"""Executor choice (tasks.yaml `executor:` and ZQUANT_EXECUTOR), the Celery settings runs and
workers share, and the worker's command line. The two-worker run is test_scale_out.py."""

import dagster as dg
import pytest

from zquant_pipelines.cli import main
from zquant_pipelines.constants import (
    ENV_CELERY_BACKEND,
    ENV_CELERY_BROKER,
    ENV_EXECUTOR,
    ENV_TUSHARE_TOKEN,
)
from zquant_pipelines.executors import (
    CELERY_QUEUE,
    DEFAULT_CELERY_BROKER,
    ExecutorSettingError,
    celery_executor_config,
    celery_worker_app,
    default_executor_name,
    executor_definition,
    worker_argv,
)
from zquant_pipelines.resources.definitions import build_resource_definitions
from zquant_pipelines.tasks.builders import build_task_definitions
from zquant_pipelines.tasks.catalog import parse_catalog

SECRET_BROKER = "redis://:s3cret-broker-pw@broker.example:6379/3"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "multiprocess"),
        ({ENV_EXECUTOR: "celery"}, "celery"),
        ({ENV_EXECUTOR: ""}, "multiprocess"),
    ],
)
def test_the_default_executor_comes_from_the_environment(environ, expected):
    assert default_executor_name(environ) == expected


def test_an_unknown_executor_setting_names_the_variable_and_value():
    with pytest.raises(ExecutorSettingError) as caught:
        default_executor_name({ENV_EXECUTOR: "dask"})
    assert str(caught.value) == (
        "ZQUANT_EXECUTOR='dask' is not an executor: use one of in_process, multiprocess, celery"
    )


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"broker": DEFAULT_CELERY_BROKER, "backend": DEFAULT_CELERY_BROKER}),
        (
            {ENV_CELERY_BROKER: SECRET_BROKER},
            {"broker": {"env": ENV_CELERY_BROKER}, "backend": {"env": ENV_CELERY_BROKER}},
        ),
        (
            {ENV_CELERY_BROKER: "amqp://guest:guest@127.0.0.1:5672//"},
            {"broker": {"env": ENV_CELERY_BROKER}, "backend": "rpc://"},
        ),
        (
            {ENV_CELERY_BROKER: SECRET_BROKER, ENV_CELERY_BACKEND: "redis://127.0.0.1:6379/4"},
            {"broker": {"env": ENV_CELERY_BROKER}, "backend": {"env": ENV_CELERY_BACKEND}},
        ),
    ],
)
def test_celery_settings_are_named_by_variable_where_set(environ, expected):
    assert celery_executor_config(environ) == expected


def catalog_jobs(monkeypatch, environ: dict) -> dg.Definitions:
    for name in (ENV_EXECUTOR, ENV_CELERY_BROKER, ENV_CELERY_BACKEND, ENV_TUSHARE_TOKEN):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    members = [{"name": "a"}, {"name": "b"}]
    tasks = [
        {"name": n, "task_type": "common_task", "config": {"task_action": "example_task"}}
        for n in ("a", "b")
    ]
    tasks += [
        {
            "name": "pinned",
            "task_type": "common_task",
            "executor": "in_process",
            "config": {"task_action": "example_task"},
        },
        {
            "name": "in_order",
            "task_type": "workflow",
            "config": {"workflow_type": "serial", "tasks": members},
        },
        {
            "name": "fan_out",
            "task_type": "workflow",
            "config": {"workflow_type": "parallel", "tasks": members},
        },
    ]
    return dg.Definitions.merge(
        build_resource_definitions(), build_task_definitions(parse_catalog({"tasks": tasks}))
    )


def executor_of(defs: dg.Definitions, task: str) -> dg.ExecutorDefinition:
    return defs.resolve_job_def(f"{task}_job").executor_def


def test_zquant_executor_celery_moves_tasks_naming_none_onto_celery(monkeypatch):
    defs = catalog_jobs(monkeypatch, {ENV_EXECUTOR: "celery", ENV_CELERY_BROKER: SECRET_BROKER})
    assert executor_of(defs, "a").name == "celery"
    assert executor_of(defs, "fan_out").name == "celery"
    # A task's own choice wins; a serial workflow keeps the executor that orders it.
    assert executor_of(defs, "pinned") is dg.in_process_executor
    in_order = executor_of(defs, "in_order")
    assert in_order.name == "multiprocess"
    assert in_order.apply_config_mapping({}).value["config"]["max_concurrent"] == 1


def test_without_the_setting_tasks_run_multiprocess_from_a_fork_server(monkeypatch):
    defs = catalog_jobs(monkeypatch, {})
    assert {executor_of(defs, t).name for t in ("a", "fan_out", "in_order")} == {"multiprocess"}
    config = executor_of(defs, "a").apply_config_mapping({}).value["config"]
    assert config["start_method"] == {"forkserver": {}}


def test_celery_executor_config_resolves_in_the_run_environment(monkeypatch):
    monkeypatch.setenv(ENV_CELERY_BROKER, SECRET_BROKER)
    executor = executor_definition("celery")
    resolved = executor.apply_config_mapping({}).value["config"]
    assert (resolved["broker"], resolved["backend"]) == (SECRET_BROKER, SECRET_BROKER)


def test_the_worker_serves_dagster_celerys_queue_on_our_broker():
    app = celery_worker_app({ENV_CELERY_BROKER: "redis://127.0.0.1:6379/9"})
    assert app.conf.broker_url == "redis://127.0.0.1:6379/9"
    assert app.conf.result_backend == "redis://127.0.0.1:6379/9"
    assert "execute_plan" in app.tasks
    assert [queue.name for queue in app.conf.task_queues] == [CELERY_QUEUE]
    assert worker_argv("w1", 2) == [
        "worker",
        "--hostname=w1@%h",
        "--queues=dagster",
        "--concurrency=2",
        "--prefetch-multiplier=1",
        "--loglevel=INFO",
    ]


def test_zquant_worker_refuses_a_concurrency_below_one(capsys):
    assert main(["worker", "--concurrency", "0"]) == 2
    assert "zquant worker: concurrency must be >= 1, got 0" in capsys.readouterr().err
