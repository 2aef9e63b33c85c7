"""SQL task stats against the naive count over every run record, on SQLite and PostgreSQL."""

import json
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from zquant_pipelines.constants import MARKET_TIMEZONE
from zquant_pipelines.history.stats import TaskStats, task_stats
from zquant_pipelines.history.store import STATUS_GROUPS
from zquant_pipelines_tests.support.naive_stats import (
    naive_task_stats,
    plain_task_stats,
    stats_differences,
)
from zquant_pipelines_tests.support.synthetic_runs import (
    FIRST_CREATED,
    KNOWN_ANSWER_TASK,
    MIXED_TASK,
    NEVER_RAN_TASK,
    TASKS,
    UNFINISHED_TASK,
)


def test_stats_of_every_task_agree_with_the_naive_count(store):
    report = task_stats(store.instance)

    assert [row.task for row in report.tasks] == sorted(TASKS)
    assert stats_differences(report, naive_task_stats(store.instance)) == []


@pytest.mark.parametrize("task", [*TASKS, NEVER_RAN_TASK])
def test_stats_of_one_task_agree_with_the_naive_count(store, task):
    report = task_stats(store.instance, task=task)

    assert [row.task for row in report.tasks] == [task]
    assert stats_differences(report, naive_task_stats(store.instance, task=task)) == []


def test_since_keeps_runs_created_from_that_moment(store):
    # 40 hours after the first run, written in market time to exercise the UTC conversion.
    since = (FIRST_CREATED + timedelta(hours=40)).astimezone(ZoneInfo(MARKET_TIMEZONE))

    report = task_stats(store.instance, since=since)

    assert stats_differences(report, naive_task_stats(store.instance, since=since)) == []
    planned_after = [run for run in store.planned if run.task and run.created >= since]
    assert report.overall.total_executions == len(planned_after) + len(store.unplanned_run_ids)


def test_the_plain_count_of_the_benchmark_agrees_with_the_naive_one(store):
    # bench/bench_history.py times the plain count as the strong baseline: it must count
    # what the record-based oracle counts, for every task, one task and a since.
    since = FIRST_CREATED + timedelta(hours=40)
    for kwargs in ({}, {"task": MIXED_TASK}, {"task": NEVER_RAN_TASK}, {"since": since}):
        plain = plain_task_stats(store.instance, **kwargs)
        assert plain.overall.total_executions > 0 or kwargs.get("task") == NEVER_RAN_TASK
        assert stats_differences(plain, naive_task_stats(store.instance, **kwargs)) == [], kwargs


def test_counts_match_what_was_written_and_skip_untagged_runs(store):
    report = task_stats(store.instance, task=MIXED_TASK)

    written = Counter(STATUS_GROUPS[run.status] for run in store.planned if run.task == MIXED_TASK)
    row = report.tasks[0]
    assert (row.success_count, row.failed_count, row.running_count, row.canceled_count) == (
        written["success"],
        written["failed"],
        written["running"],
        written["canceled"],
    )
    all_tasks = task_stats(store.instance).overall
    untagged = [run for run in store.planned if run.task is None]
    assert untagged
    tagged = len(store.planned) - len(untagged) + len(store.unplanned_run_ids)
    assert all_tasks.total_executions == tagged


def test_success_rate_leaves_running_runs_out_of_the_denominator(store):
    row = task_stats(store.instance, task=MIXED_TASK).tasks[0]

    assert row.running_count > 0
    finished = row.success_count + row.failed_count + row.canceled_count
    assert row.success_rate == row.success_count / finished


def test_known_durations_give_the_nearest_rank_p95_and_the_mean(store):
    row = task_stats(store.instance, task=KNOWN_ANSWER_TASK).tasks[0]

    # Durations are 1..20 s: the mean is 10.5 and ceil(0.95 * 20) = 19 picks 19 s.
    assert row.total_executions == 20
    assert row.success_rate == 1.0
    assert row.avg_duration_seconds == 10.5
    assert row.p95_duration_seconds == 19.0


def test_a_task_with_nothing_finished_has_no_rate_or_durations(store):
    row = task_stats(store.instance, task=UNFINISHED_TASK).tasks[0]

    assert row.running_count == row.total_executions > 0
    assert (row.success_rate, row.avg_duration_seconds, row.p95_duration_seconds) == (None,) * 3


def test_json_form_has_zquant_field_names_and_utc_times(store):
    data = json.loads(json.dumps(task_stats(store.instance).to_dict()))

    overall = data["overall"]
    assert overall["task"] is None
    assert set(overall) >= {
        "total_executions",
        "success_count",
        "failed_count",
        "running_count",
        "success_rate",
        "avg_duration_seconds",
        "latest_execution_time",
    }
    assert datetime.fromisoformat(overall["latest_execution_time"]).utcoffset() == timedelta(0)


def test_a_naive_since_is_rejected_with_its_value(store):
    with pytest.raises(ValueError, match=r"since: '2026-01-06T00:00:00' has no timezone"):
        task_stats(store.instance, since=datetime(2026, 1, 6))


def test_an_empty_task_name_is_rejected(store):
    with pytest.raises(ValueError, match=r"task: expected a task name, got ''"):
        task_stats(store.instance, task="")


def test_an_empty_run_store_has_an_overall_row_of_zeros():
    with dg.instance_for_test(set_dagster_home=False) as instance:
        report = task_stats(instance)

    assert report.tasks == []
    assert report.overall == TaskStats(None, 0, 0, 0, 0, 0, None, None, None, None)
