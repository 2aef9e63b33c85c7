"""History pages and run detail over the run store, on SQLite and PostgreSQL."""

import json
from datetime import datetime, timedelta

import dagster as dg
import pytest

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines.history.runs import RunNotFoundError, run_detail, task_history
from zquant_pipelines_tests.support.synthetic_runs import (
    CRASH_MESSAGE,
    CRASHED_TASK,
    FAILING_STEP,
    FAILURE_MESSAGE,
    MIXED_TASK,
    NEVER_RAN_TASK,
    REAL_TASK,
    RETRIED_RUN_NUMBER,
)


def naive_run_ids(instance: dg.DagsterInstance, task: str, statuses=None) -> list[str]:
    """Ids of the matching runs, newest first, picked from every record in Python."""
    records = [
        record
        for record in instance.get_run_records()
        if record.dagster_run.tags.get(TAG_TASK) == task
        and (statuses is None or record.dagster_run.status in statuses)
    ]
    records.sort(key=lambda record: record.create_timestamp, reverse=True)
    return [record.dagster_run.run_id for record in records]


def walk_pages(instance, task, limit, statuses=None, max_pages=100):
    """Every page from the first, following next_cursor (bounded, so a cursor loop fails)."""
    pages = [task_history(instance, task=task, statuses=statuses, limit=limit)]
    while pages[-1].next_cursor and len(pages) < max_pages:
        pages.append(
            task_history(
                instance, task=task, statuses=statuses, limit=limit, cursor=pages[-1].next_cursor
            )
        )
    return pages


def test_pages_cover_every_run_once_newest_first_with_the_true_total(store):
    expected = naive_run_ids(store.instance, MIXED_TASK)

    pages = walk_pages(store.instance, MIXED_TASK, limit=7)

    assert len(expected) > 7 * 2
    assert [page.total for page in pages] == [len(expected)] * len(pages)
    assert all(len(page.runs) == 7 for page in pages[:-1])
    assert [run.run_id for page in pages for run in page.runs] == expected
    assert pages[-1].next_cursor is None


def test_a_page_holding_the_last_run_has_no_next_cursor(store):
    total = len(naive_run_ids(store.instance, MIXED_TASK))

    exact = task_history(store.instance, task=MIXED_TASK, limit=total)
    one_short = task_history(store.instance, task=MIXED_TASK, limit=total - 1)

    assert (len(exact.runs), exact.next_cursor) == (total, None)
    assert one_short.next_cursor == one_short.runs[-1].run_id
    last = task_history(store.instance, task=MIXED_TASK, limit=total, cursor=one_short.next_cursor)
    assert (len(last.runs), last.next_cursor) == (1, None)


def test_a_status_filter_keeps_its_runs_and_counts_them(store):
    expected = naive_run_ids(store.instance, MIXED_TASK, statuses=[dg.DagsterRunStatus.FAILURE])

    pages = walk_pages(store.instance, MIXED_TASK, limit=2, statuses=["failed"])

    assert pages[0].statuses == ["FAILURE"]
    assert pages[0].total == len(expected) > 2
    assert [run.run_id for page in pages for run in page.runs] == expected


def test_the_running_group_stands_for_every_unfinished_status(store):
    running = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.MANAGED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.SUSPENDED,
    ]
    page = task_history(store.instance, task=MIXED_TASK, statuses=["running"], limit=100)

    assert page.total == len(naive_run_ids(store.instance, MIXED_TASK, statuses=running)) > 0
    assert {run.status for run in page.runs} == {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"}


def test_a_failed_run_shows_the_error_its_step_raised(store):
    page = task_history(store.instance, task=REAL_TASK, statuses=["FAILURE"])

    [failed] = page.runs
    assert failed.run_id == store.failed_run_id
    assert failed.error == f"{FAILING_STEP}: ValueError: {FAILURE_MESSAGE}"
    successful = task_history(store.instance, task=REAL_TASK, statuses=["success"]).runs
    assert [run.error for run in successful] == [None]


def test_a_run_failed_from_outside_shows_the_first_line_of_its_failure_message(store):
    [crashed] = task_history(store.instance, task=CRASHED_TASK).runs

    assert crashed.run_id == store.crashed_run_id
    assert crashed.status == "FAILURE"
    assert crashed.error == CRASH_MESSAGE.splitlines()[0]


def test_runs_show_times_duration_and_run_level_attempts(store):
    pages = walk_pages(store.instance, MIXED_TASK, limit=50)
    runs = {run.run_id: run for page in pages for run in page.runs}
    planned = {run.run_id: run for run in store.planned if run.task == MIXED_TASK}

    assert runs.keys() == planned.keys()
    for run_id, run in runs.items():
        plan = planned[run_id]
        assert run.created == plan.created
        assert run.attempts == 1 + plan.retry_number
        if run.end is not None and run.start is not None:
            assert run.duration_seconds == plan.duration
            assert run.start == plan.created + timedelta(seconds=10)
    assert {run.attempts for run in runs.values()} == {1, 1 + RETRIED_RUN_NUMBER}


def test_run_detail_of_a_failed_run(store):
    detail = run_detail(store.instance, store.failed_run_id)

    assert detail.run.status == "FAILURE"
    assert detail.run.task == REAL_TASK
    assert detail.run.error == f"{FAILING_STEP}: ValueError: {FAILURE_MESSAGE}"
    assert detail.tags[TAG_TASK] == REAL_TASK
    assert [(step.step_key, step.status, step.attempts) for step in detail.steps] == [
        (FAILING_STEP, "FAILURE", 1)
    ]
    record = store.instance.get_run_record_by_id(store.failed_run_id)
    assert detail.run.duration_seconds == record.end_time - record.start_time


def test_run_detail_counts_step_retries(store):
    detail = run_detail(store.instance, store.retried_step_run_id)

    assert detail.run.status == "SUCCESS"
    assert detail.run.error is None
    [step] = detail.steps
    assert (step.status, step.attempts) == ("SUCCESS", 2)
    assert step.duration_seconds >= 0


def test_json_forms_are_serializable_with_utc_times(store):
    page = json.loads(json.dumps(task_history(store.instance, task=REAL_TASK).to_dict()))
    detail = json.loads(json.dumps(run_detail(store.instance, store.failed_run_id).to_dict()))

    assert page["total"] == 2
    assert detail["run"]["run_id"] == store.failed_run_id
    for moment in (page["runs"][0]["created"], detail["run"]["start"], detail["steps"][0]["end"]):
        assert datetime.fromisoformat(moment).utcoffset() == timedelta(0)


def test_a_task_that_never_ran_has_an_empty_history(store):
    page = task_history(store.instance, task=NEVER_RAN_TASK)

    assert (page.total, page.runs, page.next_cursor) == (0, [], None)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"limit": 0}, r"limit: expected an integer from 1 to 1000, got 0"),
        ({"limit": "5"}, r"limit: expected an integer from 1 to 1000, got '5'"),
        ({"statuses": ["done"]}, r"statuses: unknown run status 'done'"),
        ({"cursor": "not-a-run"}, r"cursor: no run with id 'not-a-run'"),
        ({"task": " "}, r"task: expected a task name, got ' '"),
        ({"task": None}, r"task: expected a task name, got None"),
    ],
)
def test_bad_history_arguments_are_named_in_the_error(store, arguments, message):
    with pytest.raises(ValueError, match=message):
        task_history(store.instance, **{"task": MIXED_TASK, **arguments})


def test_run_detail_of_an_unknown_run_names_it(store):
    with pytest.raises(RunNotFoundError, match=r"run_id: no run 'no-such-run'"):
        run_detail(store.instance, "no-such-run")
