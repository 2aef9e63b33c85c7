"""The naive count: task stats from every run record loaded into Python.

This is what zquant did and what ``history.stats`` must agree with: the tests use it as
the oracle and ``bench/bench_history.py`` times it as the baseline. It reads only public
``RunRecord`` fields and applies the definitions written in ``history/stats.py`` and
``history/measures.py`` in its own words, not with their code: an oracle that called the
product's measures would agree with them whatever they computed.
"""

import dataclasses
import math
from collections import Counter
from datetime import datetime

import dagster as dg

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines.history.stats import StatsReport, TaskStats
from zquant_pipelines.history.store import (
    CANCELED,
    FAILED,
    FINISHED_GROUPS,
    RUNNING,
    STATUS_GROUPS,
    SUCCESS,
)

# SQL and Python may add the durations in different orders; a float sum then differs in
# its last bits. Counts, rates, p95 and times must be equal, the average this close.
AVERAGE_RELATIVE_TOLERANCE = 1e-12


def task_run_records(
    instance: dg.DagsterInstance, task: str | None = None, since: datetime | None = None
) -> dict[str, list[dg.RunRecord]]:
    """Every task run's record by task name (of ``task`` only, created at or after ``since``)."""
    runs_by_task: dict[str, list[dg.RunRecord]] = {}
    for record in instance.get_run_records():
        name = record.dagster_run.tags.get(TAG_TASK)
        if name is None or (task is not None and name != task):
            continue
        if since is not None and record.create_timestamp < since:
            continue
        runs_by_task.setdefault(name, []).append(record)
    return runs_by_task


def naive_task_stats(
    instance: dg.DagsterInstance, task: str | None = None, since: datetime | None = None
) -> StatsReport:
    runs_by_task = task_run_records(instance, task, since)
    tasks = [_stats_of(name, records) for name, records in sorted(runs_by_task.items())]
    overall = _stats_of(None, [record for records in runs_by_task.values() for record in records])
    if task is not None and not tasks:
        tasks = [dataclasses.replace(overall, task=task)]
    return StatsReport(since=since, tasks=tasks, overall=overall)


def _stats_of(task: str | None, records: list[dg.RunRecord]) -> TaskStats:
    groups = Counter(STATUS_GROUPS[record.dagster_run.status] for record in records)
    finished = groups[SUCCESS] + groups[FAILED] + groups[CANCELED]
    durations = sorted(
        record.end_time - record.start_time
        for record in records
        if STATUS_GROUPS[record.dagster_run.status] in FINISHED_GROUPS
        and record.start_time is not None
        and record.end_time is not None
    )
    return TaskStats(
        task=task,
        total_executions=len(records),
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
        latest_execution_time=max((record.create_timestamp for record in records), default=None),
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
