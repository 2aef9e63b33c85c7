"""Per-task health in the Dagster UI: the `task_health` asset, its job and hourly schedule.

Each materialization records every task's stats from ``history.stats.task_stats`` as numeric
metadata (``<task>/success_rate``, ``<task>/avg_duration_seconds``, ... and the same under
``all tasks/`` for every task together), so the asset's Plots tab charts them over time.
A figure that is undefined (no finished run yet) is left out of that materialization rather
than plotted as a made-up number.
"""

import dagster as dg

from zquant_pipelines.history.stats import TaskStats, task_stats

OPERATIONS_GROUP = "operations"
TASK_HEALTH_JOB_NAME = "task_health_job"
TASK_HEALTH_SCHEDULE_NAME = "task_health_schedule"
TASK_HEALTH_CRON = "0 * * * *"
# A space cannot be in a task name (task names are Dagster names), so this never collides.
ALL_TASKS_KEY = "all tasks"
PLOTTED_FIELDS = (
    "success_rate",
    "avg_duration_seconds",
    "p95_duration_seconds",
    "total_executions",
    "failed_count",
    "running_count",
)


def health_metadata(stats: TaskStats, prefix: str) -> dict[str, float | int]:
    """``<prefix>/<field>`` for each plotted field of ``stats`` that has a value."""
    values = {field: getattr(stats, field) for field in PLOTTED_FIELDS}
    return {f"{prefix}/{field}": value for field, value in values.items() if value is not None}


@dg.asset(
    group_name=OPERATIONS_GROUP,
    description="Each task's success rate, average and p95 duration, executions, failed and"
    " running runs, read from the Dagster run store. Open the Plots tab to see them over time.",
)
def task_health(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    report = task_stats(context.instance)
    metadata = health_metadata(report.overall, ALL_TASKS_KEY)
    for stats in report.tasks:
        metadata |= health_metadata(stats, stats.task)
    return dg.MaterializeResult(metadata=metadata)


task_health_job = dg.define_asset_job(
    name=TASK_HEALTH_JOB_NAME,
    selection=dg.AssetSelection.assets(task_health),
    description="Record every task's stats on the task_health asset.",
)

task_health_schedule = dg.ScheduleDefinition(
    name=TASK_HEALTH_SCHEDULE_NAME,
    job=task_health_job,
    cron_schedule=TASK_HEALTH_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: record every task's stats on task_health, for the UI's plots.",
)
