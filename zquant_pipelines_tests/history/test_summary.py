"""The task run summary against a full recount after every kind of run outcome, on SQLite and
PostgreSQL: success, failure, cancel, a crash (the run's process killed with SIGKILL), the
deletion of runs, and a changed task tag.

After each outcome the summary's rows are read as they lie (nothing that could reinstall the
summary runs in between, so only the triggers can have kept them) and must equal what each
run's record says; then the stats read from the summary must equal the naive count over
every run record (``support/naive_stats``), for every task and for each task.
"""

import os
import signal
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.runs.schema import RunsTable

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines.history.stats import task_stats
from zquant_pipelines.history.store import sql_run_storage, utc_from_naive
from zquant_pipelines.history.summary import (
    SUMMARY_TABLE,
    TaskRunsTable,
    ensure_task_run_summary,
    expected_objects,
    rebuild_task_run_summary,
)
from zquant_pipelines_tests.support.naive_stats import naive_task_stats, stats_differences
from zquant_pipelines_tests.support.run_process import start_run_process
from zquant_pipelines_tests.support.synthetic_runs import (
    CRASH_MESSAGE,
    CRASHED_TASK,
    KNOWN_ANSWER_TASK,
    MIXED_TASK,
    REAL_TASK,
    STORAGES,
    PlannedRun,
    failing_calendar_job,
    fresh_instance,
    planned_runs,
    retried_calendar_job,
    write_planned_run,
)

S = dg.DagsterRunStatus
KILL_DEADLINE_SECONDS = 60


@pytest.fixture(params=STORAGES)
def instance(request):
    """The known mix of runs, then the summary installed (filled from them) by a first read."""
    admin_url = request.getfixturevalue("pg_server_url") if request.param == "postgres" else ""
    with fresh_instance(request.param, admin_url) as instance:
        for run in planned_runs():
            write_planned_run(instance, run)
        task_stats(instance)
        yield instance


@pytest.fixture(params=STORAGES)
def empty_instance(request):
    admin_url = request.getfixturevalue("pg_server_url") if request.param == "postgres" else ""
    with fresh_instance(request.param, admin_url) as instance:
        yield instance


def recorded_rows(instance: dg.DagsterInstance) -> set[tuple]:
    """What the summary must hold of each run, by the run's record."""
    return {
        (
            record.dagster_run.run_id,
            record.dagster_run.tags.get(TAG_TASK),
            record.dagster_run.status.value,
            record.create_timestamp,
            None
            if record.start_time is None or record.end_time is None
            else record.end_time - record.start_time,
        )
        for record in instance.get_run_records()
    }


def summary_rows(instance: dg.DagsterInstance) -> set[tuple]:
    """The summary's rows as they lie in the run store's database."""
    runs = TaskRunsTable.c
    query = sa.select(runs.run_id, runs.task, runs.status, runs.create_timestamp, runs.duration)
    with sql_run_storage(instance).connect() as conn:
        return {
            (run_id, task, status, utc_from_naive(created), duration)
            for run_id, task, status, created, duration in conn.execute(query)
        }


def assert_summary_is_a_recount(instance: dg.DagsterInstance) -> None:
    assert summary_rows(instance) == recorded_rows(instance)
    naive = naive_task_stats(instance)
    assert stats_differences(task_stats(instance), naive) == []
    for row in naive.tasks:
        one_task = naive_task_stats(instance, task=row.task)
        assert stats_differences(task_stats(instance, task=row.task), one_task) == [], row.task


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def planned(task: str | None, run_status: dg.DagsterRunStatus, **fields) -> PlannedRun:
    return PlannedRun(
        run_id=str(uuid.uuid4()),
        job_name=f"{task}_job" if task else "adhoc_job",
        task=task,
        status=run_status,
        created=datetime.now(UTC) - timedelta(minutes=5),
        **fields,
    )


def test_the_first_read_fills_the_summary_from_the_run_store(instance):
    assert summary_rows(instance) == recorded_rows(instance)
    assert len(summary_rows(instance)) == len(planned_runs())


def test_installing_leaves_the_callers_connection_autocommitting(empty_instance):
    # The install runs in a transaction of its own; a write the caller then makes on its
    # connection (Dagster's autocommit) must be there for every other connection.
    run_id = str(uuid.uuid4())
    with sql_run_storage(empty_instance).connect() as conn:
        ensure_task_run_summary(conn)
        conn.execute(sa.insert(RunsTable).values(run_id=run_id, status=S.QUEUED.value))

    assert {row[:3] for row in summary_rows(empty_instance)} == {(run_id, None, S.QUEUED.value)}


def test_runs_that_succeed_and_fail(instance):
    succeeded = retried_calendar_job.execute_in_process(
        instance=instance, tags={TAG_TASK: REAL_TASK}
    )
    assert status(instance, succeeded.run_id) == S.SUCCESS
    assert_summary_is_a_recount(instance)

    failed = failing_calendar_job.execute_in_process(
        instance=instance, tags={TAG_TASK: REAL_TASK}, raise_on_error=False
    )
    assert status(instance, failed.run_id) == S.FAILURE
    assert_summary_is_a_recount(instance)


def test_runs_canceled_in_the_queue_and_while_running(instance):
    queued, started = planned(MIXED_TASK, S.QUEUED), planned(MIXED_TASK, S.STARTED)
    for run in (queued, started):
        write_planned_run(instance, run)
    assert_summary_is_a_recount(instance)

    # As the queued run coordinator cancels a queued run.
    instance.report_run_canceled(instance.get_run_by_id(queued.run_id))
    assert status(instance, queued.run_id) == S.CANCELED
    assert_summary_is_a_recount(instance)

    instance.report_run_canceling(instance.get_run_by_id(started.run_id))
    assert status(instance, started.run_id) == S.CANCELING
    assert_summary_is_a_recount(instance)
    instance.report_run_canceled(instance.get_run_by_id(started.run_id))
    assert status(instance, started.run_id) == S.CANCELED
    assert_summary_is_a_recount(instance)


@pytest.mark.slow
def test_a_run_whose_process_is_killed_then_failed_by_monitoring(instance):
    run_id = str(uuid.uuid4())
    process = start_run_process(instance, run_id, CRASHED_TASK)
    try:
        assert_summary_is_a_recount(instance)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=KILL_DEADLINE_SECONDS)
    assert process.returncode == -signal.SIGKILL

    # Nothing reports the end of a killed run: it stays STARTED, and counts as running.
    assert status(instance, run_id) == S.STARTED
    assert_summary_is_a_recount(instance)

    # Run monitoring finds the worker gone and fails the run, as the daemon does.
    instance.report_run_failed(instance.get_run_by_id(run_id), message=CRASH_MESSAGE)
    assert status(instance, run_id) == S.FAILURE
    assert_summary_is_a_recount(instance)


def test_deleted_runs_and_a_wiped_run_store(instance):
    records = instance.get_run_records()
    mixed = [r for r in records if r.dagster_run.tags.get(TAG_TASK) == MIXED_TASK]
    doomed = [
        *(
            next(r for r in mixed if r.dagster_run.status == run_status)
            for run_status in (S.SUCCESS, S.STARTED)
        ),
        next(r for r in records if TAG_TASK not in r.dagster_run.tags),
        *(r for r in records if r.dagster_run.tags.get(TAG_TASK) == KNOWN_ANSWER_TASK),
    ]
    for record in doomed:
        instance.delete_run(record.dagster_run.run_id)
    assert len(instance.get_run_records()) == len(records) - len(doomed)
    assert KNOWN_ANSWER_TASK not in {row.task for row in task_stats(instance).tasks}
    assert_summary_is_a_recount(instance)

    instance.wipe()
    assert summary_rows(instance) == set()
    assert task_stats(instance).overall.total_executions == 0
    assert_summary_is_a_recount(instance)


def test_a_run_whose_task_tag_changes(instance):
    record = next(
        r for r in instance.get_run_records() if r.dagster_run.tags.get(TAG_TASK) == MIXED_TASK
    )
    instance.add_run_tags(record.dagster_run.run_id, {TAG_TASK: KNOWN_ANSWER_TASK})
    assert_summary_is_a_recount(instance)


def test_a_rebuild_gives_the_summary_the_triggers_kept(instance):
    failing_calendar_job.execute_in_process(
        instance=instance, tags={TAG_TASK: REAL_TASK}, raise_on_error=False
    )
    kept = summary_rows(instance)

    assert rebuild_task_run_summary(instance) == len(kept)
    assert summary_rows(instance) == kept == recorded_rows(instance)


def test_a_lost_trigger_is_noticed_and_the_summary_rebuilt(instance):
    # A Dagster migration that recreates `runs` (SQLite's do) drops its triggers.
    with sql_run_storage(instance).connect() as conn:
        dialect = conn.dialect.name
        # SQLite has one trigger per change of `runs`, PostgreSQL one for all of them.
        triggers = expected_objects(dialect) - {SUMMARY_TABLE}
        trigger = next(name for name in triggers if name.endswith(("_runs_insert", "_runs")))
        on_table = " ON runs" if dialect == "postgresql" else ""
        conn.execute(sa.text(f'DROP TRIGGER "{trigger}"{on_table}'))
    write_planned_run(instance, planned(MIXED_TASK, S.SUCCESS, duration=7.0))
    # The summary missed the run: the trigger was what kept it.
    assert summary_rows(instance) != recorded_rows(instance)

    task_stats(instance)
    assert summary_rows(instance) == recorded_rows(instance)
    assert_summary_is_a_recount(instance)
