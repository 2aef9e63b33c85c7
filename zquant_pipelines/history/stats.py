"""Per-task execution stats, aggregated in SQL over the Dagster run store.

A task execution is a Dagster run tagged ``zquant/task=<name>`` (runs without the tag are
not tasks and are left out); a retried run is an execution of its own. All figures come
from one SQL statement over ``runs`` joined to ``run_tags``, so no run is loaded into
Python and the per-task rows and the overall row read one snapshot. PostgreSQL gets one
GROUP BY GROUPING SETS pass with ``percentile_disc``; SQLite, which has neither, a GROUP BY
per level plus a window ranking for the percentile, over the join materialized once. The
join bounds the cost: every task run is matched to its tag row, by hash on PostgreSQL and
by index probes on SQLite, which makes SQLite the slower of the two at scale (see
bench/bench_history.py).

Grouping by ``runs.pipeline_name`` instead (a task's runs come from its ``<task>_job``)
would skip the join, but only a join can show that every tagged run follows that rule (a
run's tags can name another task than its job's, and some runs of a job can lack the tag),
and on SQLite that check costs as much as the join it would save; figures must equal the
tag-based count, so the join stays.

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
from datetime import datetime

import dagster as dg
import sqlalchemy as sa

# Private module, but it is Dagster's own definition of the run store tables we read.
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable

from zquant_pipelines.constants import TAG_TASK
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

SQLITE_MMAP_BYTES = 1 << 30
# Planner settings for the stats statement on PostgreSQL (see task_stats): a sort budget
# that holds 100,000 runs, and parallel workers for the scan, the join and the sort.
PG_STATS_SETTINGS = {"work_mem": "64MB", "parallel_setup_cost": "0", "parallel_tuple_cost": "0"}


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
    conditions = []
    if task is not None:
        conditions.append(RunTagsTable.c.value == task)
    if since is not None:
        conditions.append(RunsTable.c.create_timestamp >= naive_utc(since, "since"))

    with sql_run_storage(instance).connect() as conn:
        if conn.dialect.name == "postgresql":
            # The grouping sorts every task run, and at PostgreSQL's default work_mem (4 MB)
            # that sort spills to disk at 100,000 runs. With its default parallel costs the
            # planner runs the join and that sort in one process, because the percentile
            # cannot be split among workers; with zero parallel costs workers scan, join and
            # sort below the one aggregation, which only then runs alone. SET LOCAL scopes
            # the settings to a transaction of our own (Dagster's connections autocommit,
            # and the webserver's is pooled, so a plain SET would outlive this query).
            conn = conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                for name, value in PG_STATS_SETTINGS.items():
                    conn.exec_driver_sql(f"SET LOCAL {name} = '{value}'")
                rows = conn.execute(_grouping_sets_select(conditions)).mappings().all()
        else:
            # Reads through a memory map skip the copy of each page into SQLite's page cache,
            # which a statement reading every task run would otherwise pay page by page. The
            # setting lives and dies with this connection (Dagster's SQLite storage opens a
            # new one per `connect()`) and changes nothing in the file.
            conn.exec_driver_sql(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
            rows = conn.execute(_window_select(conditions)).mappings().all()

    # The overall row is the one without a task (tag values are never NULL).
    overall = next(_task_stats_from_row(row) for row in rows if row["task"] is None)
    tasks = sorted(
        (_task_stats_from_row(row) for row in rows if row["task"] is not None),
        key=lambda stats: stats.task,
    )
    if task is not None and not tasks:
        # A task that never ran gets its row of zeros rather than no row.
        tasks = [dataclasses.replace(overall, task=task)]
    return StatsReport(since=since, tasks=tasks, overall=overall)


def _task_runs(conditions: list[sa.ColumnElement]) -> sa.Select:
    """Task, status, creation time and (for finished runs) duration of every task run."""
    finished_statuses = [status.value for status in statuses_in(*FINISHED_GROUPS)]
    return (
        sa.select(
            RunTagsTable.c.value.label("task"),
            RunsTable.c.status,
            RunsTable.c.create_timestamp,
            sa.case(
                (
                    RunsTable.c.status.in_(finished_statuses),
                    RunsTable.c.end_time - RunsTable.c.start_time,
                ),
            ).label("duration"),
        )
        .select_from(
            RunsTable.join(
                RunTagsTable,
                sa.and_(
                    RunTagsTable.c.run_id == RunsTable.c.run_id, RunTagsTable.c.key == TAG_TASK
                ),
            )
        )
        .where(*conditions)
    )


def _aggregates(runs: sa.ColumnCollection) -> list[sa.ColumnElement]:
    """Counts per status group, mean duration and latest creation over ``runs``."""

    def count_of(group_name: str) -> sa.ColumnElement:
        statuses = [status.value for status in statuses_in(group_name)]
        return sa.func.count().filter(runs.status.in_(statuses))

    return [
        sa.func.count().label("total"),
        count_of(SUCCESS).label("success"),
        count_of(FAILED).label("failed"),
        count_of(RUNNING).label("running"),
        count_of(CANCELED).label("canceled"),
        sa.func.avg(runs.duration).label("avg_duration"),
        sa.func.max(runs.create_timestamp).label("latest"),
    ]


def _grouping_sets_select(conditions: list[sa.ColumnElement]) -> sa.Select:
    """PostgreSQL: one pass, per task and overall, p95 by ``percentile_disc``.

    ``percentile_disc(0.95)`` returns the value at row ``ceil(0.95 * n)`` of the ordered
    durations (NULLs skipped): the nearest rank. The double nearest 0.95 lies just below
    it, so the product with n never passes the exact value's ceiling for any n.
    """
    runs = _task_runs(conditions).subquery("task_runs")
    p95 = sa.func.percentile_disc(P95_PERCENT / 100).within_group(runs.c.duration)
    return sa.select(runs.c.task, *_aggregates(runs.c), p95.label("p95")).group_by(
        sa.func.grouping_sets(sa.tuple_(runs.c.task), sa.tuple_())
    )


def _window_select(conditions: list[sa.ColumnElement]) -> sa.Select:
    """SQLite (no ordered-set aggregates, no grouping sets): p95 by ranking with a window."""
    # Materialized, so the join runs once for the four readers below, not once per reader.
    task_runs = _task_runs(conditions).cte("task_runs").prefix_with("MATERIALIZED")
    return sa.union_all(
        _window_select_of(task_runs, by_task=True), _window_select_of(task_runs, by_task=False)
    )


def _window_select_of(task_runs: sa.CTE, by_task: bool) -> sa.Select:
    """Per task (``by_task``) or over all task runs (task NULL)."""
    runs = task_runs.c
    group = [runs.task] if by_task else []
    group_key = runs.task if by_task else sa.cast(sa.null(), sa.Text)
    counts = sa.select(group_key.label("task"), *_aggregates(runs)).group_by(*group).subquery()
    window = {"partition_by": group or None}
    ranked = (
        sa.select(
            group_key.label("task"),
            runs.duration,
            sa.func.row_number().over(order_by=runs.duration, **window).label("rank"),
            sa.func.count().over(**window).label("n"),
        )
        .where(runs.duration.is_not(None))
        .subquery()
    )
    # Nearest rank in integers: the rank r with r >= 0.95 n > r - 1, i.e. r = ceil(0.95 n).
    p95 = (
        sa.select(ranked.c.task, ranked.c.duration.label("p95"))
        .where(
            100 * ranked.c.rank >= P95_PERCENT * ranked.c.n,
            100 * (ranked.c.rank - 1) < P95_PERCENT * ranked.c.n,
        )
        .subquery()
    )
    join_on = p95.c.task == counts.c.task if by_task else sa.true()
    return sa.select(counts, p95.c.p95).select_from(counts.outerjoin(p95, join_on))


def _task_stats_from_row(row) -> TaskStats:
    success, failed, canceled = int(row["success"]), int(row["failed"]), int(row["canceled"])
    return TaskStats(
        task=row["task"],
        total_executions=int(row["total"]),
        success_count=success,
        failed_count=failed,
        running_count=int(row["running"]),
        canceled_count=canceled,
        success_rate=success_rate(success, failed, canceled),
        avg_duration_seconds=None if row["avg_duration"] is None else float(row["avg_duration"]),
        p95_duration_seconds=None if row["p95"] is None else float(row["p95"]),
        latest_execution_time=utc_from_naive(row["latest"]),
    )
