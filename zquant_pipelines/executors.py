"""Which Dagster executor runs a job's steps, and the Celery settings runs and workers share.

Three executors: ``in_process`` (every step in the run's own process), ``multiprocess``
(a process per step on the run's machine, which ends when the run worker is gone:
zquant_pipelines/step_watchdog.py; the default) and ``celery`` (each step is a
Celery task taken by whichever ``zquant worker`` is free, on any machine). A task picks one
with ``executor:`` in tasks.yaml; the asset jobs and tasks that name none take
``ZQUANT_EXECUTOR``.

The broker and result backend come from ``ZQUANT_CELERY_BROKER`` / ``ZQUANT_CELERY_BACKEND``.
Where a variable is set, the executor config names the variable instead of holding its
value, so a broker password never lands in a job definition, the UI or the event log; the
run process and the workers read it from their own environment.
"""

import os
import warnings
from collections.abc import Mapping

import celery
import dagster as dg
from celery.exceptions import DuplicateTaskNameWarning
from dagster._core.definitions.executor_definition import (
    MULTI_PROC_CONFIG,
    _core_multiprocess_executor_creation,
    multiple_process_executor_requirements,
)
from dagster_celery import celery_executor
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from zquant_pipelines.constants import (
    DEFAULT_EXECUTOR,
    ENV_CELERY_BACKEND,
    ENV_CELERY_BROKER,
    ENV_EXECUTOR,
    EXECUTOR_NAMES,
)

# Loopback Redis: the broker of a one-machine try-out; a deployment sets ZQUANT_CELERY_BROKER.
DEFAULT_CELERY_BROKER = "redis://127.0.0.1:6379/0"
# dagster-celery routes every step to this queue (dagster_celery.make_app).
CELERY_QUEUE = "dagster"
STEP_WATCHDOG_MODULE = "zquant_pipelines.step_watchdog"

# dagster-celery registers its step task on the run's app again for every step it submits;
# Celery's warning about that would be noise in every run's output.
warnings.filterwarnings("ignore", category=DuplicateTaskNameWarning)


class ExecutorSettingError(ValueError):
    """ZQUANT_EXECUTOR names no executor we offer."""


def default_executor_name(environ: Mapping[str, str] = os.environ) -> str:
    name = environ.get(ENV_EXECUTOR) or DEFAULT_EXECUTOR
    if name not in EXECUTOR_NAMES:
        raise ExecutorSettingError(
            f"{ENV_EXECUTOR}={name!r} is not an executor: use one of {', '.join(EXECUTOR_NAMES)}"
        )
    return name


def celery_broker_url(environ: Mapping[str, str] = os.environ) -> str:
    """The broker URL itself, for processes that connect to it (workers, readiness checks)."""
    return environ.get(ENV_CELERY_BROKER) or DEFAULT_CELERY_BROKER


def celery_backend_url(environ: Mapping[str, str] = os.environ) -> str:
    """The result backend: ZQUANT_CELERY_BACKEND, else the broker itself when it is Redis (one
    service to run), else Celery's ``rpc://`` (results as AMQP messages)."""
    if environ.get(ENV_CELERY_BACKEND):
        return environ[ENV_CELERY_BACKEND]
    broker = celery_broker_url(environ)
    return broker if broker.startswith(("redis://", "rediss://")) else "rpc://"


def celery_executor_config(environ: Mapping[str, str] = os.environ) -> dict:
    """Config of dagster-celery's executor: variables by name where set, defaults otherwise."""

    def by_name(variable: str, value: str) -> str | dict:
        return {"env": variable} if environ.get(variable) == value else value

    broker = celery_broker_url(environ)
    backend = celery_backend_url(environ)
    backend_variable = ENV_CELERY_BACKEND if environ.get(ENV_CELERY_BACKEND) else ENV_CELERY_BROKER
    return {
        "broker": by_name(ENV_CELERY_BROKER, broker),
        "backend": by_name(backend_variable, backend),
    }


@dg.executor(
    name="multiprocess",
    config_schema=MULTI_PROC_CONFIG,
    requirements=multiple_process_executor_requirements(),
)
def supervised_multiprocess_executor(init_context: dg.InitExecutorContext):
    """Dagster's multiprocess executor whose forkserver preloads the step watchdog before the
    job's code location (what Dagster preloads by default), so every step process ends when
    the run worker is gone."""
    config = dict(init_context.executor_config)
    if "forkserver" in (config.get("start_method") or {}):
        module = init_context.job.get_module() or "dagster"
        preload = [STEP_WATCHDOG_MODULE, module]
        config["start_method"] = {"forkserver": {"preload_modules": preload}}
    return _core_multiprocess_executor_creation(config)


def executor_definition(
    name: str | None = None, max_concurrent: int | None = None
) -> dg.ExecutorDefinition:
    """The executor called ``name`` (None: ZQUANT_EXECUTOR's, else multiprocess).

    ``max_concurrent`` bounds steps at once under multiprocess. Under Celery the workers'
    slots bound it (``zquant worker --concurrency``): dagster-celery has no such limit.
    """
    name = name or default_executor_name()
    if name == "in_process":
        return dg.in_process_executor
    if name == "celery":
        return celery_executor.configured(celery_executor_config())
    # forkserver: the code location is imported once, in the fork server, and every step
    # process forks from it; with Dagster's default (spawn) each step imports it again,
    # seconds of CPU per step.
    config: dict = {"start_method": {"forkserver": {}}}
    if max_concurrent:
        config["max_concurrent"] = max_concurrent
    return supervised_multiprocess_executor.configured(config)


def celery_worker_app(environ: Mapping[str, str] = os.environ) -> celery.Celery:
    """The Celery app a worker serves: dagster-celery's, on our broker and backend, with its
    step task registered (what ``dagster_celery.app`` does, without writing the broker URL
    into a config file as ``dagster-celery worker start`` would)."""
    settings = CeleryExecutor.for_cli(
        broker=celery_broker_url(environ), backend=celery_backend_url(environ)
    )
    app = make_app(settings.app_args())
    create_task(app)
    return app


def worker_argv(name: str, concurrency: int, loglevel: str = "INFO") -> list[str]:
    """``celery worker`` arguments: one step per slot at a time (prefetch 1), so a long step
    never holds a queued one that another worker could start."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
    return [
        "worker",
        f"--hostname={name}@%h",
        f"--queues={CELERY_QUEUE}",
        f"--concurrency={concurrency}",
        "--prefetch-multiplier=1",
        f"--loglevel={loglevel}",
    ]
