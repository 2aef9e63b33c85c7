"""The measures of task stats: their definitions on known values, and the SQL of
``history.stats`` giving the same figures as these functions over the same runs, on SQLite
and PostgreSQL (so the GraphQL back end, which uses the functions, agrees with local mode)."""

import math
from fractions import Fraction

import pytest

from zquant_pipelines.history.measures import (
    P95_PERCENT,
    duration_seconds,
    mean_duration,
    nearest_rank_p95,
    success_rate,
)
from zquant_pipelines.history.stats import task_stats
from zquant_pipelines.history.store import (
    CANCELED,
    FAILED,
    FINISHED_GROUPS,
    STATUS_GROUPS,
    SUCCESS,
)
from zquant_pipelines_tests.support.naive_stats import (
    AVERAGE_RELATIVE_TOLERANCE,
    task_run_records,
)


@pytest.mark.parametrize(
    "durations, expected",
    [([], None), ([5.0], 5.0), ([float(n) for n in range(1, 21)], 19.0), ([3.0, 1.0, 2.0], 3.0)],
)
def test_nearest_rank_p95(durations, expected):
    assert nearest_rank_p95(durations) == expected


def test_nearest_rank_p95_is_the_ceil_of_095_n_th_smallest():
    # Exact rational arithmetic as the oracle: where 0.95 n is a whole number (n = 20, 40,
    # ...) is where a float product would round to the wrong side first.
    for n in range(1, 401):
        rank = math.ceil(Fraction(P95_PERCENT, 100) * n)
        assert nearest_rank_p95([float(value) for value in range(n, 0, -1)]) == rank, n


def test_success_rate_is_over_finished_runs_only():
    assert success_rate(success=3, failed=1, canceled=0) == 0.75
    assert success_rate(success=1, failed=1, canceled=2) == 0.25
    assert success_rate(success=0, failed=0, canceled=0) is None


def test_mean_and_duration():
    assert mean_duration([1.0, 2.0, 4.5]) == 2.5
    assert mean_duration([]) is None
    assert duration_seconds(100.0, 102.5) == 2.5
    assert duration_seconds(None, 102.5) is None
    assert duration_seconds(100.0, None) is None


def test_sql_stats_are_the_python_measures_of_the_same_runs(store):
    report = task_stats(store.instance)
    records_by_task = task_run_records(store.instance)
    every_record = [record for records in records_by_task.values() for record in records]
    rows = [(row, records_by_task[row.task]) for row in report.tasks]
    rows.append((report.overall, every_record))

    for row, records in rows:
        groups = [STATUS_GROUPS[record.dagster_run.status] for record in records]
        durations = [
            duration
            for record, group in zip(records, groups, strict=True)
            if group in FINISHED_GROUPS
            and (duration := duration_seconds(record.start_time, record.end_time)) is not None
        ]
        assert row.success_rate == success_rate(
            groups.count(SUCCESS), groups.count(FAILED), groups.count(CANCELED)
        ), row.task
        assert row.p95_duration_seconds == nearest_rank_p95(durations), row.task
        mean = mean_duration(durations)
        if mean is None:
            assert row.avg_duration_seconds is None, row.task
        else:
            assert math.isclose(
                row.avg_duration_seconds, mean, rel_tol=AVERAGE_RELATIVE_TOLERANCE
            ), row.task
    assert any(row.p95_duration_seconds is not None for row, _ in rows)
