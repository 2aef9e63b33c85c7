"""The naive counts: task stats computed in Python from runs read out of the run store.

Two ways to read the runs, one way to count them:

- ``naive_task_stats``: every run record through Dagster's API (``get_run_records``, with
  ``RunsFilter(tags=...)`` for one task: Dagster's own filtered call); the tests' oracle;
- ``plain_task_stats``: a plain port of zquant's way, the strong baseline of
  ``bench/bench_history.py``: one SELECT of the few columns the stats need (status, times,
  the task tag) for every task run, counted in Python; no run body is deserialised.

Both apply the definitions written in ``history/stats.py`` and ``history/measures.py`` in
their own words, not with their code: an oracle that called the product's measures would
agree with them whatever they computed.
"""

import dataclasses
import math
from collections import Counter
from datetime import datetime

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines.history.stats import StatsReport, TaskStats
from zquant_pipelines.history.store import (
    CANCELED,
    FAILED,
    FINISHED_GROUPS,
    RUNNING,
    STATUS_GROUPS,
    SUCCESS,
    naive_utc,
    sql_run_storage,
    utc_from_naive,
)

# SQL and Python may add the durations in different orders; a float sum then differs in
# its last bits. Counts, rates, p95 and times must be equal, the average this close.
AVERAGE_RELATIVE_TOLERANCE = 1e-12


def task_run_records(
    instance: dg.DagsterInstance, task: str | None = None, since: datetime | None = None
) -> dict[str, list[dg.RunRecord]]:
    """Every task run's record by task name (of ``task`` only, created at or after ``since``)."""
    runs_by_task: dict[str, list[dg.RunRecord]] = {}
    filters = dg.RunsFilter(tags={TAG_TASK: task}) if task is not None else None
    for record in instance.get_run_records(filters):
        name = record.dagster_run.tags.get(TAG_TASK)
        if name is None or (task is not None and name != task):
            continue
        if since is not None and record.create_timestamp < since:
            continue
        runs_by_task.setdefault(name, []).append(record)
    return runs_by_task


# What the count needs of a run: its status, start and end times and creation time.
RunFacts = tuple[dg.DagsterRunStatus, float | None, float | None, datetime]


def naive_task_stats(
    instance: dg.DagsterInstance, task: str | None = None, since: datetime | None = None
) -> StatsReport:
    """Stats from run records (``get_run_records``, filtered by the task tag for one task)."""
    facts = {
        name: [
            (r.dagster_run.status, r.start_time, r.end_time, r.create_timestamp) for r in records
        ]
        for name, records in task_run_records(instance, task, since).items()
    }
    return _report(facts, task, since)


def plain_task_stats(
    instance: dg.DagsterInstance, task: str | None = None, since: datetime | None = None
) -> StatsReport:
    """Stats from the needed columns of every task run, one SELECT, counted in Python."""
    query = sa.select(
        RunTagsTable.c.value,
        RunsTable.c.status,
        RunsTable.c.start_time,
        RunsTable.c.end_time,
        RunsTable.c.create_timestamp,
    ).select_from(
        RunsTable.join(
            RunTagsTable,
            sa.and_(RunTagsTable.c.run_id == RunsTable.c.run_id, RunTagsTable.c.key == TAG_TASK),
        )
    )
    if task is not None:
        query = query.where(RunTagsTable.c.value == task)
    if since is not None:
        query = query.where(RunsTable.c.create_timestamp >= naive_utc(since, "since"))
    facts: dict[str, list[RunFacts]] = {}
    statuses = {status.value: status for status in dg.DagsterRunStatus}
    with sql_run_storage(instance).connect() as conn:
        for name, status, start, end, created in conn.execute(query):
            # Creation times stay naive UTC here; only the latest one is made aware.
            facts.setdefault(name, []).append((statuses[status], start, end, created))
    return _report(facts, task, since)


def _report(
    facts: dict[str, list[RunFacts]], task: str | None, since: datetime | None
) -> StatsReport:
    tasks = [_stats_of(name, runs) for name, runs in sorted(facts.items())]
    overall = _stats_of(None, [run for runs in facts.values() for run in runs])
    if task is not None and not tasks:
        tasks = [dataclasses.replace(overall, task=task)]
    return StatsReport(since=since, tasks=tasks, overall=overall)


def _stats_of(task: str | None, runs: list[RunFacts]) -> TaskStats:
    groups = Counter(STATUS_GROUPS[status] for status, _, _, _ in runs)
    finished = groups[SUCCESS] + groups[FAILED] + groups[CANCELED]
    durations = sorted(
        end - start
        for status, start, end, _ in runs
        if STATUS_GROUPS[status] in FINISHED_GROUPS and start is not None and end is not None
    )
    return TaskStats(
        task=task,
        total_executions=len(runs),
        success_count=groups[SUCCESS],
        failed_count=groups[FAILED],
        running_count=groups[RUNNING],
        canceled_count=groups[CANCELED],
        success_rate=groups[SUCCESS] / finished if finished else None,
        avg_duration_seconds=sum(durations) / len(durations) if durations else None,
        # Nearest rank: the ceil(0.95 n)-th smallest duration.
        p95_duration_seconds=durations[math.ceil(len(durations) * 95 / 100) - 1]
        if durations
        else None,
        latest_execution_time=_aware(max((created for _, _, _, created in runs), default=None)),
    )


def stats_differences(actual: StatsReport, expected: StatsReport) -> list[str]:
    """Every field where two reports disagree, as readable lines (empty when they agree)."""
    actual_rows, expected_rows = (
        [*actual.tasks, actual.overall],
        [*expected.tasks, expected.overall],
    )
    if [row.task for row in actual_rows] != [row.task for row in expected_rows]:
        return [
            f"tasks: {[row.task for row in actual_rows]} != {[row.task for row in expected_rows]}"
        ]
    differences = []
    for got, want in zip(actual_rows, expected_rows, strict=True):
        for field in dataclasses.fields(TaskStats):
            got_value, want_value = getattr(got, field.name), getattr(want, field.name)
            if field.name == "avg_duration_seconds" and None not in (got_value, want_value):
                same = math.isclose(got_value, want_value, rel_tol=AVERAGE_RELATIVE_TOLERANCE)
            else:
                same = got_value == want_value
            if not same:
                row_name = got.task or "overall"
                differences.append(f"{row_name}.{field.name}: {got_value!r} != {want_value!r}")
    return differences


def _aware(moment: datetime | None) -> datetime | None:
    """Run records give aware times, the plain SELECT naive UTC ones."""
    return moment if moment is None or moment.tzinfo else utc_from_naive(moment)
