"""Per-task execution stats, aggregated in SQL over the run store's task run summary.

A task execution is a Dagster run tagged ``zquant/task=<name>`` (runs without the tag are
not tasks and are left out); a retried run is an execution of its own. The figures come
from ``history.summary``'s table, a narrow copy of each run's task, status, creation time
and duration that triggers keep equal to Dagster's ``runs`` and ``run_tags``, so no run is
loaded into Python and no run row is read. Its index by (task, duration) gives each task's
counts, mean and latest in one pass over the task's range, and its p95 as the nearest rank
reached by walking that range in duration order (``LIMIT 1 OFFSET rank - 1``) instead of
sorting; the index by duration does the same for every task's runs together. The overall
counts, mean and latest add up the per-task rows. All statements read one snapshot.

Reading the run store itself cannot get far below the plain count (fetch those columns of
every task run, count in Python: zquant's way): on SQLite the times sit past the run body in
each row, and any query over ``runs`` reads every run's overflow pages, most of the plain
count's cost (see ``history.summary`` and bench/bench_history.py).

Definitions (the test's naive count over ``get_run_records`` uses the same ones):

- success / failed / running / canceled counts follow ``store.STATUS_GROUPS``;
- ``success_rate``, the durations (of finished runs only), their mean and
  ``p95_duration_seconds`` are the measures of ``history.measures``; the SQL here computes
  the same ones;
- ``latest_execution_time`` is the creation time of the task's newest run (when it was
  requested, so a queued run counts);
- ``since`` keeps runs created at or after that moment.
"""

import dataclasses
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

import dagster as dg
import sqlalchemy as sa

from zquant_pipelines.history.measures import P95_PERCENT, success_rate
from zquant_pipelines.history.store import (
    CANCELED,
    FAILED,
    FINISHED_GROUPS,
    RUNNING,
    SUCCESS,
    JsonRecord,
    naive_utc,
    sql_run_storage,
    statuses_in,
    utc_from_naive,
)
from zquant_pipelines.history.summary import TaskRunsTable, ensure_task_run_summary

# The per-task figures that add up to the overall ones.
COUNTED = ("total", SUCCESS, FAILED, RUNNING, CANCELED, "durations")


@dataclasses.dataclass(frozen=True)
class TaskStats(JsonRecord):
    """Stats of one task, or of every task together when ``task`` is None."""

    task: str | None
    total_executions: int
    success_count: int
    failed_count: int
    running_count: int
    canceled_count: int
    success_rate: float | None
    avg_duration_seconds: float | None
    p95_duration_seconds: float | None
    latest_execution_time: datetime | None


@dataclasses.dataclass(frozen=True)
class StatsReport(JsonRecord):
    """One row per task (sorted by name) and the overall row over the same runs."""

    since: datetime | None
    tasks: list[TaskStats]
    overall: TaskStats


def task_stats(
    instance: dg.DagsterInstance, task: str | None = None, since: datetime | None = None
) -> StatsReport:
    """Stats of every task (or of ``task`` only) over runs created at or after ``since``."""
    if task is not None and (not isinstance(task, str) or not task.strip()):
        raise ValueError(f"task: expected a task name, got {task!r}")
    runs = TaskRunsTable.c
    conditions = [runs.task.is_not(None)]
    if task is not None:
        conditions.append(runs.task == task)
    if since is not None:
        conditions.append(runs.create_timestamp >= naive_utc(since, "since"))

    with sql_run_storage(instance).connect() as conn:
        ensure_task_run_summary(conn)
        with _one_snapshot(conn) as snapshot:
            rows = snapshot.execute(_per_task_select(conditions)).mappings().all()
            tasks = [
                _task_stats(
                    row["task"],
                    row,
                    _nearest_rank_p95(snapshot, [*conditions, runs.task == row["task"]], row),
                )
                for row in rows
            ]
            overall_figures = _sum_of(rows)
            if len(tasks) == 1:
                # One task's runs are all the runs: its p95 is the overall one.
                overall_p95 = tasks[0].p95_duration_seconds
            else:
                overall_p95 = _nearest_rank_p95(snapshot, conditions, overall_figures)
    overall = _task_stats(None, overall_figures, overall_p95)
    tasks.sort(key=lambda stats: stats.task)
    if task is not None and not tasks:
        # A task that never ran gets its row of zeros rather than no row.
        tasks = [dataclasses.replace(overall, task=task)]
    return StatsReport(since=since, tasks=tasks, overall=overall)


@contextmanager
def _one_snapshot(conn: sa.Connection) -> Iterator[sa.Connection]:
    """A read transaction: every statement in it sees the run store at one moment."""
    if conn.dialect.name == "postgresql":
        # Dagster's connections autocommit each statement.
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn
        return
    # Dagster's SQLite connections leave BEGIN to the driver, which begins before writes only.
    conn.exec_driver_sql("BEGIN")
    try:
        yield conn
    finally:
        conn.exec_driver_sql("COMMIT")


def _finished_statuses() -> list[str]:
    return [status.value for status in statuses_in(*FINISHED_GROUPS)]


def _finished_duration(runs: sa.ColumnCollection) -> sa.ColumnElement:
    """A run's duration if the run finished, else NULL."""
    return sa.case((runs.status.in_(_finished_statuses()), runs.duration))


def _per_task_select(conditions: list[sa.ColumnElement]) -> sa.Select:
    """Per task: counts per status group, the durations' count and sum, the latest creation."""
    runs = TaskRunsTable.c

    def count_of(group_name: str) -> sa.ColumnElement:
        statuses = [status.value for status in statuses_in(group_name)]
        return sa.func.count().filter(runs.status.in_(statuses))

    duration = _finished_duration(runs)
    return (
        sa.select(
            runs.task,
            sa.func.count().label("total"),
            count_of(SUCCESS).label("success"),
            count_of(FAILED).label("failed"),
            count_of(RUNNING).label("running"),
            count_of(CANCELED).label("canceled"),
            sa.func.count(duration).label("durations"),
            sa.func.sum(duration).label("duration_sum"),
            sa.func.max(runs.create_timestamp).label("latest"),
        )
        .where(*conditions)
        .group_by(runs.task)
    )


def _sum_of(rows: list[Mapping]) -> dict:
    """The per-task figures of ``rows`` added up (sums of floats exactly, with fsum)."""
    latest = [row["latest"] for row in rows if row["latest"] is not None]
    return {
        **{key: sum(row[key] for row in rows) for key in COUNTED},
        "duration_sum": math.fsum(row["duration_sum"] or 0.0 for row in rows),
        "latest": max(latest, default=None),
    }


def _nearest_rank_p95(
    conn: sa.Connection, conditions: list[sa.ColumnElement], figures: Mapping
) -> float | None:
    """The ``ceil(0.95 n)``-th smallest of the n durations of the runs ``conditions`` keep."""
    count = int(figures["durations"])
    if not count:
        return None
    rank = -(-P95_PERCENT * count // 100)
    runs = TaskRunsTable.c
    return conn.execute(
        sa.select(runs.duration)
        .where(*conditions, runs.status.in_(_finished_statuses()), runs.duration.is_not(None))
        .order_by(runs.duration)
        .limit(1)
        .offset(rank - 1)
    ).scalar_one()


def _task_stats(task: str | None, figures: Mapping, p95: float | None) -> TaskStats:
    success, failed, canceled = (int(figures[key]) for key in (SUCCESS, FAILED, CANCELED))
    durations = int(figures["durations"])
    return TaskStats(
        task=task,
        total_executions=int(figures["total"]),
        success_count=success,
        failed_count=failed,
        running_count=int(figures[RUNNING]),
        canceled_count=canceled,
        success_rate=success_rate(success, failed, canceled),
        avg_duration_seconds=float(figures["duration_sum"]) / durations if durations else None,
        p95_duration_seconds=None if p95 is None else float(p95),
        latest_execution_time=utc_from_naive(figures["latest"]),
    )
