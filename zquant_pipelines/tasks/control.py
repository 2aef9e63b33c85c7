"""Pause and resume a task on a Dagster instance, and read whether it is paused.

Pause is distinct from disable: disable stops the task's schedule or sensor (manual runs
still start); pause sets the task's pool (``zquant_task_<name>``, which every op of the
task's job uses) to 0 slots, so the run queue holds every run of the task, scheduled or
manual, until resume removes the limit and the held runs start. dagster.yaml sets
``concurrency: pools: granularity: run`` so pools are checked when a run leaves the queue.
"""

import dagster as dg

from zquant_pipelines.constants import PAUSED_SLOTS
from zquant_pipelines.tasks.builders import pool_name


def pause_task(instance: dg.DagsterInstance, task_name: str) -> None:
    instance.event_log_storage.set_concurrency_slots(pool_name(task_name), PAUSED_SLOTS)


def resume_task(instance: dg.DagsterInstance, task_name: str) -> None:
    instance.event_log_storage.delete_concurrency_limit(pool_name(task_name))


def paused_tasks(instance: dg.DagsterInstance) -> set[str]:
    """Names of the tasks whose pool is held at 0 slots."""
    prefix = pool_name("")
    return {
        limit.name.removeprefix(prefix)
        for limit in instance.event_log_storage.get_pool_limits()
        if limit.name.startswith(prefix) and limit.limit == PAUSED_SLOTS
    }


def is_paused(instance: dg.DagsterInstance, task_name: str) -> bool:
    return task_name in paused_tasks(instance)
