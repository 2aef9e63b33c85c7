"""Per-task execution stats, aggregated in SQL over the run store's task run summary.

A task execution is a Dagster run tagged ``zquant/task=<name>`` (runs without the tag are
not tasks and are left out); a retried run is an execution of its own. The figures come
from ``history.summary``'s table, a narrow copy of each run's task, status, creation time
and duration that triggers keep equal to Dagster's ``runs`` and ``run_tags``, so no run is
loaded into Python and no run row is read, and the per-task rows and the overall row read
one snapshot. PostgreSQL gets one GROUP BY GROUPING SETS statement with ``percentile_disc``,
which sorts the task runs' narrow rows. SQLite, which has neither, gets each task's counts,
mean and latest in one pass over the summary's index by (task, duration), and each p95 as
the nearest rank reached by walking that index in duration order (``LIMIT 1 OFFSET rank -
1``) instead of sorting (the index by duration does it for every task's runs together),
the overall figures added up, all in one read transaction.

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
from collections.abc import Mapping
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
# Sort memory of the stats statement on PostgreSQL (see _grouping_sets_rows): a million
# runs' durations.
PG_STATS_WORK_MEM = "64MB"


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
        if conn.dialect.name == "postgresql":
            rows = _grouping_sets_rows(conn, conditions)
        else:
            rows = _nearest_rank_rows(conn, conditions)

    # The overall row is the one without a task (tag values are never NULL).
    overall = next(_task_stats(row) for row in rows if row["task"] is None)
    tasks = sorted(
        (_task_stats(row) for row in rows if row["task"] is not None),
        key=lambda stats: stats.task,
    )
    if task is not None and not tasks:
        # A task that never ran gets its row of zeros rather than no row.
        tasks = [dataclasses.replace(overall, task=task)]
    return StatsReport(since=since, tasks=tasks, overall=overall)


def _grouping_sets_rows(conn: sa.Connection, conditions: list[sa.ColumnElement]) -> list[Mapping]:
    """PostgreSQL: one statement, per task and overall, p95 by ``percentile_disc``.

    ``percentile_disc(0.95)`` returns the value at row ``ceil(0.95 * n)`` of the ordered
    durations (NULLs skipped): the nearest rank. The double nearest 0.95 lies just below
    it, so the product with n never passes the exact value's ceiling for any n. The sort
    this takes is cheap on the summary's narrow rows, where walking the index (as on SQLite)
    would visit the table for every entry until a vacuum has marked its pages all-visible.
    """
    runs = TaskRunsTable.c
    p95 = sa.func.percentile_disc(P95_PERCENT / 100).within_group(_finished_duration(runs))
    select = (
        sa.select(runs.task, *_figures(), p95.label("p95"))
        .where(*conditions)
        .group_by(sa.func.grouping_sets(sa.tuple_(runs.task), sa.tuple_()))
    )
    # Dagster's connections autocommit; SET LOCAL needs a transaction of our own (and a
    # pooled connection, as the webserver's is, must not keep the setting).
    conn = conn.execution_options(isolation_level="READ COMMITTED")
    with conn.begin():
        # At PostgreSQL's default (4 MB) the sort spills to disk from about 100,000 runs.
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_STATS_WORK_MEM}'")
        return list(conn.execute(select).mappings())


def _nearest_rank_rows(conn: sa.Connection, conditions: list[sa.ColumnElement]) -> list[Mapping]:
    """SQLite (no ordered-set aggregates, no grouping sets): per-task figures in one pass over
    the index by task, each p95 by walking an index in duration order, the overall figures
    added up; in one read transaction, so every statement reads the same snapshot."""
    runs = TaskRunsTable.c
    # Dagster's SQLite connections leave BEGIN to the driver, which begins before writes only.
    conn.exec_driver_sql("BEGIN")
    try:
        groups = conn.execute(
            sa.select(runs.task, *_figures()).where(*conditions).group_by(runs.task)
        )
        rows = [
            {**row, "p95": _nearest_rank_p95(conn, [*conditions, runs.task == row["task"]], row)}
            for row in groups.mappings()
        ]
        overall = _sum_of(rows)
        # One task's runs are all the runs: its p95 is the overall one.
        overall["p95"] = (
            rows[0]["p95"] if len(rows) == 1 else _nearest_rank_p95(conn, conditions, overall)
        )
    finally:
        conn.exec_driver_sql("COMMIT")
    return [*rows, {"task": None, **overall}]


def _finished_statuses() -> list[str]:
    return [status.value for status in statuses_in(*FINISHED_GROUPS)]


def _finished_duration(runs: sa.ColumnCollection) -> sa.ColumnElement:
    """A run's duration if the run finished, else NULL."""
    return sa.case((runs.status.in_(_finished_statuses()), runs.duration))


def _figures() -> list[sa.ColumnElement]:
    """Counts per status group, the durations' count and sum, the latest creation."""
    runs = TaskRunsTable.c

    def count_of(group_name: str) -> sa.ColumnElement:
        statuses = [status.value for status in statuses_in(group_name)]
        return sa.func.count().filter(runs.status.in_(statuses))

    duration = _finished_duration(runs)
    return [
        sa.func.count().label("total"),
        count_of(SUCCESS).label(SUCCESS),
        count_of(FAILED).label(FAILED),
        count_of(RUNNING).label(RUNNING),
        count_of(CANCELED).label(CANCELED),
        sa.func.count(duration).label("durations"),
        sa.func.sum(duration).label("duration_sum"),
        sa.func.max(runs.create_timestamp).label("latest"),
    ]


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
    """The ``ceil(0.95 n)``-th smallest of the n durations of the runs ``conditions`` keep:
    ``LIMIT 1 OFFSET rank - 1`` along an index in duration order, no sort."""
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


def _task_stats(row: Mapping) -> TaskStats:
    success, failed, canceled = (int(row[key]) for key in (SUCCESS, FAILED, CANCELED))
    durations = int(row["durations"])
    return TaskStats(
        task=row["task"],
        total_executions=int(row["total"]),
        success_count=success,
        failed_count=failed,
        running_count=int(row[RUNNING]),
        canceled_count=canceled,
        success_rate=success_rate(success, failed, canceled),
        avg_duration_seconds=float(row["duration_sum"]) / durations if durations else None,
        p95_duration_seconds=None if row["p95"] is None else float(row["p95"]),
        latest_execution_time=utc_from_naive(row["latest"]),
    )
