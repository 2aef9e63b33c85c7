"""Execution history of tasks: pages of runs, newest first, and the detail of one run.

Pages come from Dagster's own run queries (``get_run_records`` with a tag filter, keyed by
run id cursor) and the total from ``get_runs_count`` on the same filter, so ``total`` is the
number of matching runs, not the page length. Events are read only for the failed runs on
the page, to give each its error summary.

``attempts`` is run-level: 1 + ``dagster/retry_number`` (Dagster's run retries make each
attempt a run of its own, linked by ``dagster/root_run_id``). Step retries inside one run
show in ``run_detail`` as each step's ``attempts``.
"""

import dataclasses
from collections.abc import Sequence
from datetime import datetime

import dagster as dg

# Private module, but it is where Dagster names the tags it writes on retried runs.
from dagster._core.storage.tags import (
    PARENT_RUN_ID_TAG,
    RETRY_NUMBER_TAG,
    ROOT_RUN_ID_TAG,
    TagType,
    get_tag_type,
)

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines.history.measures import duration_seconds
from zquant_pipelines.history.pause import is_paused_run
from zquant_pipelines.history.store import (
    JsonRecord,
    parse_statuses,
    utc_from_timestamp,
)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000


class RunNotFoundError(LookupError):
    """No run with that id in the run store."""


@dataclasses.dataclass(frozen=True)
class RunSummary(JsonRecord):
    """One execution as a history line."""

    run_id: str
    job_name: str
    task: str | None
    status: str
    created: datetime
    start: datetime | None
    end: datetime | None
    duration_seconds: float | None
    attempts: int
    error: str | None
    # Stopped at a day boundary for a pause request (history/pause.py): status FAILURE.
    paused: bool = False


@dataclasses.dataclass(frozen=True)
class HistoryPage(JsonRecord):
    task: str
    statuses: list[str] | None
    total: int
    runs: list[RunSummary]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True)
class StepSummary(JsonRecord):
    step_key: str
    status: str | None
    start: datetime | None
    end: datetime | None
    duration_seconds: float | None
    attempts: int | None


@dataclasses.dataclass(frozen=True)
class RunDetail(JsonRecord):
    run: RunSummary
    parent_run_id: str | None
    root_run_id: str | None
    tags: dict[str, str]
    steps: list[StepSummary]


def check_page_limit(limit: int) -> None:
    """A history page's size: 1 to MAX_PAGE_SIZE runs (ValueError otherwise)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit: expected an integer from 1 to {MAX_PAGE_SIZE}, got {limit!r}")


def task_history(
    instance: dg.DagsterInstance,
    task: str,
    statuses: Sequence[str] | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> HistoryPage:
    """A page of a task's runs, newest first.

    ``statuses`` takes Dagster status names or zquant's groups (see ``parse_statuses``);
    pass the page's ``next_cursor`` as ``cursor`` to get the next page (None on the last).
    """
    check_page_limit(limit)
    if not isinstance(task, str) or not task.strip():
        raise ValueError(f"task: expected a task name, got {task!r}")
    if isinstance(statuses, str):
        statuses = [statuses]
    run_statuses = parse_statuses(statuses) if statuses else None
    if cursor is not None and not instance.has_run(cursor):
        raise ValueError(f"cursor: no run with id {cursor!r}; pass a next_cursor of a page")

    filters = dg.RunsFilter(tags={TAG_TASK: task}, statuses=run_statuses)
    # One record past the page says whether another page follows.
    records = instance.get_run_records(filters=filters, limit=limit + 1, cursor=cursor)
    shown = records[:limit]
    return HistoryPage(
        task=task,
        statuses=[status.value for status in run_statuses] if run_statuses else None,
        total=instance.get_runs_count(filters),
        runs=[_run_summary(instance, record) for record in shown],
        next_cursor=shown[-1].dagster_run.run_id if len(records) > limit else None,
    )


def run_detail(instance: dg.DagsterInstance, run_id: str) -> RunDetail:
    """One execution: its history line, tags, retry lineage and per-step summary."""
    record = instance.get_run_record_by_id(run_id) if run_id else None
    if record is None:
        raise RunNotFoundError(f"run_id: no run {run_id!r} in the run store")
    run = record.dagster_run
    steps = [
        StepSummary(
            step_key=step.step_key,
            status=step.status.value if step.status else None,
            start=utc_from_timestamp(step.start_time),
            end=utc_from_timestamp(step.end_time),
            duration_seconds=duration_seconds(step.start_time, step.end_time),
            attempts=step.attempts,
        )
        for step in instance.get_run_step_stats(run.run_id)
    ]
    return RunDetail(
        run=_run_summary(instance, record),
        parent_run_id=run.tags.get(PARENT_RUN_ID_TAG),
        root_run_id=run.tags.get(ROOT_RUN_ID_TAG),
        # Dagster's hidden tags (the run worker's gRPC socket, ...) are not shown, as in the UI.
        tags={key: value for key, value in run.tags.items() if get_tag_type(key) != TagType.HIDDEN},
        steps=steps,
    )


def error_summary(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The first failure of a run in one line: ``step: ExceptionClass: message``.

    The first STEP_FAILURE (or, when no step failed, the RUN_FAILURE) event; of its error
    chain the innermost cause, which is the exception the task's code raised rather than
    Dagster's wrapper around it.
    """
    failures = instance.get_records_for_run(
        run_id,
        of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE},
        limit=1,
    ).records
    if not failures:
        return None
    entry = failures[0].event_log_entry
    event = entry.dagster_event
    error = getattr(event.event_specific_data, "error", None) if event else None
    if error is None:
        text = entry.message
    else:
        while error.cause is not None:
            error = error.cause
        text = error.message
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    step_key = event.step_key if event else None
    return f"{step_key}: {first_line}" if step_key else first_line


def _run_summary(instance: dg.DagsterInstance, record: dg.RunRecord) -> RunSummary:
    run = record.dagster_run
    failed = run.status == dg.DagsterRunStatus.FAILURE
    return RunSummary(
        run_id=run.run_id,
        job_name=run.job_name,
        task=run.tags.get(TAG_TASK),
        status=run.status.value,
        created=record.create_timestamp,
        start=utc_from_timestamp(record.start_time),
        end=utc_from_timestamp(record.end_time),
        duration_seconds=duration_seconds(record.start_time, record.end_time),
        attempts=1 + int(run.tags.get(RETRY_NUMBER_TAG, "0")),
        error=error_summary(instance, run.run_id) if failed else None,
        paused=is_paused_run(run.run_id, run.tags),
    )
