"""Per-task execution stats, aggregated in SQL over the run store's task run summary.

A task execution is a Dagster run tagged ``zquant/task=<name>`` (runs without the tag are
not tasks and are left out); a retried run is an execution of its own. The figures come
from ``history.summary``'s table, a narrow copy of each run's task, status, creation time
and duration that triggers keep equal to Dagster's ``runs`` and ``run_tags``, so no run is
loaded into Python and no run row is read, and the per-task rows and the overall row read
one snapshot. The counts, mean and latest of each task come from one pass over the task's
range of the summary's index by (task, duration); the overall ones add them up. A p95 is
the nearest rank, reached by walking an index down from the largest duration (``LIMIT 1
OFFSET n - rank``): it visits the top 5% of the durations and sorts nothing, so the cost
grows linearly with the runs. PostgreSQL does it all in one statement, each row's walk a
LATERAL subquery offset by that row's own count; SQLite, which has no LATERAL and takes no
column in an OFFSET, runs one walk per row in one read transaction.

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
from collections.abc import Callable, Mapping
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
    created_from = None if since is None else naive_utc(since, "since")

    def conditions(runs: sa.ColumnCollection) -> list[sa.ColumnElement]:
        """The runs the stats count, as conditions on the summary's columns."""
        kept = [runs.task.is_not(None)]
        if task is not None:
            kept.append(runs.task == task)
        if created_from is not None:
            kept.append(runs.create_timestamp >= created_from)
        return kept

    with sql_run_storage(instance).connect() as conn:
        ensure_task_run_summary(conn)
        if conn.dialect.name == "postgresql":
            rows = list(conn.execute(_lateral_walks_select(conditions)).mappings())
        else:
            rows = _walked_rows(conn, conditions)

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


Conditions = Callable[[sa.ColumnCollection], list[sa.ColumnElement]]


def _lateral_walks_select(conditions: Conditions) -> sa.CompoundSelect:
    """PostgreSQL: one statement. The per-task figures, their sums as the overall row, and
    for each row a LATERAL walk down the index to its p95, offset by the row's own count."""
    runs = TaskRunsTable.alias("task_runs")
    counts = (
        sa.select(runs.c.task, *_figures(runs.c))
        .where(*conditions(runs.c))
        .group_by(runs.c.task)
        .cte("counts")
    )
    # sum() of counts is NUMERIC on PostgreSQL; the walk's offset needs an integer.
    overall = sa.select(
        sa.cast(sa.null(), sa.Text).label("task"),
        *(
            sa.cast(sa.func.coalesce(sa.func.sum(counts.c[key]), 0), sa.BigInteger).label(key)
            for key in COUNTED
        ),
        sa.func.sum(counts.c.duration_sum).label("duration_sum"),
        sa.func.max(counts.c.latest).label("latest"),
    ).cte("overall")

    def with_p95(figures: sa.CTE, of_its_task: bool) -> sa.Select:
        walked = TaskRunsTable.alias("walked")
        kept = conditions(walked.c)
        if of_its_task:
            kept.append(walked.c.task == figures.c.task)
        p95 = _walk_to_p95(walked.c, kept, figures.c.durations).lateral("p95")
        return sa.select(figures, p95.c.duration.label("p95")).select_from(
            figures.outerjoin(p95, sa.true())
        )

    return sa.union_all(with_p95(counts, True), with_p95(overall, False))


def _walked_rows(conn: sa.Connection, conditions: Conditions) -> list[Mapping]:
    """SQLite (no LATERAL, and LIMIT/OFFSET cannot refer to a column): the per-task figures
    in one pass over the index by task, each p95 by its own walk down an index, the overall
    figures added up; in one read transaction, so every statement reads the same snapshot."""
    runs = TaskRunsTable.c

    def p95(kept: list[sa.ColumnElement], durations: int) -> float | None:
        return conn.execute(_walk_to_p95(runs, kept, durations)).scalar()

    # Dagster's SQLite connections leave BEGIN to the driver, which begins before writes only.
    conn.exec_driver_sql("BEGIN")
    try:
        groups = conn.execute(
            sa.select(runs.task, *_figures(runs)).where(*conditions(runs)).group_by(runs.task)
        )
        rows = [
            {**row, "p95": p95([*conditions(runs), runs.task == row["task"]], row["durations"])}
            for row in groups.mappings()
        ]
        overall = _sum_of(rows)
        # One task's runs are all the runs: its p95 is the overall one.
        overall["p95"] = (
            rows[0]["p95"] if len(rows) == 1 else p95(conditions(runs), overall["durations"])
        )
    finally:
        conn.exec_driver_sql("COMMIT")
    return [*rows, {"task": None, **overall}]


def _walk_to_p95(runs: sa.ColumnCollection, kept: list[sa.ColumnElement], durations) -> sa.Select:
    """The p95 of the finished durations of the runs ``kept`` selects, ``durations`` of them
    (an int, or a column of the row a LATERAL walk belongs to).

    The nearest rank is the ``ceil(0.95 n)``-th smallest, i.e. the ``n - ceil(0.95 n) +
    1``-th largest: the walk goes down the index from the largest, ``LIMIT 1 OFFSET n -
    ceil(0.95 n)``, and visits the top 5% of the durations instead of sorting them all.
    With n = 0 nothing is selected, so the p95 is NULL."""
    rank = (P95_PERCENT * durations + 99) // 100
    return (
        sa.select(runs.duration)
        .where(*kept, runs.status.in_(_finished_statuses()), runs.duration.is_not(None))
        .order_by(runs.duration.desc())
        .offset(durations - rank)
        .limit(1)
    )


def _finished_statuses() -> list[str]:
    return [status.value for status in statuses_in(*FINISHED_GROUPS)]


def _figures(runs: sa.ColumnCollection) -> list[sa.ColumnElement]:
    """Counts per status group, the finished durations' count and sum, the latest creation."""

    def count_of(group_name: str) -> sa.ColumnElement:
        statuses = [status.value for status in statuses_in(group_name)]
        return sa.func.count().filter(runs.status.in_(statuses))

    duration = sa.case((runs.status.in_(_finished_statuses()), runs.duration))
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
